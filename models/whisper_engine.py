"""What a whisper engine does for :class:`models.asr.WhisperTranscriber`: encode, decode and align batches of windows.

bwc's transcription loop (VAD windows from many recordings batched together, whisper.transcribe's temperature
fallback, its no-speech rule, where the next window of a chunk starts) is the same whichever library runs the
network; an engine only runs it. Two engines implement :class:`WhisperEngine`:

- :class:`models.whisper_ct2.CTranslate2Engine`: faster-whisper's model objects on CTranslate2 (int8 on CPU,
  float16 on GPU by default): the fast one, chosen when the weights exist in CTranslate2's format;
- :class:`models.whisper_openai.OpenAIEngine`: openai-whisper in torch, for ``.pt`` checkpoints.

Which one a path gets is decided by what it is (:func:`load_engine`): a directory holding ``model.bin`` is a
CTranslate2 model, a file is an openai-whisper checkpoint. ``whisper.engine`` in the configuration picks between the
two formats when both are installed (:func:`models.locate.resolve_whisper_weights`).

Example
-------
>>> engine = load_engine(WhisperConfig(), Path("whisper/tiny.en-ct2"), device="cpu")    # doctest: +SKIP
>>> batch = engine.prepare(mel)                       # mel: [windows, n_mels, 3000]     # doctest: +SKIP
>>> engine.decode(batch, [0, 1], "en", 0.0, None)[0].text                                # doctest: +SKIP
' Evening, sir.'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from whisper.decoding import DecodingResult

from models.locate import engine_name

if TYPE_CHECKING:
    from bwc.config import WhisperConfig
    from models.forward_clock import ForwardClock

# whisper.transcribe's defaults: punctuation joined to the word after / before it in word timings
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


class Tokenizer(Protocol):
    """The part of a whisper tokenizer the loop uses (openai-whisper's and faster-whisper's both have it)."""

    eot: int
    timestamp_begin: int

    def decode(self, tokens: list[int]) -> str: ...


@dataclass
class WordRequest:
    """One decoded window whose segments need word timings."""

    row: int  # the window's row in its batch
    segments: list[dict]  # whisper.transcribe's segment dicts (seek, start, end, text, tokens); gets "words"
    language: str  # the language it was decoded in
    num_frames: int  # mel frames of the window that are audio, not padding
    last_speech: float  # end of the chunk's last word so far (whisper's last_speech_timestamp), chunk seconds


class WhisperEngine(Protocol):
    """A whisper network behind one small interface; see the module docstring."""

    version: str  # what the catalog records for its outputs, e.g. "whisper:tiny.en-ct2@1a2b3c ctranslate2"
    n_mels: int  # mel bands of its input
    device: str  # where the mel spectrograms it is given live ("cpu", "cuda", "cuda:1")
    is_multilingual: bool  # False: English only (language detection always gives "en")

    def tokenizer(self, language: str) -> Tokenizer:
        """The tokenizer of a language (cached)."""
        ...

    def prepare(self, mel: torch.Tensor) -> Any:
        """A batch of windows, ``mel`` float32 ``[windows, n_mels, 3000]`` on :attr:`device`, ready to decode."""
        ...

    def decode(
        self, batch: Any, rows: Sequence[int], language: str | None, temperature: float, seeds: Sequence[int] | None
    ) -> list[DecodingResult]:
        """Decode rows of a batch at one temperature (greedy or beams at 0; ``best_of`` samples above it, from one
        seed per window where the engine can seed per window, as openai-whisper can and CTranslate2 cannot).
        ``language`` None: detected per window. Results carry tokens (timestamp
        tokens included), text, language, average log probability, no-speech probability, compression ratio."""
        ...

    def add_word_timestamps(self, batch: Any, requests: Sequence[WordRequest]) -> None:
        """Give each request's segments their ``"words"`` (dicts with word, start, end, probability; seconds from
        the chunk's start), as whisper.timing.add_word_timestamps does."""
        ...

    def detect_language(self, mel: torch.Tensor) -> str:
        """The most likely language of one 30 s window (``mel`` ``[n_mels, 3000]``)."""
        ...


def load_engine(
    config: WhisperConfig, weights: Path, device: str = "cpu", clock: ForwardClock | None = None
) -> WhisperEngine:
    """The engine for ``weights``: CTranslate2 for a model directory, openai-whisper for a checkpoint file."""
    if engine_name(weights) == "ctranslate2":
        from models.whisper_ct2 import CTranslate2Engine

        return CTranslate2Engine(config, weights, device=device, clock=clock)
    if weights.is_dir():
        raise ValueError(f"{weights}: a directory without model.bin is no whisper model (CTranslate2 or .pt)")
    from models.whisper_openai import OpenAIEngine

    return OpenAIEngine(config, weights, device=device, clock=clock)
