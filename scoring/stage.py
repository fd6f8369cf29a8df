"""The scoring stage: :class:`~bwc.records.Encounter` records in, :class:`~bwc.records.ScoredEncounter` out.

Officer utterances get a respect score with its reasons, the speech acts with their words and, on the audio path,
prosody relative to the officer's own baseline (and a ``raised_voice`` act). Each encounter gets respect, its
trajectory, the five trained behaviours and the early escalation signal. Respect is computed in one batch over all
encounters given, so a table of thousands of utterances costs one pass of the encoder.

Example
-------
>>> stage = ScoringStage.load()                                  # doctest: +SKIP
>>> scored = stage([encounter])                                  # doctest: +SKIP
>>> scored[0].encounter.escalation                               # doctest: +SKIP
0.08
"""

from __future__ import annotations

from pathlib import Path

from bwc.records import Encounter, ScoredEncounter, UtteranceScore
from models.acts import ACT_NAMES, ACTS_VERSION, detect_acts
from models.respect.model import RespectModel
from scoring.encounter import summarize
from scoring.escalation import EscalationModel
from scoring.prosody import relative_prosody, speech_rate

OFFICER_ROLE = "officer"
EXTRA_ACTS = ("raised_voice",)  # acts that come from the audio, not the words
ALL_ACTS: tuple[str, ...] = ACT_NAMES + EXTRA_ACTS


class ScoringStage:
    """Respect model, act rules and escalation model, loaded once.

    Parameters
    ----------
    respect
        The respect model.
    escalation
        The escalation model (the literature prior unless a department fitted its own).
    """

    def __init__(self, respect: RespectModel, escalation: EscalationModel) -> None:
        self.respect = respect
        self.escalation = escalation

    @classmethod
    def load(
        cls, respect_model: Path | None = None, escalation_model: Path | None = None, encoder: Path | None = None
    ) -> ScoringStage:
        return cls(RespectModel.load(respect_model, encoder), EscalationModel.load(escalation_model))

    @property
    def model_version(self) -> str:
        """Names every model and rule set behind a score, with weight hashes."""
        return f"{self.respect.version}; {ACTS_VERSION}; {self.escalation.version}"

    def __call__(self, encounters: list[Encounter]) -> list[ScoredEncounter]:
        officer_lines = [line for e in encounters for line in e.lines if line.role == OFFICER_ROLE]
        respect = iter(self.respect.score([line.text for line in officer_lines]))
        version = self.model_version
        scored = []
        for encounter in encounters:
            officer_acoustics = [
                line.acoustics for line in encounter.lines if line.role == OFFICER_ROLE and line.acoustics is not None
            ]
            prosody = iter(relative_prosody(officer_acoustics))
            utterances = []
            for line in encounter.lines:
                if line.role != OFFICER_ROLE:
                    utterances.append(UtteranceScore(line=line, respect=None, respect_reasons="", acts={}))
                    continue
                result = next(respect)
                acts = detect_acts(line.text, result.markers)
                heard = next(prosody) if line.acoustics is not None else None
                if heard is not None and heard.raised_voice:
                    acts["raised_voice"] = f"+{heard.loudness_rel_db:.0f} dB, +{heard.pitch_rel_st:.1f} st"
                n_words = line.n_words if line.n_words is not None else len(line.text.split())
                utterances.append(
                    UtteranceScore(
                        line=line,
                        respect=result.respect,
                        respect_reasons=result.explain(),
                        acts=acts,
                        loudness_rel_db=heard.loudness_rel_db if heard else None,
                        pitch_rel_st=heard.pitch_rel_st if heard else None,
                        speech_rate_wps=speech_rate(n_words, line.start, line.end),
                    )
                )
            summary = summarize(encounter, utterances, self.escalation)
            scored.append(ScoredEncounter(encounter=summary, utterances=tuple(utterances), model_version=version))
        return scored
