"""Per-encounter signals from scored officer utterances: respect and its trajectory, the five behaviours trained in
procedural-justice courses (Camp et al. 2024), and the early escalation signal (Rho et al. 2023).

Example
-------
>>> behaviours = trained_behaviours(["Hi, I'm Officer Chen.", "I stopped you because your light is out, sir."])
>>> [name for name, words in behaviours.items() if words]
['greeting_introduction', 'reason_early', 'formal_title']
"""

from __future__ import annotations

import numpy as np

from bwc.records import Encounter, EncounterScore, UtteranceScore
from models.acts import detect_acts
from scoring.escalation import EscalationModel, early_signals, early_words

BEHAVIOURS: dict[str, str] = {  # Camp et al. (2024) -> description
    "greeting_introduction": "greeted and/or introduced themselves",
    "reason_early": "stated the reason for the stop within the first 45 words",
    "safety_concern": "expressed concern for the person's safety",
    "reassurance": "reassured the person",
    "formal_title": "used formal titles (sir, ma'am, Mr./Ms.)",
}


def trained_behaviours(officer_texts: list[str]) -> dict[str, str]:
    """Each behaviour in :data:`BEHAVIOURS` -> the words that showed it, or "" when absent."""
    found = dict.fromkeys(BEHAVIOURS, "")
    for text in officer_texts:
        acts = detect_acts(text)
        for act, behaviour in (
            ("greeting", "greeting_introduction"),
            ("introduction", "greeting_introduction"),
            ("safety_concern", "safety_concern"),
            ("reassurance", "reassurance"),
            ("formal_title", "formal_title"),
        ):
            if act in acts and not found[behaviour]:
                found[behaviour] = acts[act]
    for text in early_words(officer_texts):
        reason = detect_acts(text).get("reason_for_stop")
        if reason:
            found["reason_early"] = reason
            break
    return found


def trajectory(respect: list[float]) -> tuple[float | None, float | None, float | None]:
    """(mean of the first third, mean of the last third, least-squares slope per utterance)."""
    if not respect:
        return None, None, None
    values = np.asarray(respect, dtype=float)
    third = max(1, len(values) // 3)
    slope = float(np.polyfit(np.arange(len(values)), values, 1)[0]) if len(values) >= 2 else 0.0
    return float(values[:third].mean()), float(values[-third:].mean()), slope


def summarize(encounter: Encounter, scores: list[UtteranceScore], escalation: EscalationModel) -> EncounterScore:
    """The encounter's signals from its scored utterances (officer lines are those with a respect score)."""
    officer = [score for score in scores if score.respect is not None]
    officer_texts = [score.line.text for score in officer]
    respect = [float(score.respect) for score in officer if score.respect is not None]
    first, last, slope = trajectory(respect)
    signals = early_signals(officer_texts)
    behaviours = trained_behaviours(officer_texts)
    reasons = escalation.reasons(signals) + [
        f"{BEHAVIOURS[name]} ('{words}')" for name, words in behaviours.items() if words
    ]
    officer_role = next((role for role in encounter.roles if role.role == "officer"), None)
    return EncounterScore(
        encounter_id=encounter.encounter_id,
        officer_id=encounter.officer_id,
        recorded_at=encounter.recorded_at,
        recording_id=encounter.recording_id,
        n_officer_utterances=len(officer),
        respect=float(np.mean(respect)) if respect else None,
        respect_first=first,
        respect_last=last,
        respect_slope=slope,
        escalation=escalation.probability(signals) if officer else 0.0,
        behaviours={name: bool(words) for name, words in behaviours.items()},
        reasons=tuple(reasons),
        officer_speaker=officer_role.speaker if officer_role else None,
        role_confidence=officer_role.confidence if officer_role else None,
    )
