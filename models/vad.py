"""Voice activity detection with silero-vad (weights ship inside the PyPI wheel, so it always works offline).

Example
-------
>>> vad = SileroVad(VadConfig())
>>> regions = vad.detect(audio)            # doctest: +SKIP
>>> chunks = merge_regions(regions, max_gap_s=1.0, max_region_s=30.0)   # doctest: +SKIP
>>> windows = pack_regions(chunks, window_s=30.0, gap_s=0.5)            # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch

from bwc.audio import SAMPLE_RATE
from bwc.config import VadConfig
from bwc.records import SpeechRegion

# silero_vad.model calls torch.set_num_threads(1) when it is imported: whisper and pyannote in the same process would
# run on one thread whatever the actor was given (measured: bwc run --executor local on 2 cores used one). Put back.
_THREADS = torch.get_num_threads()
from silero_vad import get_speech_timestamps, load_silero_vad  # noqa: E402

torch.set_num_threads(_THREADS)

MODEL_NAME = "silero-vad"


def silero_version() -> str:
    """The VAD's version: its weights ship in the wheel, so the package version names them."""
    from importlib.metadata import version

    return f"{MODEL_NAME}=={version('silero-vad')}"


class SileroVad:
    """silero-vad over 16 kHz mono float32 audio.

    Parameters
    ----------
    config
        Thresholds and durations (see :class:`bwc.config.VadConfig`).
    """

    def __init__(self, config: VadConfig) -> None:
        self.config = config
        self.model = load_silero_vad(onnx=False)

    @property
    def version(self) -> str:
        return silero_version()

    def detect(self, audio: np.ndarray, start_s: float = 0.0) -> tuple[SpeechRegion, ...]:
        """Speech regions of ``audio``, in seconds from ``start_s`` (where ``audio`` begins in its recording),
        sorted and non-overlapping, none longer than ``max_region_s`` (silero splits longer speech at a pause)."""
        if audio.size == 0:
            return ()
        timestamps = get_speech_timestamps(
            torch.from_numpy(audio),
            self.model,
            threshold=self.config.threshold,
            sampling_rate=SAMPLE_RATE,
            min_speech_duration_ms=self.config.min_speech_ms,
            min_silence_duration_ms=self.config.min_silence_ms,
            speech_pad_ms=self.config.speech_pad_ms,
            max_speech_duration_s=self.config.max_region_s,
            return_seconds=False,
        )
        self.model.reset_states()
        return tuple(
            SpeechRegion(start=start_s + item["start"] / SAMPLE_RATE, end=start_s + item["end"] / SAMPLE_RATE)
            for item in timestamps
        )


def merge_regions(regions: tuple[SpeechRegion, ...], max_gap_s: float, max_region_s: float) -> tuple[SpeechRegion, ...]:
    """Join regions separated by less than ``max_gap_s`` while the result stays within ``max_region_s``.

    A single region longer than ``max_region_s`` is kept whole: whisper walks through it window by window.
    """
    merged: list[SpeechRegion] = []
    for region in sorted(regions, key=lambda r: r.start):
        if merged and region.start - merged[-1].end < max_gap_s and region.end - merged[-1].start <= max_region_s:
            merged[-1] = SpeechRegion(start=merged[-1].start, end=max(merged[-1].end, region.end))
        else:
            merged.append(region)
    return tuple(merged)


def pack_regions(
    regions: tuple[SpeechRegion, ...], window_s: float, gap_s: float
) -> tuple[tuple[SpeechRegion, ...], ...]:
    """Group consecutive regions into windows of at most ``window_s`` seconds of speech and ``gap_s`` pauses.

    A window's regions are transcribed (or diarized) as one stretch of audio: their samples one after the other with
    ``gap_s`` of silence between them, so the non-speech between them costs nothing. A region longer than
    ``window_s`` gets a window of its own.

    Examples
    --------
    >>> regions = (SpeechRegion(0.0, 10.0), SpeechRegion(50.0, 65.0), SpeechRegion(90.0, 100.0))
    >>> [len(window) for window in pack_regions(regions, window_s=30.0, gap_s=0.5)]
    [2, 1]
    """
    windows: list[list[SpeechRegion]] = []
    used = 0.0  # seconds of the current window taken, gaps included
    for region in sorted(regions, key=lambda r: r.start):
        length = region.end - region.start
        if windows and used + gap_s + length <= window_s:
            windows[-1].append(region)
            used += gap_s + length
        else:
            windows.append([region])
            used = length
    return tuple(tuple(window) for window in windows)
