"""Acoustic measurements of utterances on the 16 kHz mono decode: level, distance cues and pitch.

These are what attribution (the camera wearer is closest to the microphone: loud, far above the noise floor, with
the high frequencies that distance and reverberation take away) and prosody (loudness and pitch against the
speaker's own baseline) work from. They are measured once, in the speech stage, so that later stages need no audio.

Example
-------
>>> floor = noise_floor_db(audio)                                    # doctest: +SKIP
>>> measure_span(audio, 4.2, 6.0, floor).level_db                    # doctest: +SKIP
-17.3
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio.functional
from scipy import signal

from bwc.audio import SAMPLE_RATE
from bwc.records import UtteranceAcoustics

FRAME_S = 0.025  # level frames
HOP_S = 0.010  # level hop
FLOOR_PERCENTILE = 10  # the noise floor is this percentile of a recording's frame levels
HIGH_BAND_HZ = 3000.0  # close talkers keep energy above this
LOW_BAND_HZ = 300.0  # radio speakers have almost none below this
PITCH_RANGE_HZ = (60.0, 450.0)  # adult speech fundamental frequency
VOICED_ABOVE_FLOOR_DB = 12.0  # frames this far above the noise floor count for pitch
SILENCE_DB = -100.0  # level reported for digital silence
PITCH_SAMPLE_RATE = SAMPLE_RATE // 2  # pitch is tracked on an 8 kHz copy


def frame_levels_db(audio: np.ndarray) -> np.ndarray:
    """RMS level of 25 ms frames every 10 ms, dBFS."""
    frame, hop = int(FRAME_S * SAMPLE_RATE), int(HOP_S * SAMPLE_RATE)
    if len(audio) < frame:
        audio = np.pad(audio, (0, frame - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop]
    power = np.mean(frames.astype(np.float64) ** 2, axis=1)
    return 10.0 * np.log10(np.maximum(power, 10 ** (SILENCE_DB / 10)))


def noise_floor_db(audio: np.ndarray) -> float:
    """The recording's noise floor: a low percentile of its frame levels."""
    return float(np.percentile(frame_levels_db(audio), FLOOR_PERCENTILE)) if len(audio) else SILENCE_DB


def measure_span(audio: np.ndarray, start: float, end: float, floor_db: float) -> UtteranceAcoustics:
    """Acoustics of ``audio[start:end]`` (seconds) given the recording's noise floor."""
    segment = audio[max(0, int(start * SAMPLE_RATE)) : max(0, int(end * SAMPLE_RATE))]
    if len(segment) < int(FRAME_S * SAMPLE_RATE):
        return UtteranceAcoustics(SILENCE_DB, 0.0, 0.0, 0.0, None, None)
    levels = frame_levels_db(segment)
    loud = np.sort(levels)[len(levels) // 2 :]  # the loudest half: the words, not the gaps between them
    level_db = float(10.0 * np.log10(np.mean(10 ** (loud / 10))))
    frequencies, power = signal.welch(segment, fs=SAMPLE_RATE, nperseg=min(1024, len(segment)))
    total = float(power[frequencies >= 80].sum()) or 1e-20
    high = float(power[frequencies >= HIGH_BAND_HZ].sum()) / total
    low = float(power[(frequencies >= 80) & (frequencies < LOW_BAND_HZ)].sum()) / total
    pitch, pitch_range = _pitch(segment, levels, floor_db)
    return UtteranceAcoustics(
        level_db=level_db,
        snr_db=level_db - floor_db,
        high_band_ratio=high,
        low_band_ratio=low,
        pitch_hz=pitch,
        pitch_range_st=pitch_range,
    )


def _pitch(segment: np.ndarray, levels: np.ndarray, floor_db: float) -> tuple[float | None, float | None]:
    """Median pitch and 10–90% range (semitones) over voiced frames, from torchaudio's normalised
    cross-correlation pitch tracker."""
    if len(segment) < SAMPLE_RATE // 10:
        return None, None
    frame_s = 0.02
    # At 8 kHz the tracker's cross-correlation costs a quarter (half the samples, half the lags); pitch is far below.
    downsampled = signal.resample_poly(segment, 1, 2).astype(np.float32)
    track = torchaudio.functional.detect_pitch_frequency(
        torch.from_numpy(np.ascontiguousarray(downsampled)),
        PITCH_SAMPLE_RATE,
        frame_time=frame_s,
        win_length=5,
        freq_low=int(PITCH_RANGE_HZ[0]),
        freq_high=int(PITCH_RANGE_HZ[1]),
    ).numpy()
    # Keep frames loud enough to be voiced speech: map each pitch frame to the level frames it covers.
    frame_level = np.interp(
        np.arange(len(track)) * frame_s, np.arange(len(levels)) * HOP_S, levels, left=levels[0], right=levels[-1]
    )
    voiced = track[(frame_level > floor_db + VOICED_ABOVE_FLOOR_DB) & (track > PITCH_RANGE_HZ[0] * 1.05)]
    voiced = voiced[voiced < PITCH_RANGE_HZ[1] * 0.95]
    if len(voiced) < 3:
        return None, None
    low, median, high = np.percentile(voiced, [10, 50, 90])
    return float(median), float(12.0 * math.log2(high / low))
