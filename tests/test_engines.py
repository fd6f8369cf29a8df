"""The two whisper engines behind one interface (``models.whisper_engine``): CTranslate2 and openai-whisper.

With the real starter weights (whisper tiny.en, the same weights in both formats: ``whisper/tiny.en-ct2`` as
installed and ``whisper/tiny.en.pt`` converted from it; skipped when absent) and the development speech in
``../shared/data/speech`` (skipped, with the reason, when absent):

- on the same weights in float32 both engines write the same words (normalised) at the same times on every
  development utterance, decoded through the same loop (:class:`models.asr.WhisperTranscriber`), greedy (bwc's
  default) and with 5 beams;
- the CTranslate2 engine's fallback (every temperature, samples) is reproducible in a fresh model;
- the engine follows the weights' format, and ``whisper.engine`` picks the format when both are installed.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pytest

from bwc.audio import SAMPLE_RATE, read_pcm
from bwc.config import BwcConfig, WhisperConfig, load_config
from bwc.evaluation import normalise
from bwc.records import Word
from models.asr import SpeechChunk, WhisperTranscriber
from models.locate import ModelNotFoundError, ResolvedModels, resolve_whisper_weights
from models.whisper_ct2 import CTranslate2Engine, choose_compute_type
from models.whisper_openai import OpenAIEngine

STARTER = Path("~/.cache/bwc/models").expanduser()
SPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech"
MIN_IDENTICAL = 0.98  # share of normalised words both engines write (measured: 1.0 on 1049 words)
MAX_TIME_DIFFERENCE_S = 0.05  # start and end of each word both write (measured: at most 0.02 s, one token)


def _weights() -> tuple[Path, Path]:
    ct2, checkpoint = STARTER / "whisper" / "tiny.en-ct2", STARTER / "whisper" / "tiny.en.pt"
    if not (ct2 / "model.bin").is_file() or not checkpoint.is_file():
        pytest.skip(f"starter whisper not installed in {STARTER} (`bwc models starter`)")
    return ct2, checkpoint


def _utterances() -> list[SpeechChunk]:
    if not (SPEECH / "refs.tsv").is_file():
        pytest.skip(f"shared development speech absent: {SPEECH}")
    files = [line.split("\t")[0] for line in (SPEECH / "refs.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    chunks = []
    for file in files:
        audio = read_pcm(SPEECH / file)
        chunks.append(SpeechChunk(file, 0.0, audio.size / SAMPLE_RATE, audio))
    return chunks


def _compare(first: tuple[Word, ...], second: tuple[Word, ...]) -> tuple[int, int, list[float]]:
    """Words both wrote (aligned on normalised text), words either wrote, and each shared word's time difference."""
    a, b = [normalise(w.text) for w in first], [normalise(w.text) for w in second]
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    same, differences = 0, []
    for block in matcher.get_matching_blocks():
        same += block.size
        for k in range(block.size):
            x, y = first[block.a + k], second[block.b + k]
            differences.append(max(abs(x.start - y.start), abs(x.end - y.end)))
    return same, max(len(a), len(b)), differences


# Greedy (bwc's default): the same search in both, so the same tokens (measured: 1049 of 1049 words, times within
# 0.02 s). Beams (``whisper.beam_size: 5``): each engine's own beam search, which may keep another of two near-equal
# timestamp tokens (measured on all 56: 1052 of 1071 words, 98.2%, so 97% is asked; 2 words' times 0.06 and 0.08 s
# apart, every other within 0.03 s).
@pytest.mark.parametrize(
    ("beam_size", "min_identical", "max_late_s"),
    [(None, MIN_IDENTICAL, MAX_TIME_DIFFERENCE_S), (5, MIN_IDENTICAL - 0.01, 2 * MAX_TIME_DIFFERENCE_S)],
)
def test_engines_write_the_same_words_on_the_same_weights(
    beam_size: int | None, min_identical: float, max_late_s: float
) -> None:
    ct2, checkpoint = _weights()
    # beams: the first 20 utterances (374 words, all identical, measured), to keep the suite's time; greedy: all 56
    chunks = _utterances()[: 20 if beam_size else None]
    config = WhisperConfig(model="tiny.en", language="en", compute_type="float32", beam_size=beam_size)
    openai = WhisperTranscriber(config, checkpoint)
    fast = WhisperTranscriber(config, ct2)
    assert isinstance(openai.engine, OpenAIEngine) and isinstance(fast.engine, CTranslate2Engine)
    by_openai = openai.transcribe_chunks(chunks, batch_size=8)
    by_ct2 = fast.transcribe_chunks(chunks, batch_size=8)
    same = total = 0
    differences: list[float] = []
    for chunk in chunks:
        both, either, late = _compare(by_openai.get(chunk.key, ()), by_ct2.get(chunk.key, ()))
        same, total, differences = same + both, total + either, differences + late
    assert total > (300 if beam_size else 900)  # every utterance was transcribed (374 / 1049 words)
    assert same / total >= min_identical, f"{same}/{total} identical words"
    within = np.mean(np.asarray(differences) <= MAX_TIME_DIFFERENCE_S)
    assert within >= 0.99, f"only {within:.1%} of shared words within {MAX_TIME_DIFFERENCE_S} s"
    assert max(differences) <= max_late_s, f"a word's time differs by {max(differences):.2f} s"
    assert fast.version.endswith(" ctranslate2 float32") and "tiny.en-ct2" in fast.version


def test_ctranslate2_fallback_is_reproducible() -> None:
    ct2, _ = _weights()
    chunks = _utterances()[:3]
    # every decoding fails the log probability rule: each window is sampled at every temperature (2 samples each)
    config = WhisperConfig(model="tiny.en", language="en", logprob_threshold=0.0, best_of=2)
    first = WhisperTranscriber(config, ct2)
    words = first.transcribe_chunks(chunks, batch_size=3)
    assert first.decoded[1.0] >= 3  # all three reached the last temperature (and windows after some of them)
    assert all(words.get(chunk.key) for chunk in chunks)  # the hottest decoding is kept, not dropped
    # CTranslate2 seeds its sampler per worker thread, once: a fresh model given the same windows samples the same
    again = WhisperTranscriber(config, ct2).transcribe_chunks(chunks, batch_size=3)
    assert {k: [w.text for w in v] for k, v in words.items()} == {k: [w.text for w in v] for k, v in again.items()}


def test_engine_follows_the_format_and_the_setting() -> None:
    ct2, checkpoint = _weights()
    config = load_config(STARTER)
    assert ResolvedModels.resolve(config).whisper_checkpoint == ct2  # auto: the CTranslate2 copy beside the .pt
    openai = config.merged({"whisper": {"engine": "openai"}})
    assert ResolvedModels.resolve(openai).whisper_checkpoint == checkpoint
    assert "ctranslate2" in ResolvedModels.resolve(config).versions()["asr"]
    assert "ctranslate2" not in ResolvedModels.resolve(openai).versions()["asr"]
    # a CTranslate2 directory named directly, and the openai engine refusing it with the fix
    assert resolve_whisper_weights(WhisperConfig(model=str(ct2)), None) == ct2
    with pytest.raises(ModelNotFoundError, match=r"needs a \.pt checkpoint"):
        resolve_whisper_weights(WhisperConfig(model=str(ct2), engine="openai"), None)


def test_ctranslate2_weights_missing_name_every_place_and_the_fix(tiny_models: Path) -> None:
    config = load_config(tiny_models)  # the tiny random set has only a .pt
    assert ResolvedModels.resolve(config).whisper_checkpoint.suffix == ".pt"  # auto falls back to openai
    strict = config.merged({"whisper": {"engine": "ctranslate2"}})
    with pytest.raises(ModelNotFoundError) as raised:
        ResolvedModels.resolve(strict)
    message = str(raised.value)
    assert "CTranslate2 format" in message and "tiny-random-ct2/model.bin" in message and "bwc models fetch" in message


def test_compute_type_by_device_and_refused_when_unsupported() -> None:
    assert choose_compute_type(None, "cpu") == "int8"
    assert choose_compute_type("float32", "cpu") == "float32"
    with pytest.raises(ValueError, match=r"compute_type 'float16' is not supported on cpu"):
        choose_compute_type("float16", "cpu")


def test_removed_condition_on_previous_text_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="condition_on_previous_text was removed"):
        BwcConfig().merged({"whisper": {"condition_on_previous_text": False}})


def test_language_detection_of_an_english_only_model_is_english() -> None:
    ct2, _ = _weights()
    asr = WhisperTranscriber(WhisperConfig(model="tiny.en", language=None), ct2)
    assert asr.detect_language(np.zeros(SAMPLE_RATE, dtype=np.float32)) == "en"


def test_ctranslate2_no_speech_probability_is_each_windows_own_when_sampling() -> None:
    # CTranslate2 4.8 gives an English-only model's rows other windows' <|nospeech|> values when it returns several
    # hypotheses per window: the engine keeps each window's value from its first decoding
    import torch
    from whisper.audio import N_FRAMES, log_mel_spectrogram, pad_or_trim

    ct2, _ = _weights()
    speech = _utterances()[0].audio
    audio = [np.zeros(3 * SAMPLE_RATE, np.float32), speech, np.zeros(3 * SAMPLE_RATE, np.float32), speech]
    engine = CTranslate2Engine(WhisperConfig(model="tiny.en", best_of=2), ct2)
    mel = torch.stack([pad_or_trim(log_mel_spectrogram(torch.from_numpy(a), engine.n_mels), N_FRAMES) for a in audio])
    batch = engine.prepare(mel)
    greedy = [r.no_speech_prob for r in engine.decode(batch, range(4), "en", 0.0, None)]
    assert greedy[0] > 0.6 > greedy[1]  # silence, speech
    sampled = [r.no_speech_prob for r in engine.decode(batch, range(4), "en", 1.0, None)]
    assert sampled == greedy


def test_careless_whisper_directories_get_one_clear_error(tmp_path: Path) -> None:
    ct2, _ = _weights()
    # a damaged model.bin: CTranslate2's own words ("binary version v1651663207") would name neither file nor fix
    damaged = tmp_path / "damaged-ct2"
    damaged.mkdir()
    (damaged / "model.bin").write_bytes(b"garbage, not a model")
    for name in ("config.json", "tokenizer.json"):
        (damaged / name).write_bytes((ct2 / name).read_bytes())
    with pytest.raises(ValueError, match=r"damaged-ct2/model\.bin: not a CTranslate2 whisper model"):
        WhisperTranscriber(WhisperConfig(model=str(damaged)), damaged)
    # no tokenizer: faster-whisper would download one; refused before any worker starts, saying what to copy
    (damaged / "tokenizer.json").unlink()
    with pytest.raises(ModelNotFoundError, match=r"tokenizer\.json"):
        resolve_whisper_weights(WhisperConfig(model=str(damaged)), None)
    # a directory that is no model at all, under auto: the message says what a whisper directory needs
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match=r"this one has no model\.bin"):
        resolve_whisper_weights(WhisperConfig(model=str(empty)), None)
    # a compute type CTranslate2 has no name for, or a bfloat16 one bwc cannot batch: refused when the config loads
    for wrong in ("int9", "bfloat16"):
        with pytest.raises(ValueError, match="compute_type"):
            BwcConfig().merged({"whisper": {"compute_type": wrong}})


@pytest.mark.parametrize("entry_point", ["bwc.cli", "pipelines.workers", "pipelines.speech", "models.vad"])
def test_ctranslate2_is_loaded_before_torch_from_every_entry_point(entry_point: str) -> None:
    """Loaded after torch, CTranslate2 binds to torch's OpenMP runtime, and pyannote after whisper ran 1.7x slower
    (bwc/__init__.py): every way into bwc's code loads CTranslate2 first."""
    import subprocess
    import sys

    # then torch itself: the CLI imports it lazily, in the command that needs it
    probe = f"import sys, {entry_point}, torch; m = list(sys.modules); print(m.index('ctranslate2'), m.index('torch'))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    ctranslate2_at, torch_at = map(int, completed.stdout.split())
    assert ctranslate2_at < torch_at, f"{entry_point}: torch was imported before ctranslate2"


def test_a_program_that_imports_torch_before_bwc_is_warned() -> None:
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-c", "import torch, bwc"], capture_output=True, text=True, check=True, timeout=120
    )
    assert "torch was imported before bwc" in completed.stderr
