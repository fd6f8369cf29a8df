"""The CUDA path: fp16 whisper batched over windows of several recordings, and pyannote on the GPU, with the tiny
random checkpoints. Skipped where torch sees no CUDA device (CI has none); run on a GPU node with

    python -m pytest --noconftest tests/test_gpu.py

(``--noconftest``: a GPU node need not have the ffmpeg and espeak-ng the rest of the suite checks for.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bwc.audio import SAMPLE_RATE
from bwc.config import load_config
from bwc.records import SpeechRegion
from models.asr import SpeechChunk, WhisperTranscriber
from models.diarization import PyannoteDiarizer
from models.locate import ResolvedModels, resolve_whisper

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; CI machines have none")
KEYS = ("rec-a", "rec-b", "rec-c")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.tiny import make_tiny_models

    directory = tmp_path_factory.mktemp("gpu-models")
    make_tiny_models(directory)
    return directory


def _warbles(count: int, seed: int = 3) -> list[SpeechChunk]:
    """Warbling tones in noise, 2-20 s long, from three recordings (the tiny model writes words on anything)."""
    rng = np.random.default_rng(seed)
    chunks = []
    for index in range(count):
        duration = float(rng.uniform(2.0, 20.0))
        t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
        tone = 0.3 * np.sin(2 * np.pi * rng.uniform(100.0, 3000.0) * t) * (1.0 + np.sin(2 * np.pi * 3.0 * t))
        audio = (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        start = 60.0 * index
        chunks.append(SpeechChunk(KEYS[index % len(KEYS)], start, start + duration, audio))
    return chunks


def test_fp16_whisper_batched_on_cuda_times_words_inside_their_chunks(models: Path) -> None:
    config = load_config(models).whisper
    assert config.fp16
    asr = WhisperTranscriber(config, resolve_whisper(config.model, models), device="cuda")
    chunks = _warbles(9)
    found = asr.transcribe_chunks(chunks, batch_size=8)
    assert set(found) == set(KEYS)
    for key, words in found.items():
        spans = [(chunk.start, chunk.end) for chunk in chunks if chunk.key == key]
        for word in words:
            assert word.start <= word.end
            assert any(start <= word.start and word.end <= end for start, end in spans), (key, word)
    assert asr.detect_language(chunks[0].audio)


def test_pyannote_on_cuda_diarizes_speech_regions(models: Path) -> None:
    config = load_config(models)
    diarizer = PyannoteDiarizer(config.diarization, ResolvedModels.resolve(config).pyannote_pipeline, device="cuda")
    audio = np.concatenate([chunk.audio for chunk in _warbles(3)] + [np.zeros(SAMPLE_RATE, dtype=np.float32)])
    regions = (SpeechRegion(1.0, 8.0), SpeechRegion(12.0, len(audio) / SAMPLE_RATE - 1.0))

    def read(start_s: float, end_s: float) -> np.ndarray:
        return audio[round(start_s * SAMPLE_RATE) : round(end_s * SAMPLE_RATE)]

    diarization = diarizer.diarize_regions(read, regions, config.vad.pack_gap_s)
    for turn in diarization.turns:
        assert any(region.start - 0.05 <= turn.start and turn.end <= region.end + 0.05 for region in regions), turn
