"""Batched transcription across recordings (``WhisperTranscriber.transcribe_chunks``) with the tiny random whisper.

The tiny model writes noise words, but real ones with real timings from whisper's own decoder and alignment, so
batching can be compared with one-at-a-time decoding word for word. The speed of batch 1 against batch 8 is printed
(run with ``-s``), not asserted: it depends on the machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bwc.audio import SAMPLE_RATE
from bwc.config import load_config
from bwc.records import Word
from models.asr import SpeechChunk, WhisperTranscriber, is_no_speech
from models.locate import resolve_whisper
from tests.conftest import hear_silence_in_zero_chunks

N_CHUNKS = 16  # ~3.5 whisper windows each with the tiny model's 24-token cap: 56 windows
KEYS = ("rec-a", "rec-b", "rec-c", "rec-d")  # four recordings, chunks interleaved between them
SEED = 7
TIME_TOLERANCE_S = 0.02  # one whisper timestamp step


@pytest.fixture(scope="module")
def asr(tiny_models: Path) -> WhisperTranscriber:
    config = load_config(tiny_models).whisper  # the tiny models.yaml: language "en", temperature 0, sample_len 24
    assert config.language == "en" and config.temperature == 0.0 and config.sample_len
    return WhisperTranscriber(config, resolve_whisper(config.model, tiny_models))


def _chunks(count: int = N_CHUNKS, seed: int = SEED) -> list[SpeechChunk]:
    """Warbling tones in noise, 1-6 s long, at distinct times of four recordings, handed over out of time order."""
    rng = np.random.default_rng(seed)
    chunks = []
    for index in range(count):
        duration = float(rng.uniform(1.0, 6.0))
        start = 40.0 * (count - index) + float(rng.uniform(0.0, 10.0))  # later chunks first: output must sort
        t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
        warble = 1.0 + np.sin(2 * np.pi * rng.uniform(1.0, 5.0) * t)
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100.0, 3000.0) * t) * warble + 0.05 * rng.standard_normal(t.size)
        chunks.append(SpeechChunk(KEYS[index % len(KEYS)], start, start + duration, wave.astype(np.float32)))
    return chunks


@pytest.fixture(scope="module")
def decoded(asr: WhisperTranscriber) -> dict[int, dict[str, tuple[Word, ...]]]:
    """The same chunks transcribed one window at a time and eight at a time, timed."""
    chunks = _chunks()
    results, seconds = {}, {}
    for batch_size in (1, 8):
        started = time.perf_counter()
        results[batch_size] = asr.transcribe_chunks(chunks, batch_size=batch_size)
        seconds[batch_size] = time.perf_counter() - started
    print(
        f"\ntranscribe_chunks, tiny whisper, {N_CHUNKS} chunks, {torch.get_num_threads()} threads: "
        f"batch 1 {seconds[1]:.2f} s, batch 8 {seconds[8]:.2f} s ({seconds[1] / seconds[8]:.2f}x)"
    )
    return results


def test_batched_gives_the_words_of_one_at_a_time(decoded: dict[int, dict[str, tuple[Word, ...]]]) -> None:
    # whisper decodes each row on its own (greedy, per-row logit filters), so only float rounding in batched matmuls
    # could tell them apart; measured here: every word identical, times equal to the last digit.
    one, eight = decoded[1], decoded[8]
    assert set(one) == set(eight) == set(KEYS)
    for key in KEYS:
        assert [w.text for w in eight[key]] == [w.text for w in one[key]], key
        for batched, single in zip(eight[key], one[key], strict=True):
            assert batched.start == pytest.approx(single.start, abs=TIME_TOLERANCE_S)
            assert batched.end == pytest.approx(single.end, abs=TIME_TOLERANCE_S)
            assert batched.probability == pytest.approx(single.probability, abs=1e-3)


def test_words_come_back_under_their_key_in_time_order_inside_their_chunks(
    decoded: dict[int, dict[str, tuple[Word, ...]]],
) -> None:
    chunks = _chunks()
    for key, words in decoded[8].items():
        assert words, f"the tiny whisper always writes words, none for {key}"
        spans = [(c.start, c.end) for c in chunks if c.key == key]
        assert [w.start for w in words] == sorted(w.start for w in words)
        for word in words:
            assert word.start <= word.end
            assert any(start <= word.start and word.end <= end for start, end in spans), (key, word)
        assert {next(i for i, s in enumerate(spans) if s[0] <= w.start <= s[1]) for w in words} == set(
            range(len(spans))
        ), f"every chunk of {key} has words"


def test_no_chunks_give_nothing_and_a_key_without_audio_is_absent(asr: WhisperTranscriber) -> None:
    assert asr.transcribe_chunks([], batch_size=8) == {}
    empty = SpeechChunk("silent-recording", 3.0, 3.0, np.zeros(0, dtype=np.float32))
    found = asr.transcribe_chunks([empty, *_chunks(count=1)], batch_size=8)
    assert set(found) == {KEYS[0]}  # keys with no words are left out, not mapped to ()
    with pytest.raises(ValueError, match="batch_size"):
        asr.transcribe_chunks(_chunks(count=1), batch_size=0)


def test_no_speech_rule_is_whispers() -> None:
    assert is_no_speech(0.9, -1.5)  # likely silence and unsure text: dropped
    assert is_no_speech(0.61, -1.0)  # whisper keeps text only when avg_logprob is strictly above -1
    assert not is_no_speech(0.9, -0.5)  # confident text despite the no-speech token: kept
    assert not is_no_speech(0.6, -3.0)  # threshold is strict: no_speech_prob must exceed 0.6
    assert not is_no_speech(float("nan"), -3.0)  # a model without <|nospeech|> never skips


def test_chunks_whisper_calls_silence_yield_no_words(asr: WhisperTranscriber, monkeypatch: pytest.MonkeyPatch) -> None:
    hear_silence_in_zero_chunks(monkeypatch)
    quiet = SpeechChunk("quiet-recording", 5.0, 7.0, np.zeros(2 * SAMPLE_RATE, dtype=np.float32))
    found = asr.transcribe_chunks([quiet, *_chunks(count=2)], batch_size=8)
    assert set(found) == set(KEYS[:2])
