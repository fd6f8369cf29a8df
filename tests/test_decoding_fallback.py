"""whisper.transcribe's temperature fallback in batched decoding (``WhisperTranscriber.transcribe_chunks``).

With the tiny random whisper (``tiny_models``): every decode call is watched by a spy around whisper's own
``DecodingTask.run`` (``whisper.decode`` and the batched beam/sampling task both end there), which records how many
windows each call decodes, at which temperature and with which inputs, and returns whisper's real results. The tiny
model repeats one token per window (compression ratio ~9 > 2.4) at a log probability near -0.02 and never finds
silence, so thresholds are set per test to make windows fail or pass. Fallback costs decodes; the tests use 2
samples and temperatures 0, 0.5, 1 to stay fast.

With real weights (whisper tiny.en converted from the starter set, at ``~/.cache/bwc/models/whisper/tiny.en.pt`` or
``$BWC_STARTER_WHISPER``; skipped when absent): real utterances transcribe within a small WER, and noise a VAD could
let through (noise colours, sirens, radio static) gives no words: the siren's repetition loop is decoded again until
the no-speech rule takes it, and the noise windows whisper calls silence are not decoded again.
"""

from __future__ import annotations

import inspect
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import whisper
import whisper.decoding
from whisper.decoding import DecodingResult, DecodingTask
from whisper.normalizers import EnglishTextNormalizer

from bwc.audio import SAMPLE_RATE
from bwc.config import WhisperConfig, load_config
from models.asr import SpeechChunk, WhisperTranscriber, fallback_temperatures, needs_fallback
from models.locate import resolve_whisper
from tests.conftest import hear_silence_in_zero_chunks

FAST = {"best_of": 2, "temperature_increment_on_fallback": 0.5}  # temperatures 0, 0.5, 1: fewer decodes per test
REAL_WHISPER_ENV = "BWC_STARTER_WHISPER"
REAL_WHISPER = Path("~/.cache/bwc/models/whisper/tiny.en.pt")
SHARED = Path(__file__).resolve().parents[2] / "shared"
UTTERANCES = SHARED / "data" / "speech"
# one per source corpus: read speech, prompts, a distant-microphone recording, a one-word command
REAL_UTTERANCES = (
    "utterances/librispeech_1272-128104-0000.wav",
    "utterances/librivox_sense_and_sensibility_01-0870.wav",
    "utterances/ljspeech_LJ001-0002.wav",
    "utterances/vctk16k_p225_003.wav",
    "utterances/voices_src-sp0307-ch127535-sg0042.wav",
    "utterances/an4_an440-mjgm-b.wav",
)
MAX_REAL_WER = 0.15  # tiny.en measured 0.055 on all 56 utterances (no window fell back) and 0.0 on these six


@dataclass
class Call:
    """One decode call as the spy saw it."""

    windows: int  # windows (rows of mel or encoder output) decoded together
    temperature: float
    group: int  # rows per window: best_of samples, beams, or 1
    features: bool  # given the encoder output (a fallback), not mel spectrograms
    inputs: torch.Tensor
    results: list[DecodingResult]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Every decode call (greedy whisper.decode or the batched sampling/beam task), running whisper's own code."""
    recorded: list[Call] = []
    real_run = DecodingTask.run

    def run(self: DecodingTask, mel: torch.Tensor) -> list[DecodingResult]:
        results = real_run(self, mel)
        dims = self.model.dims
        features = tuple(mel.shape[-2:]) == (dims.n_audio_ctx, dims.n_audio_state)
        recorded.append(Call(mel.shape[0], self.options.temperature, self.n_group, features, mel, results))
        return results

    monkeypatch.setattr(DecodingTask, "run", run)
    return recorded


@pytest.fixture(scope="module")
def tiny(tiny_models: Path) -> tuple[WhisperConfig, Path]:
    config = load_config(tiny_models).whisper
    assert config.temperature == 0.0 and config.sample_len  # the tiny models.yaml: greedy, capped windows
    return config, resolve_whisper(config.model, tiny_models)


def _transcriber(tiny: tuple[WhisperConfig, Path], **settings: object) -> WhisperTranscriber:
    config, checkpoint = tiny
    return WhisperTranscriber(config.model_copy(update={**FAST, **settings}), checkpoint)


def _chunks(count: int, seed: int = 3, seconds: float = 0.5) -> list[SpeechChunk]:
    """Warbling tones in noise (distinct per chunk), one recording each."""
    rng = np.random.default_rng(seed)
    chunks = []
    for index in range(count):
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        warble = 1.0 + np.sin(2 * np.pi * rng.uniform(1.0, 5.0) * t)
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100.0, 3000.0) * t) * warble + 0.05 * rng.standard_normal(t.size)
        chunks.append(SpeechChunk(f"rec-{index}", 10.0 * index, 10.0 * index + seconds, wave.astype(np.float32)))
    return chunks


def _batches(calls: list[Call]) -> Iterator[list[Call]]:
    """The calls of each batch: a first decoding of mel spectrograms, then its fallbacks on encoder outputs."""
    batch: list[Call] = []
    for call in calls:
        if not call.features and batch:
            yield batch
            batch = []
        batch.append(call)
    if batch:
        yield batch


def test_defaults_are_whisper_transcribes() -> None:
    defaults = inspect.signature(whisper.transcribe).parameters
    config = WhisperConfig()
    assert fallback_temperatures(config.temperature, config.temperature_increment_on_fallback) == (
        defaults["temperature"].default
    )
    for name in ("compression_ratio_threshold", "logprob_threshold", "no_speech_threshold"):
        assert getattr(config, name) == defaults[name].default, name
    assert fallback_temperatures(0.0, None) == (0.0,)
    assert fallback_temperatures(0.5, 0.25) == (0.5, 0.75, 1.0)
    assert fallback_temperatures(1.2, 0.2) == (1.2,)  # the configured temperature is always tried
    with pytest.raises(ValueError, match="positive"):
        fallback_temperatures(0.0, 0.0)


def test_fallback_rule_is_decode_with_fallbacks() -> None:
    def result(no_speech: float, logprob: float, ratio: float) -> DecodingResult:
        return DecodingResult(None, "en", avg_logprob=logprob, no_speech_prob=no_speech, compression_ratio=ratio)

    assert needs_fallback(result(0.1, -0.3, 2.5))  # a repetition loop
    assert needs_fallback(result(0.1, -1.2, 1.2))  # unsure
    assert not needs_fallback(result(0.1, -0.3, 2.4))  # both comparisons are strict
    assert not needs_fallback(result(0.1, -1.0, 1.2))
    assert not needs_fallback(result(0.9, -1.2, 3.0))  # silence wins over both: skipped, not decoded again
    assert needs_fallback(result(0.9, -0.5, 3.0))  # a confident loop is not silence
    assert needs_fallback(result(0.9, -1.2, 3.0), no_speech_threshold=None)  # no silence rule: decoded again
    assert not needs_fallback(result(0.1, -1.2, 3.0), compression_ratio_threshold=None, logprob_threshold=None)
    assert needs_fallback(result(float("nan"), -1.2, 1.0))  # a model without <|nospeech|> is never silent


def test_only_failing_windows_are_decoded_again_together(tiny: tuple[WhisperConfig, Path], calls: list[Call]) -> None:
    chunks = _chunks(4)
    # a first run, without fallback, to read the windows' log probabilities: the threshold fails about half of them
    _transcriber(tiny, temperature_increment_on_fallback=None).transcribe_chunks(chunks, batch_size=4)
    threshold = float(np.median([r.avg_logprob for r in calls[0].results]))
    calls.clear()
    asr = _transcriber(tiny, compression_ratio_threshold=None, logprob_threshold=threshold)
    asr.transcribe_chunks(chunks, batch_size=4)
    fallbacks = 0
    for batch in _batches(calls):
        assert [call.temperature for call in batch] == list(asr.temperatures[: len(batch)])  # one call each
        assert batch[0].group == 1 and not batch[0].features  # greedy on mel spectrograms first
        for before, after in itertools.pairwise(batch):
            failed = [r for r in before.results if needs_fallback(r, None, threshold)]
            assert failed, "a call at the next temperature only when a window failed"
            # exactly the failed windows, in one call, from their own encoder output, best_of samples each
            assert after.features and after.group == 2 and after.windows == len(failed)
            assert torch.equal(after.inputs, torch.stack([r.audio_features for r in failed]))
            fallbacks += after.windows
        if len(batch) < len(asr.temperatures):  # stopped early: nothing left failing
            assert not [r for r in batch[-1].results if needs_fallback(r, None, threshold)]
    first = calls[0]
    assert 0 < sum(r.avg_logprob < threshold for r in first.results) < first.windows  # some failed, some not
    assert fallbacks == sum(asr.decoded[t] for t in asr.temperatures[1:])


def test_last_decoding_is_kept_when_every_temperature_fails(
    tiny: tuple[WhisperConfig, Path], calls: list[Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[DecodingResult] = []
    window_words = WhisperTranscriber._window_words

    def words_of(self: WhisperTranscriber, *args: object) -> object:
        used.append(args[4])  # type: ignore[arg-type]  # the decoding whose words are kept
        return window_words(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(WhisperTranscriber, "_window_words", words_of)
    asr = _transcriber(tiny, logprob_threshold=0.0)  # every log probability is below 0: every decoding fails
    found = asr.transcribe_chunks(_chunks(3), batch_size=3)
    first = calls[0]
    assert [c.temperature for c in calls[:3]] == [0.0, 0.5, 1.0] and all(c.windows == first.windows for c in calls[:3])
    last = [r for c in calls if c.temperature == 1.0 for r in c.results]
    assert used and all(any(r is kept for kept in last) for r in used)  # whisper keeps the hottest decoding
    assert all(r.temperature == 1.0 for r in used)
    assert found and all(found.values())  # kept, not dropped: it is not silence


def test_silent_windows_are_not_decoded_again(
    tiny: tuple[WhisperConfig, Path], calls: list[Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    hear_silence_in_zero_chunks(monkeypatch)
    quiet = SpeechChunk("quiet", 5.0, 7.0, np.zeros(2 * SAMPLE_RATE, dtype=np.float32))
    sounds = _chunks(2)
    asr = _transcriber(tiny)  # whisper's thresholds: every tiny window is a loop, but the quiet one is silence
    found = asr.transcribe_chunks([quiet, *sounds], batch_size=3)
    assert calls[0].windows == 3
    assert calls[1].temperature == 0.5 and calls[1].windows == 2  # the silent window was not decoded again
    assert set(found) == {chunk.key for chunk in sounds}
    calls.clear()
    asr = _transcriber(tiny, no_speech_threshold=None)  # no silence rule: it fails like the others
    asr.transcribe_chunks([quiet, *sounds], batch_size=3)
    assert calls[1].windows == 3


def test_none_disables_the_fallback(tiny: tuple[WhisperConfig, Path], calls: list[Call]) -> None:
    chunks = _chunks(3)
    asr = _transcriber(tiny, temperature_increment_on_fallback=None)  # every window fails, at the only temperature
    assert asr.temperatures == (0.0,)
    asr.transcribe_chunks(chunks, batch_size=3)
    assert calls and {c.temperature for c in calls} == {0.0} and not any(c.features for c in calls)
    calls.clear()
    _transcriber(tiny, compression_ratio_threshold=None, logprob_threshold=None).transcribe_chunks(chunks, 3)
    assert calls and {c.temperature for c in calls} == {0.0}  # no rule left to fail a window


def test_sampled_words_do_not_depend_on_the_batch_or_torchs_generator(tiny: tuple[WhisperConfig, Path]) -> None:
    chunks = _chunks(4, seed=11)
    asr = _transcriber(tiny, logprob_threshold=0.0)  # every window ends sampled at temperature 1
    torch.manual_seed(1)
    one = asr.transcribe_chunks(chunks, batch_size=1)
    torch.manual_seed(2)
    four = asr.transcribe_chunks(list(reversed(chunks)), batch_size=4)
    assert asr.decoded[1.0] > 0
    assert set(one) == set(four) == {chunk.key for chunk in chunks}
    for key in one:
        assert [w.text for w in one[key]] == [w.text for w in four[key]], key
        assert [w.start for w in one[key]] == pytest.approx([w.start for w in four[key]], abs=0.02)


def test_beams_decode_several_windows_at_once(tiny: tuple[WhisperConfig, Path]) -> None:
    # whisper.decode (20250625) repeats tokens per beam or sample but not the encoder output: on more than one
    # window it fails with a size mismatch (openai/whisper#2197); the transcriber's decoding task repeats both.
    # Sampling several windows at once is covered above (best_of 2, batch 4).
    chunks = _chunks(3)
    asr = _transcriber(tiny, beam_size=2, temperature_increment_on_fallback=None)
    together = asr.transcribe_chunks(chunks, batch_size=3)
    alone = asr.transcribe_chunks(chunks, batch_size=1)
    assert {k: [w.text for w in v] for k, v in together.items()} == {k: [w.text for w in v] for k, v in alone.items()}


# -- real weights --


def _real_checkpoint() -> Path:
    path = Path(os.environ.get(REAL_WHISPER_ENV) or REAL_WHISPER).expanduser()
    if not path.is_file():
        pytest.skip(f"real whisper tiny.en not installed: {path} (`bwc models starter`, or set ${REAL_WHISPER_ENV})")
    return path


@pytest.fixture(scope="module")
def real_asr() -> WhisperTranscriber:
    return WhisperTranscriber(WhisperConfig(model="tiny.en", language="en"), _real_checkpoint())


def _edits(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance between word lists."""
    row = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, start=1):
        diagonal, row[0] = row[0], i
        for j, other in enumerate(hypothesis, start=1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (word != other))
    return row[-1]


def test_real_utterances_transcribe_within_a_small_wer(real_asr: WhisperTranscriber) -> None:
    if not (UTTERANCES / "refs.tsv").is_file():
        pytest.skip(f"shared speech data absent: {UTTERANCES}")
    references = {}
    for line in (UTTERANCES / "refs.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        file, _, reference, *_ = line.split("\t")
        references[file] = reference
    chunks = []
    for file in REAL_UTTERANCES:
        audio = whisper.load_audio(str(UTTERANCES / file))
        chunks.append(SpeechChunk(file, 0.0, audio.size / SAMPLE_RATE, audio))
    found = real_asr.transcribe_chunks(chunks, batch_size=len(chunks))
    normalize = EnglishTextNormalizer()
    errors = words = 0
    for file in REAL_UTTERANCES:
        reference = normalize(references[file]).split()
        hypothesis = normalize(" ".join(w.text for w in found.get(file, ()))).split()
        errors += _edits(reference, hypothesis)
        words += len(reference)
    assert errors / words <= MAX_REAL_WER, f"WER {errors / words:.3f} on {len(chunks)} utterances"
