"""The openai-whisper engine: whisper's own torch model behind :class:`models.whisper_engine.WhisperEngine`.

For ``.pt`` checkpoints. A batch's first decoding runs on the mel spectrograms (``whisper.decode`` encodes them);
a fallback's decodings start from the encoder output that decoding kept, so only the decoder runs again. Word timings
are ``whisper.timing.add_word_timestamps`` per window, which runs the whole model again on the window (that, and
whisper's timestamp rules applied row by row, are why the CTranslate2 engine is faster).

Example
-------
>>> engine = OpenAIEngine(WhisperConfig(model="tiny.en"), Path("tiny.en.pt"))          # doctest: +SKIP
>>> batch = engine.prepare(mel)                                                         # doctest: +SKIP
>>> engine.decode(batch, [0], "en", 0.0, None)[0].language                              # doctest: +SKIP
'en'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
import whisper
from whisper.audio import N_FRAMES, pad_or_trim
from whisper.decoding import DecodingOptions, DecodingResult, DecodingTask, GreedyDecoder
from whisper.timing import add_word_timestamps
from whisper.tokenizer import Tokenizer, get_tokenizer

from bwc.config import WhisperConfig
from models.ctranslate2_whisper import load_whisper
from models.forward_clock import ForwardClock
from models.locate import whisper_version
from models.whisper_engine import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS, WordRequest


@dataclass
class _Batch:
    """Windows being decoded: their mel spectrograms, and the encoder output of each once it was decoded."""

    mel: torch.Tensor  # [windows, n_mels, 3000], in the model's dtype
    features: dict[int, torch.Tensor] = field(default_factory=dict)  # row -> encoder output from its first decoding


class _SeededSampler(GreedyDecoder):
    """whisper's GreedyDecoder at temperature > 0, each window's rows drawing from that window's own generator.

    whisper samples every row of a batch in one draw from torch's global generator, so a window's samples would
    depend on the windows beside it and on everything drawn before; here they depend on the window alone.
    """

    def __init__(self, temperature: float, eot: int, generators: Sequence[torch.Generator], group: int) -> None:
        super().__init__(temperature, eot)
        self.generators = generators  # one per window, in row order
        self.group = group  # consecutive rows per window (its best_of samples)

    def update(
        self, tokens: torch.Tensor, logits: torch.Tensor, sum_logprobs: torch.Tensor
    ) -> tuple[torch.Tensor, bool]:
        # the draw of whisper's Categorical(logits=logits / T).sample(), by inverse transform: a uniform number per
        # row placed in the cumulative softmax (in float64: 51865 terms); 5x faster than torch.multinomial on CPU
        cumulative = F.softmax(logits.double() / self.temperature, dim=-1).cumsum(dim=-1)
        uniform = torch.cat(
            [
                torch.rand(self.group, 1, generator=generator, device=logits.device, dtype=torch.float64)
                for generator in self.generators
            ]
        )
        # right=True: the first token whose cumulative probability exceeds the draw, never a zero-probability one
        next_tokens = torch.searchsorted(cumulative, uniform * cumulative[:, -1:], right=True)[:, 0]
        next_tokens = next_tokens.clamp_(max=logits.shape[-1] - 1)
        # the rest is GreedyDecoder.update's
        logprobs = F.log_softmax(logits.float(), dim=-1)
        current_logprobs = logprobs[torch.arange(logprobs.shape[0]), next_tokens]
        sum_logprobs += current_logprobs * (tokens[:, -1] != self.eot)
        next_tokens[tokens[:, -1] == self.eot] = self.eot
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=-1)
        return tokens, bool((tokens[:, -1] == self.eot).all())


class _GroupedDecodingTask(DecodingTask):
    """whisper's DecodingTask, fixed for beam search and best-of sampling over several windows, and sampling each
    window from its own generator (``seeds``: one per window).

    whisper 20250625 repeats each window's tokens ``n_group`` times (beams, or best_of samples) but not its encoder
    output, which broadcasts only when there is a single window: batched beam search or best-of fails with a size
    mismatch (openai/whisper#2197, #2389, open). The encoder output is repeated here as the tokens are.
    """

    def __init__(self, model: whisper.Whisper, options: DecodingOptions, seeds: Sequence[int] | None = None) -> None:
        super().__init__(model, options)
        if seeds is not None and options.temperature > 0:
            generators = [torch.Generator(device=model.device).manual_seed(seed) for seed in seeds]
            self.decoder = _SeededSampler(options.temperature, self.tokenizer.eot, generators, self.n_group)

    def _get_audio_features(self, mel: torch.Tensor) -> torch.Tensor:
        return super()._get_audio_features(mel).repeat_interleave(self.n_group, dim=0)

    def _detect_language(self, audio_features: torch.Tensor, tokens: torch.Tensor) -> tuple[list, list | None]:
        return super()._detect_language(audio_features[:: self.n_group], tokens)  # one row per window again


class OpenAIEngine:
    """openai-whisper's model, loaded once.

    Parameters
    ----------
    config
        Decoding settings (``fp16`` on CUDA, ``int8`` on CPU, ``beam_size``, ``best_of``, ``sample_len``).
    checkpoint
        A whisper ``.pt`` checkpoint.
    device
        "cpu" or "cuda".
    clock
        Counts the seconds in the encoder and decoder.
    """

    def __init__(
        self, config: WhisperConfig, checkpoint: Path, device: str = "cpu", clock: ForwardClock | None = None
    ) -> None:
        self.config = config
        self.device = device
        # whisper.load_model(path) gives a checkpoint file whisper's default alignment heads (every head of the
        # later half of the decoder): word timings need the model's own, which load_whisper restores
        self.model = load_whisper(checkpoint, device=device)
        quantized = config.int8 and device == "cpu"
        if quantized:
            self.model = quantize_int8(self.model)
        # as ResolvedModels.versions() says it, without int8 (a recording is not re-run for a CPU quantisation, as
        # it is not for fp16 on a GPU)
        self.version = whisper_version(checkpoint)
        self.n_mels = self.model.dims.n_mels
        self.is_multilingual = self.model.is_multilingual
        # numba (whisper's DTW for word timings) can reset the OpenMP thread count to every core when its threading
        # layer starts: with several actors per node that oversubscribes the CPUs and runs 5-10x slower, so the
        # count set for this process is put back after each alignment
        self.threads = torch.get_num_threads()
        self.clock = clock or ForwardClock()
        self.clock.attach(self.model.encoder)  # the decoder is called once per token, the encoder once per window
        self.clock.attach(self.model.decoder)

    def tokenizer(self, language: str) -> Tokenizer:
        return get_tokenizer(
            self.model.is_multilingual, num_languages=self.model.num_languages, language=language, task="transcribe"
        )

    def prepare(self, mel: torch.Tensor) -> _Batch:
        return _Batch(mel.to(self.device, self._dtype))  # word alignment runs the model on these windows too

    def decode(
        self, batch: _Batch, rows: Sequence[int], language: str | None, temperature: float, seeds: Sequence[int] | None
    ) -> list[DecodingResult]:
        rows = list(rows)
        if all(row in batch.features for row in rows):
            inputs = torch.stack([batch.features[row] for row in rows])  # a fallback: only the decoder runs again
        else:
            inputs = batch.mel[rows]
        options = self._options(language, temperature)
        if options.temperature == 0 and options.beam_size is None:
            results = whisper.decode(self.model, inputs, options)
        else:  # beams or samples, which whisper.decode cannot batch (and samples from torch's global generator)
            results = _GroupedDecodingTask(self.model, options, seeds).run(inputs)
        for row, result in zip(rows, results, strict=True):
            batch.features.setdefault(row, result.audio_features)
        return results

    def add_word_timestamps(self, batch: _Batch, requests: Sequence[WordRequest]) -> None:
        for request in requests:
            add_word_timestamps(
                segments=request.segments,
                model=self.model,
                tokenizer=self.tokenizer(request.language),
                mel=batch.mel[request.row],
                num_frames=request.num_frames,
                prepend_punctuations=PREPEND_PUNCTUATIONS,
                append_punctuations=APPEND_PUNCTUATIONS,
                last_speech_timestamp=request.last_speech,
            )
            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)

    def detect_language(self, mel: torch.Tensor) -> str:
        with torch.inference_mode():
            _, probabilities = self.model.detect_language(pad_or_trim(mel, N_FRAMES).to(self.device, self._dtype))
        return str(max(probabilities, key=probabilities.get))  # type: ignore[arg-type]

    def _options(self, language: str | None, temperature: float) -> DecodingOptions:
        """whisper.decode options from the config, as decode_with_fallback builds them: beams at temperature 0,
        best_of samples above it. Language None makes whisper detect it per window."""
        return DecodingOptions(
            task="transcribe",
            language=language,
            temperature=temperature,
            sample_len=self.config.sample_len,
            best_of=self.config.best_of if temperature > 0 else None,
            beam_size=self.config.beam_size if temperature == 0 else None,
            fp16=self._dtype == torch.float16,
        )

    @property
    def _dtype(self) -> torch.dtype:
        return torch.float16 if self.config.fp16 and self.device.startswith("cuda") else torch.float32


def quantize_int8(model: whisper.Whisper) -> whisper.Whisper:
    """whisper with its linear layers dynamically quantised to int8 (CPU only): weights int8, activations
    quantised per call. The token embedding (also the output projection) stays float.

    whisper's ``Linear`` subclass only casts its weights to the input's dtype (for fp16 on CUDA); on CPU in fp32 it
    is a plain ``nn.Linear``, which is what torch's quantiser recognises, so the class is swapped first.
    """
    for module in model.modules():
        if type(module) is whisper.model.Linear:
            module.__class__ = torch.nn.Linear
    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
