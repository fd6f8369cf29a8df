"""The CTranslate2 engine: faster-whisper's model objects behind :class:`models.whisper_engine.WhisperEngine`.

faster-whisper's ``WhisperModel`` loads the model (``ctranslate2.models.Whisper``) and its tokenizer; bwc calls the
model's ``encode``, ``generate``, ``detect_language`` and ``align`` on its own batches of VAD windows from many
recordings (faster-whisper's ``transcribe`` works file by file). What is faster than openai-whisper: int8 weights
on CPU (float16 on GPU), whisper's timestamp rules applied inside CTranslate2's decoding loop (openai-whisper applies
them row by row in Python, with a GPU sync per row), and word alignment from the encoder output already computed,
for every window of a batch in one ``align`` call (openai-whisper runs the whole model again per window).

The rules around decoding are bwc's, the same for both engines (:class:`models.asr.WhisperTranscriber`). One
difference: CTranslate2 samples (a fallback at temperature > 0) from a generator per worker thread, seeded once when
the thread first samples and never again (``ctranslate2.set_random_seed`` only seeds threads started after it). The
engine seeds it before it loads the model, so a run is reproducible: the same windows in the same order give the
same words; but a fallback window's samples depend on the fallbacks decoded before it by the same model, where the
openai engine draws each window's samples from its own seed. Fallbacks are rare (none of 59 windows on the
development utterances; a few in a hundred on body-camera scenes), and greedy decoding, all the rest, is exact.

Example
-------
>>> engine = CTranslate2Engine(WhisperConfig(), Path("whisper/tiny.en-ct2"))             # doctest: +SKIP
>>> engine.compute_type                                                                   # doctest: +SKIP
'int8'
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import ctranslate2
import numpy as np
import torch
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from whisper.decoding import DecodingResult
from whisper.tokenizer import TO_LANGUAGE_CODE
from whisper.utils import compression_ratio

from bwc.config import WhisperConfig
from models.forward_clock import ForwardClock
from models.locate import CT2_MODEL_FILE, CT2_TOKENIZER_FILE, asr_version
from models.whisper_engine import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS, WordRequest

SAMPLING_SEED = 0  # CTranslate2's generator for fallback samples: a run is reproducible (see the module docstring)
N_TEXT_CTX = 448  # every whisper size's text context: tokens per window, prompt included
MAX_INITIAL_TIMESTAMP_INDEX = 50  # whisper's max_initial_timestamp of 1.0 s, in 0.02 s timestamp tokens
# Compute types by device, first supported wins: int8 weights on CPU (3-6x openai-whisper fp32 on 2 cores, measured
# on tiny.en), float16 on GPU (int8_float16 where a GPU has no fast float16)
COMPUTE_TYPES = {"cpu": ("int8", "float32"), "cuda": ("float16", "int8_float16", "float32")}


@dataclass
class _Batch:
    """Windows being decoded, encoded once."""

    encoded: ctranslate2.StorageView  # encoder output [windows, 1500, d_model]
    size: int  # windows
    device: str  # "cpu", "cuda" or "cuda:N"
    keep: list[object] = field(default_factory=list)  # arrays the storage views read from: alive while they are
    no_speech: dict[int, float] = field(default_factory=dict)  # row -> <|nospeech|> probability, first decoding
    _tensor: torch.Tensor | None = None  # the encoder output as a torch view, for picking rows

    def rows(self, rows: Sequence[int]) -> ctranslate2.StorageView:
        """The encoder output of some rows (no copy when all of them, in order)."""
        rows = list(rows)
        if rows == list(range(self.size)):
            return self.encoded
        if self._tensor is None:
            self._tensor = (
                torch.from_numpy(np.asarray(self.encoded))
                if self.device == "cpu"
                else torch.as_tensor(self.encoded, device=self.device)
            )
        picked = self._tensor[rows].contiguous()
        self.keep.append(picked)
        return ctranslate2.StorageView.from_array(picked.numpy() if self.device == "cpu" else picked)


class _PrecomputedAlignment(WhisperModel):
    """faster-whisper's WhisperModel whose ``find_alignment`` can hand out alignments computed beforehand: bwc aligns
    every window of a batch in one ``align`` call, then applies faster-whisper's word-timing rules (merged
    punctuation, long words cut at pauses) window by window, each with its own chunk's last word end."""

    precomputed: list[list[dict]] | None = None  # what the next find_alignment call returns; None: compute it

    def find_alignment(self, *args: object, **kwargs: object) -> list[list[dict]]:
        if self.precomputed is not None:
            return self.precomputed
        return super().find_alignment(*args, **kwargs)  # type: ignore[arg-type]


class CTranslate2Engine:
    """A CTranslate2 whisper model directory (``model.bin``, ``config.json``, ``tokenizer.json``), loaded once.

    Parameters
    ----------
    config
        Decoding settings (``compute_type``, ``beam_size``, ``best_of``, ``sample_len``).
    model_dir
        The model directory (as ``bwc models fetch`` or ``bwc models starter`` installs it).
    device
        "cpu", "cuda" or "cuda:N".
    clock
        Counts the seconds in the model's calls.
    """

    def __init__(
        self, config: WhisperConfig, model_dir: Path, device: str = "cpu", clock: ForwardClock | None = None
    ) -> None:
        self.config = config
        self.device = device
        kind, _, index = device.partition(":")
        self.kind = "cuda" if kind == "cuda" else "cpu"
        self.compute_type = choose_compute_type(config.compute_type, self.kind)
        if not (model_dir / CT2_TOKENIZER_FILE).is_file():  # faster-whisper would download one from the hub
            raise ValueError(f"{model_dir}: no {CT2_TOKENIZER_FILE} (a CTranslate2 whisper model needs its tokenizer)")
        ctranslate2.set_random_seed(SAMPLING_SEED)  # read by the model's worker threads when they first sample
        try:
            self.whisper = _PrecomputedAlignment(
                str(model_dir),
                device=self.kind,
                device_index=int(index or 0),
                compute_type=self.compute_type,
                cpu_threads=torch.get_num_threads(),  # the process's own count (one per core, or an actor's share)
            )
        except (RuntimeError, ValueError) as error:  # CTranslate2's own words name neither the file nor the fix
            raise ValueError(
                f"{model_dir / CT2_MODEL_FILE}: not a CTranslate2 whisper model this CTranslate2 "
                f"{ctranslate2.__version__} can load ({error})"
            ) from error
        self.model = self.whisper.model
        self.n_mels = int(self.model.n_mels)  # 128 for large-v3, whether or not preprocessor_config.json says so
        self.is_multilingual = bool(self.model.is_multilingual)
        self.version = asr_version(model_dir, config.compute_type)
        self.clock = clock
        self._tokenizers: dict[str, Tokenizer] = {}

    def tokenizer(self, language: str) -> Tokenizer:
        language = language_code(language) if self.is_multilingual else "en"
        if language not in self._tokenizers:
            self._tokenizers[language] = Tokenizer(
                self.whisper.hf_tokenizer, self.is_multilingual, task="transcribe", language=language
            )
        return self._tokenizers[language]

    def prepare(self, mel: torch.Tensor) -> _Batch:
        mel = mel.to(self.device if self.kind == "cuda" else "cpu", torch.float32).contiguous()
        features = ctranslate2.StorageView.from_array(mel.numpy() if self.kind == "cpu" else mel)
        with self._timing():
            encoded = self.model.encode(features, to_cpu=False)
        return _Batch(encoded=encoded, size=mel.shape[0], device=self.device, keep=[mel, features])

    def decode(
        self, batch: _Batch, rows: Sequence[int], language: str | None, temperature: float, seeds: Sequence[int] | None
    ) -> list[DecodingResult]:
        rows = list(rows)
        languages = [language_code(language)] * len(rows) if language else self._detect(batch, rows)
        results: dict[int, DecodingResult] = {}
        for chosen in dict.fromkeys(languages):
            group = [row for row, other in zip(rows, languages, strict=True) if other == chosen]
            tokenizer = self.tokenizer(chosen)
            prompt = list(tokenizer.sot_sequence)
            # CTranslate2's Whisper decodes at most min(max_length / 2, max_length - prompt) tokens: its max_length is
            # the whole text context, so whisper's sample_len (224 by default) needs twice that, at least
            new_tokens = min(self.config.sample_len or N_TEXT_CTX // 2, N_TEXT_CTX // 2)
            settings = {
                "max_length": max(2 * new_tokens, new_tokens + len(prompt)),
                "return_scores": True,
                "return_no_speech_prob": True,
                "suppress_blank": True,
                "suppress_tokens": [-1],  # whisper's non-speech symbols, from the model's config.json
                "max_initial_timestamp_index": MAX_INITIAL_TIMESTAMP_INDEX,
            }
            if temperature == 0:
                search = {"beam_size": self.config.beam_size or 1}
            else:  # best_of samples per window, the likeliest first
                search = {
                    "beam_size": 1,
                    "num_hypotheses": self.config.best_of or 1,
                    "sampling_topk": 0,
                    "sampling_temperature": temperature,
                }
            with self._timing():
                found = self.model.generate(batch.rows(group), [prompt] * len(group), **search, **settings)
            for row, generated in zip(group, found, strict=True):
                result = _result(generated, tokenizer, str(chosen), temperature)
                # <|nospeech|> is read at the first step, before any sampling: the same at every temperature, and
                # CTranslate2 4.8 gives an English-only model's rows the wrong windows' values when it returns
                # several hypotheses (it reads them from the rows repeated per hypothesis): the first decoding's
                batch.no_speech.setdefault(row, result.no_speech_prob)
                results[row] = replace(result, no_speech_prob=batch.no_speech[row])
        return [results[row] for row in rows]

    def add_word_timestamps(self, batch: _Batch, requests: Sequence[WordRequest]) -> None:
        languages = [request.language for request in requests]
        for language in dict.fromkeys(languages):
            tokenizer = self.tokenizer(language)
            group = []
            for request in (r for r, other in zip(requests, languages, strict=True) if other == language):
                tokens = [token for segment in request.segments for token in segment["tokens"] if token < tokenizer.eot]
                if tokens:
                    group.append((request, tokens))
                else:
                    for segment in request.segments:
                        segment["words"] = []
            if not group:
                continue
            with self._timing():  # every window of the batch in one call, from the encoder output already there
                alignments = self.whisper.find_alignment(
                    tokenizer,
                    [tokens for _, tokens in group],
                    batch.rows([request.row for request, _ in group]),
                    [request.num_frames for request, _ in group],
                )
            for (request, _), alignment in zip(group, alignments, strict=True):
                self.whisper.precomputed = [alignment]
                try:
                    self.whisper.add_word_timestamps(
                        [request.segments],
                        tokenizer,
                        batch.encoded,
                        request.num_frames,
                        PREPEND_PUNCTUATIONS,
                        APPEND_PUNCTUATIONS,
                        request.last_speech,
                    )
                finally:
                    self.whisper.precomputed = None

    def detect_language(self, mel: torch.Tensor) -> str:
        batch = self.prepare(mel[None])
        return self._detect(batch, [0])[0]

    def _detect(self, batch: _Batch, rows: list[int]) -> list[str]:
        """Each row's likeliest language (an English-only model: English)."""
        if not self.is_multilingual:
            return ["en"] * len(rows)
        with self._timing():
            found = self.model.detect_language(batch.rows(rows))
        return [str(languages[0][0])[2:-2] for languages in found]  # "<|en|>" -> "en"

    def _timing(self) -> AbstractContextManager[None]:
        return self.clock.timing() if self.clock is not None else nullcontext()


def choose_compute_type(configured: str | None, device: str) -> str:
    """``whisper.compute_type`` if this device supports it, else the first of :data:`COMPUTE_TYPES` it supports.

    >>> choose_compute_type(None, "cpu")
    'int8'
    >>> choose_compute_type("float32", "cpu")
    'float32'
    """
    supported = ctranslate2.get_supported_compute_types(device)
    if configured is not None:
        if configured not in supported:
            raise ValueError(
                f"whisper.compute_type {configured!r} is not supported on {device} here "
                f"(supported: {', '.join(sorted(supported))})"
            )
        return configured
    return next((kind for kind in COMPUTE_TYPES[device] if kind in supported), "float32")


def language_code(language: str) -> str:
    """A language as whisper's code: openai-whisper takes names too ("english"), faster-whisper only codes.

    >>> language_code("english"), language_code("en"), language_code("Spanish")
    ('en', 'en', 'es')
    """
    return TO_LANGUAGE_CODE.get(language.lower(), language)


def _result(
    generated: ctranslate2.models.WhisperGenerationResult, tokenizer: Tokenizer, language: str, temperature: float
) -> DecodingResult:
    """A CTranslate2 generation result as whisper's DecodingResult (what the fallback and no-speech rules read)."""
    tokens = list(generated.sequences_ids[0])
    # CTranslate2's score is the sum of token log probabilities over the length (length_penalty 1); whisper's
    # average divides the sum, end-of-text included, by the tokens plus one (faster-whisper's recovery)
    avg_logprob = generated.scores[0] * len(tokens) / (len(tokens) + 1)
    text = tokenizer.decode(tokens).strip()
    return DecodingResult(
        audio_features=None,  # type: ignore[arg-type]
        language=language,
        tokens=tokens,
        text=text,
        avg_logprob=float(avg_logprob),
        no_speech_prob=float(generated.no_speech_prob),
        temperature=temperature,
        compression_ratio=compression_ratio(text),
    )
