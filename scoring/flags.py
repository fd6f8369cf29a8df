"""Department-relative flags: the encounters that went particularly poorly or particularly well, with the reasons
and the officer utterances behind each.

A flag compares an encounter with every other scored encounter given, so the bar is the department's own norm, not
a fixed number. ``poor`` weighs low respect, the early escalation signal, threats, insults, profanity and a command
before any reason (Voigt et al. 2017; Rho et al. 2023); ``exemplary`` needs high respect and the five behaviours
procedural-justice training teaches (Camp et al. 2024) with nothing hostile said. Every encounter-level value is
shrunk towards the department mean by its reliability ``n / (n + k)`` (empirical Bayes, ``k`` in officer utterances,
estimated from the store unless configured), so three curt utterances cannot make an extreme by chance. Thresholds
and weights come from :class:`~bwc.config.FlagsConfig`.

Example
-------
>>> respect = [[0.9, 0.3, 0.6], [-0.8, -0.2], [1.2, 0.6, 0.7, 0.4], [0.3], [-0.6, 0.2, -0.1]]  # per encounter
>>> shrinkage = estimate_shrinkage(respect)
>>> shrinkage.source, round(shrinkage.k, 2), round(shrinkage.reliability(3), 2)
('estimated', 0.63, 0.83)
>>> estimate_shrinkage(respect, configured=10.0).reliability(3)
0.23076923076923078
>>> summary = flag_store(Store("/data/bwc-store"), BwcConfig().flags)     # doctest: +SKIP
>>> summary.describe()                                                     # doctest: +SKIP
'flags: 12 poor, 9 exemplary of 118 encounters; shrinkage k=3.41 (estimated); department respect +0.08'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from bwc.config import FlagsConfig
from bwc.store import SCHEMAS, Store
from scoring.encounter import BEHAVIOURS
from scoring.escalation import early_signals

FLAGS_VERSION = "flags-1"  # bump when the method changes, so every flag names the rules that made it
POOR, EXEMPLARY = "poor", "exemplary"
OFFICER_ROLE = "officer"
COMPONENTS = ("low_respect", "escalation", "threat", "insult", "profanity", "command_before_reason")  # poor score
HOSTILE_ACTS = ("threat", "insult", "profanity")  # listed whenever present; any of them rules out `exemplary`
DEFAULT_K = 5.0  # prior strength when there are too few encounters to estimate it
MIN_ENCOUNTERS_TO_ESTIMATE = 5  # below this the between-encounter variance is too noisy to estimate k from
K_RANGE = (0.5, 50.0)  # an estimate outside this says more about too little data than about the department
TAU2_FLOOR = 1e-4  # between-encounter variance floor (corpus SD²): all spread being noise would make k infinite
REASON_MIN_CONTRIBUTION = 0.5  # weighted z a poor component needs to be named as a reason (hostile acts always are)
BEHAVIOUR_WEIGHT = 0.5  # exemplary score = z(shrunk respect) + this × z(shrunk behaviours present)
WORDS_QUOTED = 3  # distinct quotes per hostile act in a reason
QUOTE_MAX_WORDS = 10  # a threat is quoted to the end of its sentence, at most this many words
# Trained behaviour -> the utterance acts that show it (reason_early: a reason within the first 45 officer words).
BEHAVIOUR_ACTS: dict[str, tuple[str, ...]] = {
    "greeting_introduction": ("greeting", "introduction"),
    "reason_early": ("reason_for_stop",),
    "safety_concern": ("safety_concern",),
    "reassurance": ("reassurance",),
    "formal_title": ("formal_title",),
}


@dataclass(frozen=True)
class Shrinkage:
    """How far encounter means are pulled towards the department mean."""

    k: float  # prior strength in officer utterances: reliability of an encounter with n of them is n / (n + k)
    source: str  # estimated | configured | default (too few encounters to estimate)
    mean_respect: float | None  # department mean: the mean of encounter mean respects (each encounter counts once)
    within_variance: float | None  # σ²: pooled within-encounter variance of utterance respect
    between_variance: float | None  # τ²: variance of true encounter means (floored)

    def reliability(self, n: np.ndarray | float) -> np.ndarray | float:
        """``n / (n + k)``: the share of an encounter's own deviation from the department mean that is kept."""
        return n / (n + self.k)


@dataclass(frozen=True)
class DepartmentScores:
    """Poor and exemplary scores of every considered encounter (the percentiles' denominator)."""

    table: pd.DataFrame  # one row per considered encounter: components, shrunk values, z-scores, scores, percentiles
    officer: pd.DataFrame  # the officer utterances of those encounters, in turn order
    shrinkage: Shrinkage  # what the shrinkage used
    excluded: int  # scored encounters without officer language to judge, left out


@dataclass(frozen=True)
class FlagSummary:
    """What one flagging pass did."""

    considered: int  # encounters with officer language: the denominator of every percentile
    excluded: int  # scored encounters without officer language (or utterance rows), left out
    poor: int  # encounters flagged poor
    exemplary: int  # encounters flagged exemplary
    shrinkage_k: float  # prior strength used, in officer utterances
    shrinkage_source: str  # estimated | configured | default
    department_respect: float | None  # department mean respect (mean of encounter means), corpus SDs

    def describe(self) -> str:
        """One line for a person: counts, shrinkage and the department mean."""
        excluded = f" ({self.excluded} without officer speech left out)" if self.excluded else ""
        mean = "n/a" if self.department_respect is None else f"{self.department_respect:+.2f}"
        return (
            f"flags: {self.poor} poor, {self.exemplary} exemplary of {self.considered} encounters{excluded}; "
            f"shrinkage k={self.shrinkage_k:.2f} ({self.shrinkage_source}); department respect {mean}"
        )


def estimate_shrinkage(respect: Sequence[Sequence[float]], configured: float | None = None) -> Shrinkage:
    """Empirical-Bayes prior strength from the utterance respects of each encounter (one sequence per encounter).

    σ² is the pooled within-encounter variance, τ² = var(encounter means) − mean(σ² / n) floored at
    :data:`TAU2_FLOOR`, and k = σ² / τ² clipped to :data:`K_RANGE`. A configured k is used as given.

    Parameters
    ----------
    respect
        Officer utterance respect per encounter; empty encounters are ignored.
    configured
        ``FlagsConfig.shrinkage_utterances``: when set, k is this (the variances are still reported).

    Raises
    ------
    ValueError
        When ``configured`` is negative.
    """
    groups = [np.asarray(values, dtype=float) for values in respect if len(values)]
    if configured is not None and configured < 0:
        raise ValueError(f"shrinkage_utterances must be 0 or more, got {configured}")
    if not groups:
        return Shrinkage(configured if configured is not None else DEFAULT_K, _source(configured), None, None, None)
    means = np.array([group.mean() for group in groups])
    sizes = np.array([len(group) for group in groups], dtype=float)
    # The department mean is the typical encounter (mean of encounter means), not the pooled utterance mean, so a few
    # very long encounters cannot set the norm every other encounter is judged against.
    mean = float(means.mean())
    degrees = float((sizes - 1).sum())
    within = float(sum(((group - group.mean()) ** 2).sum() for group in groups) / degrees) if degrees > 0 else None
    between = None
    if within is not None and len(groups) >= 2:
        between = max(float(means.var(ddof=1)) - float((within / sizes).mean()), TAU2_FLOOR)
    if configured is not None:
        return Shrinkage(float(configured), "configured", mean, within, between)
    if within is None or between is None or len(groups) < MIN_ENCOUNTERS_TO_ESTIMATE:
        return Shrinkage(DEFAULT_K, "default", mean, within, between)
    k = float(np.clip(within / between, *K_RANGE))
    return Shrinkage(k, "estimated", mean, within, between)


def score_department(encounters: pd.DataFrame, utterances: pd.DataFrame, config: FlagsConfig) -> DepartmentScores:
    """Poor and exemplary scores and percentiles of every encounter with officer language.

    Parameters
    ----------
    encounters
        ``encounter_scores`` rows. When an encounter id appears more than once the last row is kept (callers order
        rows oldest first; :func:`flag_store` does).
    utterances
        ``utterance_scores`` rows; officer lines (role officer, respect present) are used, the last row of a
        repeated ``(encounter_id, turn)`` kept.
    config
        Weights, shrinkage and the exemplary minimum.

    Raises
    ------
    ValueError
        On a weight for an unknown component, or a negative configured k.
    """
    unknown = sorted(set(config.weights) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"flags weights: unknown component(s) {unknown}; known: {', '.join(COMPONENTS)}")
    encounters = _with_columns(encounters, "encounter_scores").drop_duplicates("encounter_id", keep="last")
    utterances = _with_columns(utterances, "utterance_scores")
    officer = utterances[
        (utterances["role"] == OFFICER_ROLE)
        & utterances["respect"].notna()
        & utterances["encounter_id"].isin(encounters["encounter_id"])
    ]
    officer = officer.drop_duplicates(["encounter_id", "turn"], keep="last").sort_values(["encounter_id", "turn"])
    officer = officer.reset_index(drop=True)
    for act in ("command", *HOSTILE_ACTS, *sorted({a for acts in BEHAVIOUR_ACTS.values() for a in acts})):
        officer[f"act_{act}"] = officer[f"act_{act}"].eq(True)  # null (never written for officer lines) = absent
    # Encounters without officer utterances (or whose respect is null) are excluded, not scored as average: they
    # have no officer language to judge, and counting them would push every percentile up by silence.
    groups = officer.groupby("encounter_id", sort=True)
    shrinkage = estimate_shrinkage([group.to_numpy() for _, group in groups["respect"]], config.shrinkage_utterances)
    # Every per-encounter aggregate below is indexed by encounter id and taken in this one order.
    per_encounter = groups.agg(
        n_officer_utterances=("respect", "size"),
        respect=("respect", "mean"),
        **{act: (f"act_{act}", "mean") for act in HOSTILE_ACTS},  # share of officer utterances with the act
    )
    ids = per_encounter.index
    table = encounters.set_index("encounter_id").loc[ids].reset_index()
    excluded = len(encounters) - len(table)
    if table.empty:
        return DepartmentScores(table, officer, shrinkage, excluded)

    n = per_encounter["n_officer_utterances"].to_numpy(dtype=float)
    table["n_officer_utterances"] = n.astype(int)
    table["respect"] = per_encounter["respect"].to_numpy()
    table["reliability"] = rho = shrinkage.reliability(n)
    mean = float(shrinkage.mean_respect if shrinkage.mean_respect is not None else 0.0)
    table["respect_shrunk"] = mean + rho * (table["respect"] - mean)
    # Raw encounter-level components; each is shrunk towards its department mean with the same reliability below.
    table["escalation"] = pd.to_numeric(table["escalation"], errors="coerce").fillna(0.0).astype(float)
    for act in HOSTILE_ACTS:
        table[act] = per_encounter[act].to_numpy(dtype=float)
    # early_signals reads only the first 45 officer words, so this costs a few rule passes per encounter.
    commands = {
        eid: early_signals(texts.astype(str).tolist())["command_before_reason"] for eid, texts in groups["text"]
    }
    table["command_words"] = [commands[eid] for eid in ids]
    table["command_before_reason"] = (table["command_words"] != "").astype(float)
    table["hostile"] = (table[list(HOSTILE_ACTS)] > 0).any(axis=1)

    table["z_low_respect"] = _z(-table["respect_shrunk"])  # already shrunk: not shrunk twice
    for component in COMPONENTS[1:]:
        table[f"z_{component}"] = _z(_shrink(table[component], rho))
    table["poor_score"] = sum(config.weights.get(c, 0.0) * table[f"z_{c}"] for c in COMPONENTS)
    table["respect_z"] = -table["z_low_respect"]
    behaviours = pd.to_numeric(table["behaviours_present"], errors="coerce").fillna(0).astype(float)
    table["exemplary_score"] = table["respect_z"] + BEHAVIOUR_WEIGHT * _z(_shrink(behaviours, rho))
    table["exemplary_eligible"] = (behaviours >= config.exemplary_min_behaviours) & ~table["hostile"]
    for flag in (POOR, EXEMPLARY):
        # Share of considered encounters scoring at or below this one: the top encounter is at 100.
        table[f"{flag}_percentile"] = table[f"{flag}_score"].rank(pct=True, method="max") * 100.0
    return DepartmentScores(table, officer, shrinkage, excluded)


def compute_flags(
    encounters: pd.DataFrame, utterances: pd.DataFrame, config: FlagsConfig, now: datetime | None = None
) -> tuple[list[dict[str, Any]], FlagSummary]:
    """``flags`` rows (one per flagged encounter and flag) for the encounters given, judged against each other.

    Parameters
    ----------
    encounters
        ``encounter_scores`` rows: every encounter the percentiles are computed against.
    utterances
        ``utterance_scores`` rows of those encounters (officer lines are used).
    config
        Thresholds, weights, shrinkage and the number of spans kept.
    now
        ``flagged_at``; the current time when None (a naive time is taken as UTC).

    Returns
    -------
    rows, summary
        Rows shaped as ``SCHEMAS["flags"]``, poor first then exemplary, highest score first; and a summary.
    """
    flagged_at = datetime.now(UTC) if now is None else _as_utc(now)
    scores = score_department(encounters, utterances, config)
    table, shrinkage = scores.table, scores.shrinkage
    mean = shrinkage.mean_respect or 0.0
    lines = dict(tuple(scores.officer.groupby("encounter_id", sort=False))) if not table.empty else {}
    escalation_median = float(table["escalation"].median()) if not table.empty else 0.0
    version = _model_version(config, shrinkage, table)
    rows: list[dict[str, Any]] = []
    for row in table.to_dict("records"):
        officer = lines[row["encounter_id"]]
        candidates = []
        if row["poor_percentile"] >= config.poor_percentile and row["poor_score"] > 0:
            reasons = _poor_reasons(row, officer, config, escalation_median)
            if reasons:
                candidates.append((POOR, reasons, _poor_spans(row, officer, mean)))
        if (
            row["exemplary_eligible"]
            and row["exemplary_percentile"] >= config.exemplary_percentile
            and row["exemplary_score"] > 0
        ):
            candidates.append((EXEMPLARY, _exemplary_reasons(row, officer), _exemplary_spans(row, officer, mean)))
        for flag, reasons, spans in candidates:
            kept = _in_time_order(spans[: config.max_spans])
            rows.append(
                {
                    "encounter_id": row["encounter_id"],
                    "flag": flag,
                    "score": float(row[f"{flag}_score"]),
                    "percentile": float(row[f"{flag}_percentile"]),
                    "reasons": "; ".join(text for text, _ in reasons),
                    "reasons_deidentified": "; ".join(public for _, public in reasons),
                    "spans": json.dumps(kept, ensure_ascii=False),
                    "recording_id": _value(row.get("recording_id")),
                    "officer_id": _value(row.get("officer_id")),
                    "recorded_at": _timestamp(row.get("recorded_at")),
                    "n_officer_utterances": int(row["n_officer_utterances"]),
                    "respect_shrunk": float(row["respect_shrunk"]),
                    "flagged_at": flagged_at,
                    "model_version": version,
                }
            )
    rows.sort(key=lambda r: (r["flag"] != POOR, -r["score"], r["encounter_id"]))
    summary = FlagSummary(
        considered=len(table),
        excluded=scores.excluded,
        poor=sum(r["flag"] == POOR for r in rows),
        exemplary=sum(r["flag"] == EXEMPLARY for r in rows),
        shrinkage_k=shrinkage.k,
        shrinkage_source=shrinkage.source,
        department_respect=shrinkage.mean_respect,
    )
    return rows, summary


def flag_store(store: Store, config: FlagsConfig, now: datetime | None = None) -> FlagSummary:
    """Flag every scored encounter in ``store`` and replace ``flags/part-current.parquet`` with the result.

    The table is written even when nothing is flagged, so readers always see the current state. When two parts of
    ``encounter_scores`` hold the same encounter id (two transcript tables scored the same ids), the part written
    last wins, with its own utterances: the newest scoring of an encounter is the one a department meant.
    """
    encounters = store.read_parts("encounter_scores")
    utterances = store.read_parts("utterance_scores")
    encounters = encounters.drop_duplicates("encounter_id", keep="last")  # parts are read oldest first
    chosen = encounters[["encounter_id", "part"]]
    utterances = utterances.merge(chosen, on=["encounter_id", "part"], how="inner")
    rows, summary = compute_flags(encounters.drop(columns="part"), utterances.drop(columns="part"), config, now)
    store.write_rows("flags", "part-current", rows)
    return summary


def _with_columns(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """``frame`` with every column of ``table``'s schema (absent ones empty), so empty inputs need no special case."""
    frame = frame.copy()
    for name in SCHEMAS[table].names:
        if name not in frame.columns:
            frame[name] = None
    frame["encounter_id"] = frame["encounter_id"].astype(str) if len(frame) else frame["encounter_id"]
    return frame


def _shrink(values: pd.Series, reliability: np.ndarray) -> pd.Series:
    """Each value pulled towards the mean over encounters, keeping ``reliability`` of its deviation."""
    values = values.astype(float)
    return values.mean() + reliability * (values - values.mean())


def _z(values: pd.Series) -> pd.Series:
    """Department z-scores; a component nobody differs on contributes 0."""
    values = values.astype(float)
    spread = float(values.std(ddof=0)) if len(values) else 0.0
    if not math.isfinite(spread) or spread < 1e-12:
        return pd.Series(0.0, index=values.index)
    return (values - values.mean()) / spread


def _poor_reasons(
    row: dict[str, Any], officer: pd.DataFrame, config: FlagsConfig, escalation_median: float
) -> list[tuple[str, str]]:
    """Reasons for a poor flag, largest contribution first: components contributing at least
    :data:`REASON_MIN_CONTRIBUTION`, and every hostile act present. Each as (with the words, without them): the
    de-identified text is built without the words, never by cutting them out of the other."""
    n = int(row["n_officer_utterances"])
    reasons = []
    for component in COMPONENTS:
        contribution = config.weights.get(component, 0.0) * float(row[f"z_{component}"])
        present = component in HOSTILE_ACTS and row[component] > 0
        if contribution < REASON_MIN_CONTRIBUTION and not present:
            continue
        if component == "low_respect":
            text = f"respect {row['z_low_respect']:.1f} SD below the department mean (shrunk from {_count(n)})"
            public = text
        elif component == "escalation":
            text = f"escalation signal {row['escalation']:.2f} (department median {escalation_median:.2f})"
            public = text
        elif component == "command_before_reason":
            text = f"a command before any reason: '{row['command_words']}'"
            public = "a command before any reason"
        else:
            said = officer[officer[f"act_{component}"]]
            quotes = _distinct([_quote(line, component) for line in said.to_dict("records")])
            shown = ", ".join(f"'{quote}'" for quote in quotes[:WORDS_QUOTED])
            text = f"{component}: {shown} (in {len(said)} of {_count(n)})"
            public = f"{component} (in {len(said)} of {_count(n)})"
        reasons.append((contribution, text, public))
    reasons.sort(key=lambda item: -item[0])
    return [(text, public) for _, text, public in reasons]


def _exemplary_reasons(row: dict[str, Any], officer: pd.DataFrame) -> list[tuple[str, str]]:
    """Respect above the mean, then each trained behaviour shown, with its words; each as (with the words,
    without them)."""
    reasons = []
    if row["respect_z"] > 0:
        n = int(row["n_officer_utterances"])
        text = f"respect {row['respect_z']:.1f} SD above the department mean (shrunk from {_count(n)})"
        reasons.append((text, text))
    for name, acts in BEHAVIOUR_ACTS.items():
        if not row.get(f"pj_{name}"):
            continue
        quotes = _distinct([_quote(line, act) for act, line in _first_showing(officer, acts)])
        shown = " (" + ", ".join(f"'{quote}'" for quote in quotes) + ")" if quotes else ""
        reasons.append((f"{BEHAVIOURS[name]}{shown}", BEHAVIOURS[name]))
    return reasons


def _poor_spans(row: dict[str, Any], officer: pd.DataFrame, mean: float) -> list[dict[str, Any]]:
    """Hostile utterances, the command before any reason, then the lowest-respect ones below the mean."""
    spans: dict[int, dict[str, Any]] = {}
    for line in officer.to_dict("records"):
        said = [f"{act}: '{_quote(line, act)}'" for act in HOSTILE_ACTS if line[f"act_{act}"]]
        if said:
            _add_span(spans, line, "; ".join(said))
    if row["command_words"]:
        commands = officer[officer["act_command"]].to_dict("records")
        line = next((c for c in commands if _evidence(c).get("command") == row["command_words"]), None)
        if line is None and commands:
            line = commands[0]
        if line is not None:
            _add_span(spans, line, f"a command before any reason: '{row['command_words']}'")
    for line in officer[officer["respect"] < mean].sort_values(["respect", "turn"]).to_dict("records"):
        _add_span(spans, line, f"respect {line['respect']:+.2f} (department mean {mean:+.2f})")
    return list(spans.values())


def _exemplary_spans(row: dict[str, Any], officer: pd.DataFrame, mean: float) -> list[dict[str, Any]]:
    """One utterance per trained behaviour shown, then the highest-respect ones above the mean."""
    spans: dict[int, dict[str, Any]] = {}
    for name, acts in BEHAVIOUR_ACTS.items():
        if row.get(f"pj_{name}"):
            showing = _first_showing(officer, acts)
            if showing:
                act, line = showing[0]
                _add_span(spans, line, f"{BEHAVIOURS[name]} ('{_quote(line, act)}')")
    ranked = officer[officer["respect"] > mean].sort_values(["respect", "turn"], ascending=[False, True])
    for line in ranked.to_dict("records"):
        _add_span(spans, line, f"respect {line['respect']:+.2f} (department mean {mean:+.2f})")
    return list(spans.values())


def _first_showing(officer: pd.DataFrame, acts: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """For each act, the first officer utterance (turn order) that shows it."""
    found = []
    for act in acts:
        said = officer[officer[f"act_{act}"]]
        if not said.empty:
            found.append((act, said.iloc[0].to_dict()))
    return found


def _add_span(spans: dict[int, dict[str, Any]], line: dict[str, Any], why: str) -> None:
    """Add ``line`` as a span, or add ``why`` to its span when it is already there (importance order kept)."""
    turn = int(line["turn"])
    if turn in spans:
        spans[turn]["why"] += f"; {why}"
        return
    spans[turn] = {
        "utterance_id": _value(line.get("utterance_id")),
        "recording_id": _value(line.get("recording_id")),
        "turn": turn,
        "start": _number(line.get("start")),
        "end": _number(line.get("end")),
        "why": why,
    }


def _in_time_order(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """By start time when every span has one, else by turn."""
    if all(span["start"] is not None for span in spans):
        return sorted(spans, key=lambda span: (span["start"], span["turn"]))
    return sorted(spans, key=lambda span: span["turn"])


def _evidence(line: dict[str, Any]) -> dict[str, str]:
    raw = line.get("acts_evidence")
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        content = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return content if isinstance(content, dict) else {}


def _quote(line: dict[str, Any], act: str) -> str:
    """The words that showed ``act``, in the utterance's own spelling; a threat runs on to the end of its sentence
    (at most :data:`QUOTE_MAX_WORDS` words), since "or I'll" alone does not say what was threatened."""
    words = str(_evidence(line).get(act, "")).strip()
    text = str(line.get("text") or "")
    at = text.lower().find(words.lower()) if words else -1
    if at < 0:
        return words
    quoted = text[at : at + len(words)]
    if act == "threat":
        sentence = re.split(r"(?<=[.!?])\s", text[at:], maxsplit=1)[0]
        extended = " ".join(sentence.split()[:QUOTE_MAX_WORDS]).rstrip(".!?,;:")
        quoted = extended if len(extended) > len(quoted) else quoted
    return quoted


def _distinct(quotes: list[str]) -> list[str]:
    """Quotes in order without repeats or quotes another one already contains ('my name is' in 'Hello sir, my
    name is')."""
    first: dict[str, str] = {}
    for quote in quotes:
        if quote:
            first.setdefault(quote.lower(), quote)
    return [
        quote
        for low, quote in first.items()
        if not any(low != other and re.search(rf"\b{re.escape(low)}\b", other) for other in first)
    ]


def _model_version(config: FlagsConfig, shrinkage: Shrinkage, table: pd.DataFrame) -> str:
    weights = ", ".join(f"{c}={config.weights.get(c, 0.0):g}" for c in COMPONENTS)
    versions = sorted({str(v) for v in table["model_version"].dropna()}) if not table.empty else []
    return (
        f"{FLAGS_VERSION} (k={shrinkage.k:.2f} {shrinkage.source}; poor≥p{config.poor_percentile:g}; "
        f"exemplary≥p{config.exemplary_percentile:g} with ≥{config.exemplary_min_behaviours} behaviours; "
        f"weights {weights}); scores: {' | '.join(versions)}"
    )


def _source(configured: float | None) -> str:
    return "configured" if configured is not None else "default"


def _count(n: int) -> str:
    return f"{n} officer utterance{'s' if n != 1 else ''}"


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _timestamp(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    return _as_utc(stamp.to_pydatetime())


def _value(value: Any) -> Any:
    """None for missing values (NaN, NaT, None), else the value."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value


def _number(value: Any) -> float | None:
    value = _value(value)
    return None if value is None else float(value)
