"""Early escalation signal (Rho et al. 2023): what the officer says in the first 45 words predicts whether a stop
ends in a search, handcuffing or arrest.

Escalated stops more often open with a command and less often give a reason. The signal is a logistic model over
binary early-language signals; its default weights follow the directions the study reports (magnitudes are a
prior, not an estimate), and a department fits its own from its outcome records with
``bwc models train escalation --outcomes CSV --store STORE`` (cross-validated AUC reported).

Example
-------
>>> signals = early_signals(["Step out of the car, dude.", "The reason I stopped you is your tail light."])
>>> sorted(name for name, words in signals.items() if words)
['command_before_reason', 'informal_title_early']
>>> round(EscalationModel.default().probability(signals), 2)
0.27
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.acts import detect_acts

EARLY_WORDS = 45  # Rho et al. 2023: the officer's first 45 words
DEFAULT_VERSION = "escalation-prior-1"
SIGNALS: dict[str, str] = {  # name -> description
    "command_before_reason": "a command before any reason for the stop",
    "no_reason_early": "no reason or explanation in the first 45 officer words",
    "informal_title_early": "informal address (dude, bro, man) early",
    "threat_early": "a threat early",
    "accusation_early": "an accusation early",
    "hostile_words_early": "profanity or an insult early",
    "search_request_early": "a search request early",
}
# Log-odds per signal, from the directions in Rho et al. (2023); the intercept makes a stop with none of them
# unlikely to escalate (about 8%).
DEFAULT_WEIGHTS = {
    "command_before_reason": 1.0,
    "no_reason_early": 0.8,
    "informal_title_early": 0.5,
    "threat_early": 1.5,
    "accusation_early": 0.6,
    "hostile_words_early": 0.8,
    "search_request_early": 0.7,
}
DEFAULT_INTERCEPT = -2.5


def early_words(officer_texts: list[str], limit: int = EARLY_WORDS) -> list[str]:
    """The officer's utterances cut to the first ``limit`` words in total."""
    kept: list[str] = []
    remaining = limit
    for text in officer_texts:
        words = text.split()
        if remaining <= 0:
            break
        kept.append(" ".join(words[:remaining]))
        remaining -= len(words)
    return kept


def early_signals(officer_texts: list[str]) -> dict[str, str]:
    """Each signal in :data:`SIGNALS` -> the words that raised it, or "" when absent."""
    signals = dict.fromkeys(SIGNALS, "")
    reason_seen = False
    for text in early_words(officer_texts):
        acts = detect_acts(text)
        reason = acts.get("reason_for_stop") or acts.get("explanation")
        if "command" in acts and not reason_seen and not signals["command_before_reason"]:
            signals["command_before_reason"] = acts["command"]
        reason_seen = reason_seen or bool(reason)
        for act, signal in (
            ("informal_title", "informal_title_early"),
            ("threat", "threat_early"),
            ("accusation", "accusation_early"),
            ("profanity", "hostile_words_early"),
            ("insult", "hostile_words_early"),
            ("search_request", "search_request_early"),
        ):
            if act in acts and not signals[signal]:
                signals[signal] = acts[act]
    if officer_texts and not reason_seen:
        signals["no_reason_early"] = "no reason given"
    return signals


@dataclass(frozen=True)
class EscalationModel:
    """Logistic model over :data:`SIGNALS`."""

    weights: dict[str, float]  # log-odds per signal present
    intercept: float  # log-odds with no signal present
    version: str = DEFAULT_VERSION  # names the model in every score row
    training: dict[str, object] = field(default_factory=dict)  # data and cross-validated AUC, when fitted

    @classmethod
    def default(cls) -> EscalationModel:
        return cls(dict(DEFAULT_WEIGHTS), DEFAULT_INTERCEPT)

    @classmethod
    def load(cls, path: Path | None) -> EscalationModel:
        """A department's fitted model (JSON written by training), or the default when ``path`` is None."""
        if path is None:
            return cls.default()
        content = json.loads(Path(path).read_text(encoding="utf-8"))
        unknown = set(content["weights"]) - set(SIGNALS)
        if unknown:
            raise ValueError(f"{path}: unknown escalation signals {sorted(unknown)}")
        return cls(content["weights"], content["intercept"], content["version"], content.get("training", {}))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        content = {"version": self.version, "intercept": self.intercept, "weights": self.weights}
        path.write_text(json.dumps(content | {"training": self.training}, indent=2) + "\n", encoding="utf-8")

    def probability(self, signals: dict[str, str]) -> float:
        """Escalation probability (0..1) for the signals present."""
        logit = self.intercept + sum(self.weights.get(name, 0.0) for name, words in signals.items() if words)
        return 1.0 / (1.0 + math.exp(-logit))

    def reasons(self, signals: dict[str, str]) -> list[str]:
        """Present signals that raise escalation, strongest first, with their words."""
        present = [(self.weights.get(name, 0.0), name, words) for name, words in signals.items() if words]
        present.sort(reverse=True)
        return [f"{SIGNALS[name]} ('{words}')" for weight, name, words in present if weight > 0]


def signal_table(utterance_scores: pd.DataFrame) -> pd.DataFrame:
    """Per encounter, the early signals (1/0) computed from a store's ``utterance_scores`` (officer lines)."""
    officer = utterance_scores[utterance_scores["role"] == "officer"].sort_values(["encounter_id", "turn"])
    rows = []
    for encounter_id, lines in officer.groupby("encounter_id", sort=True):
        signals = early_signals(lines["text"].astype(str).tolist())
        rows.append({"encounter_id": encounter_id} | {name: int(bool(words)) for name, words in signals.items()})
    return pd.DataFrame(rows, columns=["encounter_id", *SIGNALS])


def fit_escalation(outcomes: pd.DataFrame, utterance_scores: pd.DataFrame, folds: int = 5) -> EscalationModel:
    """Fit a department's escalation model from its outcomes (``encounter_id, escalated``) and report the
    cross-validated AUC in ``model.training``.

    Raises
    ------
    ValueError
        When too few outcomes match scored encounters, or only one outcome class is present.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    missing = {"encounter_id", "escalated"} - set(outcomes.columns)
    if missing:
        raise ValueError(f"outcomes need columns encounter_id, escalated; missing {sorted(missing)}")
    labels = outcomes[["encounter_id", "escalated"]].copy()
    labels["encounter_id"] = labels["encounter_id"].astype(str)
    labels["escalated"] = labels["escalated"].map(_as_bool)
    if labels["escalated"].isna().any():
        raise ValueError("escalated must be 1/0, true/false or yes/no on every row")
    data = signal_table(utterance_scores).merge(labels, on="encounter_id", how="inner")
    counts = data["escalated"].value_counts()
    if len(counts) < 2 or counts.min() < 2:
        raise ValueError(
            f"need at least 2 escalated and 2 non-escalated encounters that are in the store; found {dict(counts)} "
            f"among {len(data)} matched of {len(labels)} outcomes"
        )
    features = data[list(SIGNALS)].to_numpy(float)
    target = data["escalated"].astype(int).to_numpy()
    n_folds = int(min(folds, counts.min()))
    model = LogisticRegression(C=1.0, max_iter=1000)
    predicted = cross_val_predict(
        model, features, target, cv=StratifiedKFold(n_folds, shuffle=True, random_state=0), method="predict_proba"
    )[:, 1]
    auc = float(roc_auc_score(target, predicted))
    model.fit(features, target)
    weights = {name: round(float(w), 4) for name, w in zip(SIGNALS, model.coef_[0], strict=True)}
    digest = hashlib.sha256(json.dumps([weights, float(model.intercept_[0])]).encode()).hexdigest()[:8]
    return EscalationModel(
        weights=weights,
        intercept=round(float(model.intercept_[0]), 4),
        version=f"escalation-fitted-{digest}",
        training={
            "encounters": len(data),
            "escalated": int(target.sum()),
            "outcomes_unmatched": len(labels) - len(data),
            "cv_folds": n_folds,
            "cv_auc": round(auc, 4),
            "prior_model_cv_auc": round(_prior_auc(data, target), 4),
        },
    )


def _prior_auc(data: pd.DataFrame, target: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    prior = EscalationModel.default()
    scores = [prior.probability({name: "x" if row[name] else "" for name in SIGNALS}) for _, row in data.iterrows()]
    return float(roc_auc_score(target, scores))


def _as_bool(value: object) -> bool | None:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "t", "1.0"):
        return True
    if text in ("0", "false", "no", "n", "f", "0.0"):
        return False
    return None
