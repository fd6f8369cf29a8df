"""Role attribution: which diarized speaker is the camera wearer (the officer), which are community members, and
which are the radio or another officer.

Two kinds of evidence, combined per speaker:

- **sound**: the wearer's mouth is a few centimetres from the microphone, so the wearer is the loudest speaker above
  the noise floor and keeps the high frequencies that distance and reverberation take away; a radio is band-limited
  (almost nothing below 300 Hz or above 3 kHz).
- **words**: officers ask for licence and registration and say why they stopped someone; community members ask why
  they were stopped and call the wearer "officer"; dispatch talks in unit numbers and codes.

The wearer is the non-radio speaker with the highest combined score; the confidence is a logistic function of its
margin over the runner-up. Below ``min_confidence`` the recording's roles are left ``unknown`` rather than guessed.

Example
-------
>>> roles = attribute_roles(lines)                                       # doctest: +SKIP
>>> [(r.speaker, r.role, round(r.confidence, 2)) for r in roles]         # doctest: +SKIP
[('SPEAKER_00', 'officer', 0.97), ('SPEAKER_01', 'civilian', 0.97)]
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from bwc.records import SpeakerRole, TranscriptLine

SNR_SCALE_DB = 6.0  # a speaker this many dB closer to the noise floor than the loudest loses one point
HIGH_BAND_SCALE = 0.05  # and one point per 5 percentage points less energy above 3 kHz
TEXT_WEIGHT = 1.5  # points per officer (or minus per civilian) phrase, capped at TEXT_CAP
TEXT_CAP = 3.0
RADIO_MAX_LOW_BAND = 0.03  # radio: under 3% of energy below 300 Hz ...
RADIO_MAX_HIGH_BAND = 0.03  # ... and under 3% above 3 kHz
MIN_SPEECH_S = 0.5  # speakers with less speech than this stay unknown
# The wearer split in two: diarization can give one voice two labels (a cold, another day, a shout), and both then
# sound as near as the wearer. Nearness, for this only: a point per SNR_SCALE_DB of level and per halving of the
# share above 3 kHz, from the wearer's. Speakers above the widest gap in nearness below the wearer are the wearer too
# when that gap is at least WEARER_GAP points and wider than the near group's own spread, and they say nothing a
# community member says: speakers spread over distances (no clear gap) stay apart, and so does a lone other speaker.
WEARER_GAP = 2.0
MIN_HIGH_BAND = 1e-4  # floor on the share above 3 kHz before its logarithm is taken
DEFAULT_MIN_CONFIDENCE = 0.55

OFFICER_PHRASES = re.compile(
    r"\b(?:licen[sc]e|registration|proof of insurance|step out|i stopped you|pulled you over|reason i stopped"
    r"|i'?m officer|my name is officer|hands on the wheel|be right back|you'?re free to go|warning|citation"
    r"|ticket|dispatch)\b",
    re.IGNORECASE,
)
CIVILIAN_PHRASES = re.compile(
    r"(?:,\s*officer\b|\bofficer[.?!]?$|\bthank you,? officer\b|\bwhy (?:did|are|were) you (?:stop|pull)"
    r"|\bwhat did i do\b|\bhere you go\b|\bi didn'?t know\b|\bi had no idea\b|\bi don'?t consent\b|\bmy lawyer\b)",
    re.IGNORECASE,
)
RADIO_PHRASES = re.compile(
    r"\b(?:unit \w+|copy (?:that|your last)|10-\d+|be advised|stand by|en route|dispatch,)\b", re.I
)


@dataclass(frozen=True)
class SpeakerEvidence:
    """What one speaker's utterances show."""

    speaker: str  # diarization label
    speech_s: float  # seconds of their utterances
    snr_db: float | None  # median level above the noise floor
    high_band_ratio: float | None  # median share of energy above 3 kHz
    low_band_ratio: float | None  # median share of energy below 300 Hz
    officer_phrases: list[str]  # officer-like phrases said
    civilian_phrases: list[str]  # community-member-like phrases said
    radio_phrases: list[str]  # dispatch phrases said

    @property
    def radio_like(self) -> bool:
        band_limited = (
            self.low_band_ratio is not None
            and self.high_band_ratio is not None
            and self.low_band_ratio < RADIO_MAX_LOW_BAND
            and self.high_band_ratio < RADIO_MAX_HIGH_BAND
        )
        return band_limited or len(self.radio_phrases) >= 2

    @property
    def text_score(self) -> float:
        raw = TEXT_WEIGHT * (len(self.officer_phrases) - len(self.civilian_phrases))
        return max(-TEXT_CAP, min(TEXT_CAP, raw))


def gather_evidence(lines: list[TranscriptLine]) -> list[SpeakerEvidence]:
    """Per-speaker evidence from utterances that carry a speaker label (and, on the audio path, acoustics)."""
    by_speaker: dict[str, list[TranscriptLine]] = defaultdict(list)
    for line in lines:
        if line.speaker is not None:
            by_speaker[line.speaker].append(line)
    evidence = []
    for speaker, spoken in sorted(by_speaker.items()):
        measured = [line.acoustics for line in spoken if line.acoustics is not None and line.acoustics.snr_db > 0]

        def median(values: list[float]) -> float | None:
            return float(np.median(values)) if values else None

        evidence.append(
            SpeakerEvidence(
                speaker=speaker,
                speech_s=sum((line.end or 0.0) - (line.start or 0.0) for line in spoken),
                snr_db=median([a.snr_db for a in measured]),
                high_band_ratio=median([a.high_band_ratio for a in measured]),
                low_band_ratio=median([a.low_band_ratio for a in measured]),
                officer_phrases=[m.group(0) for line in spoken for m in OFFICER_PHRASES.finditer(line.text)],
                civilian_phrases=[m.group(0) for line in spoken for m in CIVILIAN_PHRASES.finditer(line.text)],
                radio_phrases=[m.group(0) for line in spoken for m in RADIO_PHRASES.finditer(line.text)],
            )
        )
    return evidence


def attribute_roles(
    lines: list[TranscriptLine],
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    use_text: bool = True,
    use_sound: bool = True,
) -> list[SpeakerRole]:
    """A role for every speaker in ``lines``."""
    evidence = gather_evidence(lines)
    radio = {e.speaker for e in evidence if e.radio_like}
    candidates = [e for e in evidence if e.speaker not in radio and e.speech_s >= MIN_SPEECH_S]
    loudest = max((e.snr_db for e in candidates if e.snr_db is not None), default=None)
    brightest = max((e.high_band_ratio for e in candidates if e.high_band_ratio is not None), default=None)

    def total(e: SpeakerEvidence) -> float:
        score = e.text_score if use_text else 0.0
        if use_sound and e.snr_db is not None and loudest is not None:
            score += (e.snr_db - loudest) / SNR_SCALE_DB
        if use_sound and e.high_band_ratio is not None and brightest is not None:
            score += (e.high_band_ratio - brightest) / HIGH_BAND_SCALE
        return score

    ranked = sorted(candidates, key=total, reverse=True)
    officer, confidence = None, 0.0
    if ranked:
        # A lone speaker has no runner-up: only its own words can make attribution sure.
        runner_up = total(ranked[1]) if len(ranked) > 1 else total(ranked[0]) - 0.25 - max(0.0, ranked[0].text_score)
        margin = total(ranked[0]) - runner_up
        confidence = 1.0 / (1.0 + math.exp(-2.0 * margin))
        officer = ranked[0] if confidence >= min_confidence else None
    wearer_too = set(_wearer_split(officer, candidates)) if officer is not None and use_sound else set()
    if wearer_too:  # sure of the wearer's voice now by its nearest rival outside it
        rivals = [total(e) for e in candidates if e.speaker not in wearer_too and e.speaker != officer.speaker]
        margin = total(officer) - max(rivals, default=total(officer) - 0.25 - max(0.0, officer.text_score))
        confidence = 1.0 / (1.0 + math.exp(-2.0 * margin))
    roles = []
    for e in evidence:
        if e.speaker in radio:
            roles.append(SpeakerRole(e.speaker, "radio", 0.9, _describe(e, "band-limited, dispatch phrases")))
        elif officer is not None and e.speaker == officer.speaker:
            roles.append(SpeakerRole(e.speaker, "officer", confidence, _describe(e, "closest to the camera")))
        elif e.speaker in wearer_too:
            roles.append(
                SpeakerRole(e.speaker, "officer", confidence, _describe(e, "as near as the wearer: the wearer's voice"))
            )
        elif officer is not None and e.speech_s >= MIN_SPEECH_S:
            role = "other_officer" if len(e.officer_phrases) >= 2 and not e.civilian_phrases else "civilian"
            roles.append(SpeakerRole(e.speaker, role, confidence, _describe(e, "farther from the camera")))
        else:
            roles.append(SpeakerRole(e.speaker, "unknown", confidence, _describe(e, "not enough evidence")))
    return roles


def _wearer_split(officer: SpeakerEvidence, candidates: list[SpeakerEvidence]) -> list[str]:
    """Speakers that sound as near as the wearer, set apart from the rest by a wide gap (see ``WEARER_GAP``)."""
    if officer.snr_db is None or officer.high_band_ratio is None:
        return []

    def nearness(e: SpeakerEvidence) -> float:
        assert e.snr_db is not None and e.high_band_ratio is not None and officer.snr_db is not None
        brightness = math.log2(max(e.high_band_ratio, MIN_HIGH_BAND) / max(officer.high_band_ratio, MIN_HIGH_BAND))
        return (e.snr_db - officer.snr_db) / SNR_SCALE_DB + brightness

    others = sorted(
        (
            (nearness(e), e)
            for e in candidates
            if e.speaker != officer.speaker and e.snr_db is not None and e.high_band_ratio is not None
        ),
        key=lambda item: -item[0],
    )
    levels = [0.0] + [min(0.0, value) for value, _ in others]
    gaps = [levels[i] - levels[i + 1] for i in range(len(levels) - 1)]
    if not gaps:
        return []
    widest = int(np.argmax(gaps))  # the speakers before it are the near group
    if widest == 0 or gaps[widest] < WEARER_GAP or gaps[widest] <= -levels[widest]:
        return []
    return [e.speaker for _, e in others[:widest] if not e.civilian_phrases and e.text_score >= 0]


def _describe(e: SpeakerEvidence, summary: str) -> str:
    parts = [summary]
    if e.snr_db is not None:
        parts.append(f"{e.snr_db:.0f} dB above the noise floor, {100 * (e.high_band_ratio or 0):.0f}% above 3 kHz")
    if e.officer_phrases:
        parts.append("said " + ", ".join(f"'{p}'" for p in e.officer_phrases[:3]))
    if e.civilian_phrases:
        parts.append("said " + ", ".join(f"'{p}'" for p in e.civilian_phrases[:3]))
    return "; ".join(parts)
