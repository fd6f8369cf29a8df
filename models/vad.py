"""Voice activity detection: silero-vad (weights ship inside its PyPI wheel, so it always works offline), or a
pyannote segmentation model, speech being any speaker active (what WhisperX does; the starter set's choice).

Why two: silero-vad misses far, quiet speech in road noise, and once it has heard a long stretch of noise it can stay
deaf to speech that it finds when the same audio starts a little later. On 12 scenes mixed from real voices
(``bwc.scenes``) it found 75% of the spoken time and lost 9 of 63 lines whole (a 26 s officer line after a pause
among them); the segmentation model found 87% and lost 1, with no speech on road noise, sirens, static or music
(``benchmarks/accuracy.py`` measures the result through whisper).

Example
-------
>>> vad = SileroVad(VadConfig())
>>> regions = vad.detect(audio)            # doctest: +SKIP
>>> chunks = merge_regions(regions, max_gap_s=1.0, max_region_s=30.0)   # doctest: +SKIP
>>> windows = pack_regions(chunks, window_s=30.0, gap_s=0.5)            # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

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
SEGMENTATION_NAME = "pyannote-segmentation"
SEGMENTATION_BATCH = 32  # 5 s windows per forward pass of the segmentation model


class VoiceActivityDetector(Protocol):
    """What the speech stage needs of a VAD."""

    config: VadConfig

    @property
    def version(self) -> str: ...

    def detect(self, audio: np.ndarray, start_s: float = 0.0) -> tuple[SpeechRegion, ...]: ...


def load_vad(config: VadConfig, model: Path | None = None, device: str = "cpu") -> VoiceActivityDetector:
    """The VAD ``config.engine`` names; ``model`` is the segmentation checkpoint (see
    :meth:`models.locate.ResolvedModels.resolve`)."""
    if config.engine == "segmentation":
        if model is None:
            raise ValueError("vad.engine 'segmentation' needs vad.model: the path of a pyannote segmentation model")
        return SegmentationVad(config, model, device)
    return SileroVad(config)


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


def segmentation_version(checkpoint: Path) -> str:
    """What the catalog records for regions found by this segmentation checkpoint."""
    from models.locate import fingerprint

    return f"{SEGMENTATION_NAME}:{checkpoint.name}@{fingerprint(checkpoint)}"


class SegmentationVad:
    """Speech where a pyannote segmentation model hears any speaker, over 16 kHz mono float32 audio.

    pyannote's own sliding-window inference (5 s windows every ``step_s``, the speakers' probabilities reduced to
    their maximum before the windows are stitched: WhisperX's VoiceActivitySegmentation), then hysteresis between
    ``threshold`` and ``offset_threshold``, the config's padding and minimum speech and silence, and regions longer
    than ``max_region_s`` cut where speech is least likely.

    Parameters
    ----------
    config
        Thresholds and durations (see :class:`bwc.config.VadConfig`).
    checkpoint
        A pyannote segmentation model file (``pytorch_model.bin``).
    device
        "cpu" or "cuda".

    Example
    -------
    >>> vad = SegmentationVad(VadConfig(engine="segmentation"), Path("pytorch_model.bin"))  # doctest: +SKIP
    >>> vad.detect(audio)                                                               # doctest: +SKIP
    (SpeechRegion(start=2.1, end=8.9), ...)
    """

    def __init__(self, config: VadConfig, checkpoint: Path, device: str = "cpu") -> None:
        from pyannote.audio import Inference, Model

        from models.sincnet import share_first_convolution

        self.config = config
        self.checkpoint = checkpoint
        model = Model.from_pretrained(checkpoint, strict=True)
        model.eval()  # from_pretrained leaves a Lightning checkpoint in training mode (dropout on)
        share_first_convolution(model)  # the windows overlap 5 times: their first layer is filtered once
        self.inference = Inference(
            model,
            duration=float(model.specifications.duration),
            step=config.step_s,
            batch_size=SEGMENTATION_BATCH,
            device=torch.device(device),
            pre_aggregation_hook=lambda scores: np.max(scores, axis=-1, keepdims=True),
        )
        self._version = segmentation_version(checkpoint)

    @property
    def version(self) -> str:
        return self._version

    def speech_probability(self, audio: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Per frame, the probability that someone speaks; with the first frame's middle and the frame step (s)."""
        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        scores = self.inference({"waveform": waveform, "sample_rate": SAMPLE_RATE})
        frames = scores.sliding_window
        return np.nan_to_num(scores.data[:, 0]), frames[0].middle, frames.step

    def detect(self, audio: np.ndarray, start_s: float = 0.0) -> tuple[SpeechRegion, ...]:
        """Speech regions of ``audio``, in seconds from ``start_s`` (where ``audio`` begins in its recording),
        sorted and non-overlapping, none longer than ``max_region_s``."""
        # shorter than one 5 s window: pyannote pads it, so the model still sees the whole of it
        if audio.size == 0:
            return ()
        probability, first, step = self.speech_probability(audio)
        duration = audio.size / SAMPLE_RATE
        spans = hysteresis(probability, self.config.threshold, self.config.offset_threshold)
        config = self.config
        pad, min_on, min_off = config.speech_pad_ms / 1000, config.min_speech_ms / 1000, config.min_silence_ms / 1000
        regions: list[list[float]] = []
        for on, off in spans:
            for cut_on, cut_off in split_long(probability, on, off, round(config.max_region_s / step)):
                start, end = first + cut_on * step - step / 2, first + cut_off * step + step / 2
                if end - start < min_on:
                    continue
                start, end = max(0.0, start - pad), min(duration, end + pad)
                # padding and short pauses join neighbours, unless that makes a region too long for whisper
                if regions and start - regions[-1][1] < min_off and end - regions[-1][0] <= config.max_region_s:
                    regions[-1][1] = max(regions[-1][1], end)
                elif regions and start < regions[-1][1]:  # padded into a neighbour it may not join: meet halfway
                    middle = (start + regions[-1][1]) / 2
                    regions[-1][1], start = middle, middle
                    regions.append([start, end])
                else:
                    regions.append([start, end])
        return tuple(SpeechRegion(start=start_s + a, end=start_s + b) for a, b in regions if b > a)


def hysteresis(probability: np.ndarray, onset: float, offset: float) -> list[tuple[int, int]]:
    """Frame spans ``[on, off]`` (inclusive) where speech starts above ``onset`` and goes on until it falls below
    ``offset``.

    >>> hysteresis(np.array([0.1, 0.6, 0.4, 0.4, 0.2, 0.7]), onset=0.5, offset=0.3)
    [(1, 3), (5, 5)]
    """
    spans, on = [], None
    for index, value in enumerate(probability):
        if on is None and value > onset:
            on = index
        elif on is not None and value < offset:
            spans.append((on, index - 1))
            on = None
    if on is not None:
        spans.append((on, len(probability) - 1))
    return spans


def split_long(probability: np.ndarray, on: int, off: int, max_frames: int) -> list[tuple[int, int]]:
    """``[on, off]`` cut into spans of at most ``max_frames`` frames, each cut at the least likely frame of the
    second half of what would otherwise be too long (as WhisperX's Binarize cuts long speech), so whisper windows
    break at pauses, not in words.

    >>> split_long(np.array([0.9, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9, 0.9]), 0, 7, max_frames=5)
    [(0, 2), (4, 7)]
    """
    if max_frames < 2 or off - on + 1 <= max_frames:
        return [(on, off)]
    low, high = on + max_frames // 2, on + max_frames - 1
    cut = low + int(np.argmin(probability[low : high + 1]))
    return [(on, cut - 1), *split_long(probability, cut + 1, off, max_frames)]


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
