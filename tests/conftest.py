"""Shared fixtures: tiny model checkpoints made once per session, and real media written with ffmpeg/espeak-ng."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

from bwc.audio import SAMPLE_RATE, write_audio

REQUIRED_TOOLS = ("ffmpeg", "ffprobe", "espeak-ng", "sox")
# A corrupt "media" file. Not random bytes: those are now and then taken for a stream-less container, which makes
# the expected reason flaky.
NOT_MEDIA = b"This is not a media file.\n" * 100


def pytest_configure(config: pytest.Config) -> None:
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise pytest.UsageError(f"tests need {', '.join(missing)} on PATH: run `make test`, which installs them")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory with tiny random-weight whisper and pyannote checkpoints and its models.yaml."""
    from models.tiny import make_tiny_models

    directory = tmp_path_factory.mktemp("tiny-models")
    make_tiny_models(directory)
    return directory


def tone(seconds: float, frequency: float = 440.0, sample_rate: int = SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    """A sine as float32, shape (samples,) or (samples, channels)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return wave if channels == 1 else np.repeat(wave[:, None], channels, axis=1)


def encode(path: Path, audio: np.ndarray, sample_rate: int, *output_args: str, video: bool = False) -> Path:
    """Encode float32 samples (mono or (samples, channels)) into ``path``, optionally beside a small H.264 picture."""
    video_args = ["-f", "lavfi", "-i", "color=c=black:s=64x48:r=5", "-shortest", "-c:v", "libx264"]
    video_args += ["-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    write_audio(path, audio, sample_rate, *(video_args if video else []), *output_args)
    return path


def dominant_frequency(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / sample_rate)[np.argmax(spectrum)])
