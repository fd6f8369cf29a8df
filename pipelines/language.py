"""The language stages on the audio path: one :class:`~bwc.records.SpeechResult` in, attributed and scored out.

attribution (which speaker is the officer; :mod:`scoring.roles`) → an :class:`~bwc.records.Encounter` whose lines
carry roles and acoustics → scoring (:class:`scoring.stage.ScoringStage`). A recording is one encounter, keyed by
its recording id, with the officer and time from the evidence metadata.

Example
-------
>>> stage = LanguageStage.from_config(config)             # doctest: +SKIP
>>> scored = stage(speech_result)                          # doctest: +SKIP
>>> scored.encounter.officer_speaker                       # doctest: +SKIP
'SPEAKER_00'
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bwc.config import BwcConfig
from bwc.records import Encounter, ScoredEncounter, SpeechResult, TranscriptLine
from scoring.roles import attribute_roles
from scoring.stage import ScoringStage


class LanguageStage:
    """Attribution and scoring, models loaded once (one per Ray actor)."""

    def __init__(self, scoring: ScoringStage, min_role_confidence: float) -> None:
        self.scoring = scoring
        self.min_role_confidence = min_role_confidence

    @classmethod
    def from_config(cls, config: BwcConfig) -> LanguageStage:
        settings = config.scoring
        stage = ScoringStage.load(
            Path(settings.respect_model) if settings.respect_model else None,
            Path(settings.escalation_model) if settings.escalation_model else None,
            Path(settings.encoder) if settings.encoder else None,
        )
        return cls(stage, settings.min_role_confidence)

    @property
    def model_version(self) -> str:
        return self.scoring.model_version

    def encounter(self, result: SpeechResult) -> Encounter:
        """The recording as an encounter: utterances as lines, speakers attributed."""
        recording = result.recording
        acoustics = (
            result.acoustics if len(result.acoustics) == len(result.utterances) else (None,) * len(result.utterances)
        )
        lines = tuple(
            TranscriptLine(
                encounter_id=recording.recording_id,
                turn=index + 1,
                role="unknown",
                text=utterance.text,
                utterance_id=utterance.utterance_id,
                speaker=utterance.speaker,
                start=utterance.start,
                end=utterance.end,
                acoustics=measured,
                n_words=len(utterance.words),
            )
            for index, (utterance, measured) in enumerate(zip(result.utterances, acoustics, strict=True))
        )
        return self.attributed(
            Encounter(
                encounter_id=recording.recording_id,
                lines=lines,
                officer_id=recording.metadata.officer_id,
                recorded_at=recording.metadata.recorded_at,
                recording_id=recording.recording_id,
            )
        )

    def attributed(self, encounter: Encounter) -> Encounter:
        """``encounter`` with every speaker's role worked out from its lines' words and sound."""
        roles = attribute_roles(list(encounter.lines), self.min_role_confidence)
        role_of = {role.speaker: role.role for role in roles}
        lines = tuple(replace(line, role=role_of.get(line.speaker or "", "unknown")) for line in encounter.lines)
        return replace(encounter, lines=lines, roles=tuple(roles))

    def score(self, encounter: Encounter) -> ScoredEncounter:
        """Score an attributed encounter (rescoring starts here, from the stored utterances)."""
        return self.scoring([encounter])[0]

    def __call__(self, result: SpeechResult) -> ScoredEncounter:
        return self.score(self.encounter(result))
