"""Transcription with whisper, restricted to the speech the VAD found, on either engine.

:meth:`WhisperTranscriber.transcribe_chunks` batches speech chunks (VAD regions packed into windows of at most 30 s)
from many recordings through whisper together, ``batch_size`` 30 s windows per call of the engine
(:mod:`models.whisper_engine`: CTranslate2 through faster-whisper's model objects, or openai-whisper); word timings
for every window of a batch come from one alignment call. Only the bookkeeping of ``whisper.transcribe``'s loop
(timestamp tokens into segments, where the next window starts, the no-speech rule, the temperature fallback) is
repeated here, per window instead of per recording, the same for both engines.

Temperature fallback, as ``whisper.transcribe``'s ``decode_with_fallback``: a window whose text is a repetition loop
(gzip compression ratio above ``compression_ratio_threshold``) or unsure (average log probability below
``logprob_threshold``), and that is not silence, is decoded again at the next temperature (the likeliest of
``best_of`` samples); the last decoding is kept when every temperature fails. Only the failed windows of a batch are
decoded again, together, from the encoder output already computed. Samples are drawn per window from a generator
seeded by the window's audio on the openai engine, so that a window's words do not depend on the windows sharing its
batch (whisper samples from torch's global generator); CTranslate2 samples from a generator per worker thread,
seeded once, so there a run is reproducible but a fallback's samples depend on the fallbacks before it
(:mod:`models.whisper_ct2`).

Example
-------
>>> asr = WhisperTranscriber(WhisperConfig(model="small"), Path("whisper/small-ct2"))      # doctest: +SKIP
>>> chunks = [SpeechChunk("rec-1", r.start, r.end, audio[int(r.start * 16000) : int(r.end * 16000)])
...           for r in regions]                                                         # doctest: +SKIP
>>> asr.transcribe_chunks(chunks, batch_size=8)["rec-1"][0]                              # doctest: +SKIP
Word(start=1.32, end=1.58, text='Evening.', probability=0.91, speaker=None)
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from whisper.audio import (
    FRAMES_PER_SECOND,
    HOP_LENGTH,
    N_FRAMES,
    N_SAMPLES,
    SAMPLE_RATE,
    log_mel_spectrogram,
    pad_or_trim,
)
from whisper.decoding import DecodingResult

from bwc.config import WhisperConfig
from bwc.records import Word
from models.forward_clock import ForwardClock
from models.whisper_engine import Tokenizer, WhisperEngine, WordRequest, load_engine

# whisper.transcribe's defaults for its no-speech rule: a window whose <|nospeech|> probability is above
# NO_SPEECH_THRESHOLD yields nothing unless its average token log probability is above LOGPROB_THRESHOLD.
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
# whisper.transcribe's default for its fallback: text whose gzip compression ratio is above this is a repetition loop
COMPRESSION_RATIO_THRESHOLD = 2.4
MAX_TEMPERATURE = 1.0  # the fallback's last temperature, as whisper's command line builds its temperatures
TIME_PRECISION = 0.02  # seconds per timestamp token: 2 mel frames of 10 ms (whisper's input stride)
INPUT_STRIDE = 2  # mel frames per timestamp token (N_FRAMES / n_audio_ctx)


@dataclass(frozen=True)
class SpeechChunk:
    """Speech of one recording to transcribe: a stretch of at most 30 s, or several packed into one window."""

    key: str  # whose chunk it is, e.g. the recording id; results are grouped by it
    start: float  # seconds from the recording's start (of its first piece)
    end: float  # seconds from the recording's start (of its last piece)
    audio: np.ndarray  # float32 mono 16 kHz samples: exactly [start, end], or the pieces one after the other
    pieces: tuple[tuple[float, float, float], ...] = ()  # packed: (offset in audio, start, end) per piece, in order
    speech: tuple[tuple[float, float], ...] = ()  # spans of ``audio`` (s) the VAD heard speech in; (): all of it
    language: str | None = None  # language to decode in; None: the transcriber's configured one

    def to_recording_time(self, start: float, end: float) -> tuple[float, float]:
        """A span in seconds from the chunk's audio start as recording seconds, kept inside the piece nearest to its
        middle (a word never lands in the silence between packed pieces)."""
        if not self.pieces:
            first = min(max(self.start + start, self.start), self.end)
            return first, min(max(self.start + end, first), self.end)
        middle = (start + end) / 2
        index = max(0, bisect_right([piece[0] for piece in self.pieces], middle) - 1)
        if index + 1 < len(self.pieces):
            # a middle in the gap after this piece: the nearer piece; alignment starts a word early after a pause,
            # so the first word of a piece would otherwise be given to the end of the piece before it
            after = self.pieces[index][0] + self.pieces[index][2] - self.pieces[index][1]
            if middle - after > self.pieces[index + 1][0] - middle:
                index += 1
        offset, piece_start, piece_end = self.pieces[index]
        first = min(max(piece_start + start - offset, piece_start), piece_end)
        return first, min(max(piece_start + end - offset, first), piece_end)


@dataclass(frozen=True)
class _Window:
    """One 30 s decoding window inside a chunk: a chunk longer than what whisper wrote in one pass gets more."""

    chunk: int  # index into the chunks
    seek: int  # first mel frame of the window, counted from the chunk's start
    language: str | None  # None: whisper.decode detects it for this window (first window, no configured language)


class _Parsed(NamedTuple):
    """A decoded window that is not silence, cut into whisper.transcribe's segments."""

    segments: list[dict]  # segment dicts (seek, start, end, text, tokens); the engine adds their "words"
    next_seek: int  # mel frame whisper would decode from next (from the chunk's start)
    closed: bool  # whisper closed the window (a single timestamp ending)
    instantaneous: tuple[bool, ...]  # per segment: its decoded start and end are equal (whisper clears it)


def is_no_speech(
    no_speech_prob: float,
    avg_logprob: float,
    no_speech_threshold: float | None = NO_SPEECH_THRESHOLD,
    logprob_threshold: float | None = LOGPROB_THRESHOLD,
) -> bool:
    """whisper.transcribe's no-speech rule: the window is silence, and yields no text.

    Parameters
    ----------
    no_speech_prob
        Probability of whisper's ``<|nospeech|>`` token after the start-of-transcript (NaN when the model has none).
    avg_logprob
        Average log probability of the decoded tokens.
    no_speech_threshold
        None: no window is silence.
    logprob_threshold
        None: ``no_speech_prob`` alone decides.

    Returns
    -------
    bool
        True when ``no_speech_prob > 0.6`` and ``avg_logprob`` is not above -1 (whisper's exact comparisons).

    Examples
    --------
    >>> is_no_speech(0.9, -1.5), is_no_speech(0.9, -0.5), is_no_speech(0.3, -1.5)
    (True, False, False)
    """
    if no_speech_threshold is None or not no_speech_prob > no_speech_threshold:
        return False
    return logprob_threshold is None or not avg_logprob > logprob_threshold


def needs_fallback(
    result: DecodingResult,
    compression_ratio_threshold: float | None = COMPRESSION_RATIO_THRESHOLD,
    logprob_threshold: float | None = LOGPROB_THRESHOLD,
    no_speech_threshold: float | None = NO_SPEECH_THRESHOLD,
) -> bool:
    """Whether whisper.transcribe's ``decode_with_fallback`` would decode this window again, hotter.

    A window fails when its text is too repetitive (compression ratio above ``compression_ratio_threshold``) or its
    average log probability is below ``logprob_threshold``; but a window whose ``<|nospeech|>`` probability is above
    ``no_speech_threshold`` with a log probability below ``logprob_threshold`` is silence, which whisper skips rather
    than decoding again (whisper's precedence: silence wins). A None threshold turns its rule off, as in whisper.

    Examples
    --------
    >>> loop = DecodingResult(None, "en", avg_logprob=-0.2, no_speech_prob=0.1, compression_ratio=3.1)
    >>> silence = DecodingResult(None, "en", avg_logprob=-1.5, no_speech_prob=0.9, compression_ratio=1.0)
    >>> needs_fallback(loop), needs_fallback(silence), needs_fallback(loop, compression_ratio_threshold=None)
    (True, False, False)
    """
    if (
        no_speech_threshold is not None
        and logprob_threshold is not None
        and result.no_speech_prob > no_speech_threshold
        and result.avg_logprob < logprob_threshold
    ):
        return False  # silence: the no-speech rule drops it, whatever a hotter decoding would write
    too_repetitive = compression_ratio_threshold is not None and result.compression_ratio > compression_ratio_threshold
    too_unsure = logprob_threshold is not None and result.avg_logprob < logprob_threshold
    return too_repetitive or too_unsure


def fallback_temperatures(temperature: float, increment: float | None) -> tuple[float, ...]:
    """The temperatures a window is decoded at in turn, as whisper's command line builds them from its options.

    Examples
    --------
    >>> fallback_temperatures(0.0, 0.2)
    (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    >>> fallback_temperatures(0.0, None)
    (0.0,)
    """
    if increment is None:
        return (temperature,)
    if not increment > 0:
        raise ValueError(f"temperature_increment_on_fallback must be positive or None, got {increment}")
    # rounded: 0.6, not np.arange's 0.6000000000000001, so that the default is whisper.transcribe's own tuple
    hotter = [round(float(t), 6) for t in np.arange(temperature, MAX_TEMPERATURE + 1e-6, increment)]
    return (temperature, *(t for t in hotter if t > temperature))


def _segments(tokens: list[int], tokenizer: Tokenizer, seek: int, segment_size: int) -> tuple[list[dict], int, bool]:
    """Segments of one decoded window, as whisper.transcribe cuts them at timestamp tokens (times in seconds from
    the chunk's start), the mel frame where the next window would start, and whether whisper closed the window."""
    time_offset = seek * HOP_LENGTH / SAMPLE_RATE
    is_timestamp = [token >= tokenizer.timestamp_begin for token in tokens]
    single_timestamp_ending = is_timestamp[-2:] == [False, True]
    consecutive = [i + 1 for i in range(len(tokens) - 1) if is_timestamp[i] and is_timestamp[i + 1]]

    def segment(start: float, end: float, part: list[int]) -> dict:
        text = tokenizer.decode([token for token in part if token < tokenizer.eot])
        return {"seek": seek, "start": start, "end": end, "text": text, "tokens": part}

    if consecutive:
        slices = consecutive + ([len(tokens)] if single_timestamp_ending else [])
        segments, last = [], 0
        for current in slices:
            part = tokens[last:current]
            start = time_offset + (part[0] - tokenizer.timestamp_begin) * TIME_PRECISION
            end = time_offset + (part[-1] - tokenizer.timestamp_begin) * TIME_PRECISION
            segments.append(segment(start, end, part))
            last = current
        if single_timestamp_ending:
            next_seek = seek + segment_size
        else:  # whisper drops the unfinished last segment and decodes again from the last closed timestamp
            next_seek = seek + (tokens[last - 1] - tokenizer.timestamp_begin) * INPUT_STRIDE
        return segments, next_seek, single_timestamp_ending
    duration = segment_size * HOP_LENGTH / SAMPLE_RATE
    timestamps = [token for token, flag in zip(tokens, is_timestamp, strict=True) if flag]
    if timestamps and timestamps[-1] != tokenizer.timestamp_begin:
        duration = (timestamps[-1] - tokenizer.timestamp_begin) * TIME_PRECISION
    return [segment(time_offset, time_offset + duration, tokens)], seek + segment_size, single_timestamp_ending


def first_skipped_speech(
    chunk: SpeechChunk, words: list[dict], window_start: float, window_end: float, min_s: float | None
) -> int | None:
    """The index of the first of a window's ``words`` after which whisper passed over more than ``min_s`` seconds of
    the VAD's speech without a word (up to the next word, or ``window_end``); None when it passed over none, or
    ``min_s`` is None. Times in seconds from the chunk's start; ``words`` are whisper's word dicts, in order.

    Why: whisper writes what it hears best and closes a window when nothing more seems worth writing; with a loud
    voice in the window (the camera wearer's) it can pass over a quieter one between or after its words. On
    development scenes mixed from real voices, community members' lines went missing whole that way, and were found
    when the window was decoded again from the word before them (6 scenes, line WER 0.22 -> 0.14 with ``min_s`` 3;
    whisper.transcribe 0.17-0.19).

    >>> chunk = SpeechChunk("r", 0.0, 20.0, np.zeros(20 * 16000, np.float32), speech=((0.0, 4.0), (5.0, 15.0)))
    >>> words = [{"start": 0.5, "end": 1.0}, {"start": 1.1, "end": 2.0}, {"start": 13.0, "end": 14.0}]
    >>> first_skipped_speech(chunk, words, 0.0, 20.0, min_s=1.0)  # 2-4 s and 5-13 s of speech had no words
    1
    >>> first_skipped_speech(chunk, words[2:], 0.0, 20.0, min_s=1.0) is None  # after 14 s: 1 s of speech is left
    True
    """
    if min_s is None or not words:
        return None
    spans = (
        chunk.speech
        or tuple((offset, offset + end - start) for offset, start, end in chunk.pieces)
        or ((0.0, chunk.audio.size / SAMPLE_RATE),)
    )

    def speech_in(start: float, end: float) -> float:
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)

    following = [float(word["start"]) for word in words[1:]] + [window_end]
    for index, (word, next_start) in enumerate(zip(words, following, strict=True)):
        end = float(word["end"])
        if end > window_start and speech_in(end, next_start) > min_s:
            return index
    return None


def _window_seed(chunk: SpeechChunk, window: _Window, temperature: float) -> int:
    """A seed for sampling one window: from its audio, where it starts in it and the temperature, never from the
    chunk's key or batch, so that the same speech samples the same way in any batch and in any run."""
    audio = np.ascontiguousarray(chunk.audio, dtype=np.float32)
    return zlib.crc32(f"{window.seek} {temperature}".encode(), zlib.crc32(audio.data))


class WhisperTranscriber:
    """A whisper model loaded once, transcribing many recordings, on either engine.

    Parameters
    ----------
    config
        Decoding settings.
    weights
        A CTranslate2 model directory (the CTranslate2 engine) or a whisper ``.pt`` checkpoint (openai-whisper),
        as :func:`models.locate.resolve_whisper_weights` resolves ``whisper.model`` and ``whisper.engine``.
    device
        "cpu" or "cuda".
    clock
        Counts the seconds inside the model.
    """

    def __init__(
        self, config: WhisperConfig, weights: Path, device: str = "cpu", clock: ForwardClock | None = None
    ) -> None:
        self.config = config
        self.weights = weights
        self.device = device
        self.clock = clock or ForwardClock()
        self.engine: WhisperEngine = load_engine(config, weights, device=device, clock=self.clock)
        self.version = self.engine.version
        self.temperatures = fallback_temperatures(config.temperature, config.temperature_increment_on_fallback)
        self.decoded: Counter[float] = Counter()  # windows decoded per temperature (above the first: fallbacks)

    def detect_language(self, audio: np.ndarray) -> str:
        """The most likely language of up to 30 s of speech (whisper's own detection on the first window)."""
        mel = log_mel_spectrogram(torch.from_numpy(np.asarray(audio, dtype=np.float32)), self.engine.n_mels)
        return self.engine.detect_language(pad_or_trim(mel, N_FRAMES).to(self.engine.device))

    def transcribe_chunks(self, chunks: Iterable[SpeechChunk], batch_size: int) -> dict[str, tuple[Word, ...]]:
        """Words spoken in ``chunks`` (of any number of recordings), decoding ``batch_size`` windows at a time.

        Each chunk is decoded as whisper.transcribe decodes a clip: a 30 s window from the chunk's start, then, where
        whisper left the window unfinished (no closing timestamp, or its token cap reached), another window from the
        end of the last word, until the chunk is covered. Windows of different chunks share the engine's calls.
        Chunks are independent: no text of an earlier chunk (or window) is given as prompt (whisper.transcribe's
        ``condition_on_previous_text``), so that any chunk can join any batch. Decoding is per item (greedy or beam
        search per row), so the words do not depend on ``batch_size`` up to float rounding; a fallback's samples come
        from the window's own seed on the openai engine, and from CTranslate2's per-thread generator on the other
        (the same run order gives the same words). Windows run in input order (a chunk's next window goes first in
        line). ``chunks`` is read lazily: only the chunks of the windows in hand are held, so an iterator over a long
        recording keeps memory flat.

        Parameters
        ----------
        chunks
            Speech spans (any iterable); chunks of one key need not be in order and may come from any recording.
        batch_size
            Windows per encoder/decoder call (at least 1).

        Returns
        -------
        dict[str, tuple[Word, ...]]
            Words per key, sorted by start time, times in the recording's seconds (chunk start + position in the
            chunk) clamped into the chunk's [start, end]. A key whose chunks yield no words (no-speech rule, empty
            audio) is absent.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        words: dict[str, list[Word]] = {}
        live: dict[int, SpeechChunk] = {}  # chunks with a window in hand
        mels: dict[int, torch.Tensor] = {}  # mel spectrograms of the chunks being decoded, with 30 s of padding
        last_speech: dict[int, float] = {}  # per chunk, end of its last word (whisper's last_speech_timestamp)
        # a chunk shorter than one mel frame (10 ms) has nothing to decode
        source = enumerate(chunk for chunk in chunks if chunk.audio.size >= HOP_LENGTH)
        pending: deque[_Window] = deque()
        with torch.inference_mode():
            while True:
                while len(pending) < batch_size and (taken := next(source, None)) is not None:
                    index, chunk = taken
                    live[index] = chunk
                    pending.append(_Window(index, 0, chunk.language or self.config.language))
                if not pending:
                    break
                batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
                follow_ups = self._decode_windows(live, batch, mels, last_speech, words)
                pending.extendleft(reversed(follow_ups))  # a started chunk finishes before new chunks start
                for index in {w.chunk for w in batch} - {w.chunk for w in follow_ups}:
                    del mels[index], live[index]  # the chunk is done (a chunk has one window in line at most)
                    last_speech.pop(index, None)
        return {key: tuple(sorted(found, key=lambda w: (w.start, w.end))) for key, found in words.items() if found}

    def _decode_windows(
        self,
        chunks: dict[int, SpeechChunk],
        batch: list[_Window],
        mels: dict[int, torch.Tensor],
        last_speech: dict[int, float],
        words: dict[str, list[Word]],
    ) -> list[_Window]:
        """Decode a batch of windows (with fallback, one decode call per language and temperature), time their words
        (one alignment call for the batch), add the words to ``words`` and return the windows that come next."""
        for window in batch:
            if window.chunk not in mels:
                audio = torch.from_numpy(np.asarray(chunks[window.chunk].audio, dtype=np.float32))
                mels[window.chunk] = log_mel_spectrogram(
                    audio, self.engine.n_mels, padding=N_SAMPLES, device=self.engine.device
                )
        content = [mels[w.chunk].shape[-1] - N_FRAMES for w in batch]  # frames of the chunk, padding off
        sizes = [min(N_FRAMES, frames - w.seek) for w, frames in zip(batch, content, strict=True)]
        windows = [
            pad_or_trim(mels[w.chunk][:, w.seek : w.seek + n], N_FRAMES) for w, n in zip(batch, sizes, strict=True)
        ]
        prepared = self.engine.prepare(torch.stack(windows))
        results = self._decode_with_fallback([chunks[w.chunk] for w in batch], batch, prepared)
        parsed: list[_Parsed | None] = []
        requests: list[WordRequest] = []
        thresholds = (self.config.no_speech_threshold, self.config.logprob_threshold)
        for row, (window, size, result) in enumerate(zip(batch, sizes, results, strict=True)):
            if is_no_speech(result.no_speech_prob, result.avg_logprob, *thresholds):
                parsed.append(None)
                continue
            segments, next_seek, closed = _segments(
                list(result.tokens), self.engine.tokenizer(result.language), window.seek, size
            )
            # whisper clears a segment whose start and end are equal; after the word timings (which rewrite them from
            # the words) that would also drop a lone short word the alignment gave no duration ("Help.", "19.": 4 of
            # 12 one-word utterances packed among others, tiny.en). Judged here on the timestamps whisper decoded,
            # which is what the rule is for.
            instantaneous = tuple(segment["start"] == segment["end"] for segment in segments)
            parsed.append(_Parsed(segments, next_seek, closed, instantaneous))
            requests.append(WordRequest(row, segments, result.language, size, last_speech.get(window.chunk, 0.0)))
        self.engine.add_word_timestamps(prepared, requests)
        follow_ups = []
        for window, frames, size, result, found in zip(batch, content, sizes, results, parsed, strict=True):
            chunk = chunks[window.chunk]
            window_words, follow_up = self._window_words(chunk, window, frames, size, result, found, last_speech)
            words.setdefault(chunk.key, []).extend(window_words)
            if follow_up is not None:
                follow_ups.append(follow_up)
        return follow_ups

    def _decode_with_fallback(
        self, chunks: list[SpeechChunk], windows: list[_Window], prepared: object
    ) -> list[DecodingResult]:
        """whisper.transcribe's ``decode_with_fallback`` over a batch: every window at the first temperature, then
        the windows that failed (:func:`needs_fallback`), together, at each next temperature until none fails; a
        window's last decoding is kept. One decode call per language and temperature."""
        thresholds = (
            self.config.compression_ratio_threshold,
            self.config.logprob_threshold,
            self.config.no_speech_threshold,
        )
        results: dict[int, DecodingResult] = {}
        failed = list(range(len(windows)))
        for step, temperature in enumerate(self.temperatures):
            # first the windows' own language (None: whisper detects it per window), then the one whisper chose
            languages = [windows[i].language if step == 0 else results[i].language for i in failed]
            for language in dict.fromkeys(languages):
                rows = [i for i, other in zip(failed, languages, strict=True) if other == language]
                seeds = [_window_seed(chunks[i], windows[i], temperature) for i in rows] if temperature > 0 else None
                results.update(zip(rows, self.engine.decode(prepared, rows, language, temperature, seeds), strict=True))
            self.decoded[temperature] += len(failed)
            failed = [i for i in failed if needs_fallback(results[i], *thresholds)]
            if not failed:
                break
        return [results[i] for i in range(len(windows))]

    def _window_words(
        self,
        chunk: SpeechChunk,
        window: _Window,
        content_frames: int,
        segment_size: int,
        result: DecodingResult,
        parsed: _Parsed | None,
        last_speech: dict[int, float],
    ) -> tuple[list[Word], _Window | None]:
        """Words of one decoded window (recording times), and the chunk's next window if whisper did not cover it.
        ``parsed``: None when the window is silence."""
        next_seek = window.seek + segment_size
        words: list[Word] = []
        if parsed is not None:
            segments, next_seek, single_timestamp_ending, instantaneous = parsed
            ends = [item["end"] for segment in segments for item in segment.get("words", [])]
            time_offset = window.seek * HOP_LENGTH / SAMPLE_RATE
            window_end = min(next_seek * HOP_LENGTH / SAMPLE_RATE, chunk.audio.size / SAMPLE_RATE)
            if not single_timestamp_ending and ends and ends[-1] > time_offset:
                next_seek = round(ends[-1] * FRAMES_PER_SECOND)  # as whisper: go on from the last word's end
                window_end = ends[-1]  # what follows is decoded next anyway
            if ends:
                last_speech[window.chunk] = ends[-1]
            kept = [
                (item, text)
                for segment, empty in zip(segments, instantaneous, strict=True)
                if not empty and segment["text"].strip()
                for item in segment.get("words", [])
                if (text := str(item["word"]).strip())
            ]
            skipped = first_skipped_speech(
                chunk, [item for item, _ in kept], time_offset, window_end, self.config.resume_after_s
            )
            if skipped is not None:  # decode again from the word before speech whisper passed over
                kept = kept[: skipped + 1]
                last_speech[window.chunk] = float(kept[-1][0]["end"])
                next_seek = round(last_speech[window.chunk] * FRAMES_PER_SECOND)
            words = [self._chunk_word(chunk, item, text) for item, text in kept]
        if next_seek <= window.seek:  # no progress (a degenerate timestamp): move on rather than loop
            next_seek = window.seek + segment_size
        if next_seek >= content_frames:
            return words, None
        return words, _Window(window.chunk, next_seek, result.language)

    @staticmethod
    def _chunk_word(chunk: SpeechChunk, item: dict, text: str) -> Word:
        """A whisper word dict (seconds from the chunk's start) as a Word in recording time, inside the chunk."""
        start, end = chunk.to_recording_time(float(item["start"]), float(item["end"]))
        return Word(start=start, end=end, text=text, probability=float(item["probability"]))
