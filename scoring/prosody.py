"""Prosody of officer speech: loudness and pitch relative to the same officer's own baseline in the recording, and
speech rate. Tone is what listeners hear first (Camp et al. 2021); a ``raised_voice`` act marks utterances far above
the officer's own level and pitch — relative, so a naturally loud or high voice is not flagged.

Example
-------
>>> from bwc.records import UtteranceAcoustics
>>> calm = UtteranceAcoustics(-30.0, 20.0, 0.1, 0.1, 120.0, 3.0)
>>> shout = UtteranceAcoustics(-20.0, 30.0, 0.1, 0.1, 180.0, 6.0)
>>> [p.raised_voice for p in relative_prosody([calm, calm, calm, shout])]
[False, False, False, True]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bwc.records import UtteranceAcoustics

RAISED_LOUDNESS_DB = 6.0  # at least this much louder than the officer's median utterance ...
RAISED_PITCH_ST = 2.0  # ... and this many semitones higher in pitch, to count as a raised voice
MIN_RATE_SPAN_S = 0.5  # speech rate is not reported for shorter utterances (a word or two says nothing about pace)


@dataclass(frozen=True)
class Prosody:
    """One utterance's prosody relative to its speaker's baseline."""

    loudness_rel_db: float  # level minus the speaker's median level in the recording, dB
    pitch_rel_st: float | None  # pitch minus the speaker's median pitch, semitones; None when unvoiced
    raised_voice: bool  # far above the speaker's own loudness and pitch


def relative_prosody(acoustics: list[UtteranceAcoustics]) -> list[Prosody]:
    """Prosody of each of one speaker's utterances against that speaker's medians."""
    if not acoustics:
        return []
    median_level = float(np.median([a.level_db for a in acoustics]))
    pitches = [a.pitch_hz for a in acoustics if a.pitch_hz]
    median_pitch = float(np.median(pitches)) if pitches else None
    results = []
    for a in acoustics:
        loudness = a.level_db - median_level
        pitch = 12.0 * math.log2(a.pitch_hz / median_pitch) if a.pitch_hz and median_pitch else None
        raised = loudness >= RAISED_LOUDNESS_DB and pitch is not None and pitch >= RAISED_PITCH_ST
        results.append(Prosody(loudness_rel_db=loudness, pitch_rel_st=pitch, raised_voice=raised))
    return results


def speech_rate(n_words: int, start: float | None, end: float | None) -> float | None:
    """Words per second over the utterance's span; None without times or for very short utterances."""
    if start is None or end is None or end - start < MIN_RATE_SPAN_S:
        return None
    return n_words / (end - start)
