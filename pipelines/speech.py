"""The speech stage: recordings in, one :class:`~bwc.records.SpeechResult` (or the error) out per recording.

For a batch of recordings (``run.recordings_per_speech_call``, one actor call):

1. **scan**: ffmpeg decodes each recording once, block by block (``vad.block_s``), into a scratch file on local
   disk; each block goes through the VAD (silero-vad or a segmentation model, ``vad.engine``) and the level meter
   on the way (noise floor), so memory holds one block whatever the recording's length;
2. **pack**: the VAD regions (merged across short pauses, at most 30 s each) are packed into whisper windows of at
   most 30 s, ``vad.pack_gap_s`` of silence between regions: the non-speech a body camera mostly records costs
   nothing, and a window is full of speech;
3. **transcribe**: the windows of every recording in the batch go through whisper together, ``whisper.batch_size``
   windows per call (:meth:`~models.asr.WhisperTranscriber.transcribe_chunks`, on CTranslate2 or openai-whisper:
   the stage does not know which), read lazily from the scratch files; words are mapped back to recording time;
4. **diarize**: pyannote on each recording's speech regions only, in segments of at most
   ``diarization.max_segment_s`` with speakers linked across segments (:meth:`~models.diarization.PyannoteDiarizer.
   diarize_regions`);
5. **assemble**: every word assigned to a speaker, utterances, and each utterance's acoustics (level, distance
   cues, pitch) read from the scratch file, so that no later stage decodes the audio again.

The models are loaded once, when the stage is built; a Ray actor builds one and reuses it for every batch. Seconds
inside model forward passes are counted (:class:`~models.forward_clock.ForwardClock`) and reported per recording.

Example
-------
>>> stage = SpeechStage.from_config(load_config(Path("/opt/bwc-models")))   # doctest: +SKIP
>>> result = stage(recording)                                             # doctest: +SKIP
>>> outcomes = stage.process_batch([recording, another])                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from bwc.acoustics import FLOOR_PERCENTILE, SILENCE_DB, frame_levels_db, measure_span
from bwc.audio import SAMPLE_RATE, decode_to_scratch, sweep_stale_scratch
from bwc.config import BwcConfig
from bwc.records import Diarization, Recording, RecordingError, SpeechRegion, SpeechResult, StageTimings, Word
from bwc.transcript import assign_speakers, build_utterances
from models.asr import SpeechChunk, WhisperTranscriber
from models.diarization import PyannoteDiarizer
from models.forward_clock import ForwardClock
from models.locate import ResolvedModels
from models.vad import VoiceActivityDetector, load_vad, merge_regions, pack_regions

LOG = logging.getLogger(__name__)
WINDOW_S = 30.0  # whisper's window: packed speech per chunk
LEVEL_SPAN_S = 60.0  # level meter span: bounds the frames it holds at once
TRUNCATED_MIN_S = 2.0  # audio this much shorter than its container says (and ...
TRUNCATED_SHARE = 0.05  # ... this share of it) is a truncated file, not encoder padding
DIGITAL_SILENCE = 1e-5  # a block whose peak is under this (-100 dBFS) is digital silence: no VAD needed
OVERRUN_SHARE = 0.02  # decoding stops once audio runs this much past run.max_duration_s (a lying container)


class ProcessingTimeExceeded(RecordingError):
    """A recording took longer than ``run.max_processing_s``; the others in its batch go on."""


class TruncatedAudio(RecordingError):
    """A recording's audio stops well before its container says it should: the file is incomplete."""


@dataclass
class Deadline:
    """A recording's processing-time budget, checked between steps (a block, a window, a diarization read).

    >>> Deadline(None).check("decoding")  # no limit configured: never raises
    """

    limit_s: float | None  # run.max_processing_s
    started: float = field(default_factory=time.monotonic)  # when the recording's decoding began

    def check(self, doing: str) -> None:
        if self.limit_s is not None and time.monotonic() - self.started > self.limit_s:
            raise ProcessingTimeExceeded(
                f"stopped while {doing}: processing took longer than the configured maximum of {self.limit_s:g} s "
                "(run.max_processing_s)"
            )


class AudioSource(Protocol):
    """Where a stage reads a recording's 16 kHz mono samples from, span by span."""

    duration_s: float

    def read(self, start_s: float, end_s: float) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class InMemoryAudio:
    """Samples already decoded (benchmarks, tests): the same reads as a scratch file."""

    samples: np.ndarray  # 16 kHz mono float32

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def read(self, start_s: float, end_s: float) -> np.ndarray:
        first = min(max(0, round(start_s * SAMPLE_RATE)), len(self.samples))
        return self.samples[first : min(max(first, round(end_s * SAMPLE_RATE)), len(self.samples))]

    def close(self) -> None:
        """Nothing to release: the caller owns the samples."""


_Feed = Callable[[Callable[[np.ndarray, float], None]], "AudioSource | None"]  # hands blocks to a scanner


class _Deferred(Future):  # type: ignore[type-arg]
    """A future run in the thread that first asks for its result (scanning on CPU: everything in one thread)."""

    def __init__(self, call: Callable[[], _Scanned]) -> None:
        super().__init__()
        self._call: Callable[[], _Scanned] | None = call

    def _run_once(self) -> None:
        if self._call is None:
            return
        call, self._call = self._call, None
        try:
            self.set_result(call())
        except BaseException as error:  # as a thread pool does: the error is the future's, raised on result()
            self.set_exception(error)

    def result(self, timeout: float | None = None) -> _Scanned:
        self._run_once()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._run_once()
        return super().exception(timeout)


@dataclass
class _Scanned:
    """A recording after decoding and VAD, waiting for whisper and pyannote."""

    recording: Recording
    audio: AudioSource
    regions: tuple[SpeechRegion, ...]  # the VAD's speech regions
    windows: tuple[tuple[SpeechRegion, ...], ...]  # merged regions packed into whisper windows
    floor_db: float  # noise floor
    timings: StageTimings
    deadline: Deadline  # the recording's processing-time budget
    language: str = ""
    words: tuple[Word, ...] = field(default=())


class SpeechStage:
    """VAD, whisper and pyannote loaded once; call it with a recording, or a batch of them.

    Parameters
    ----------
    config
        Effective configuration.
    models
        Resolved weights.
    device
        "cpu" or "cuda".
    """

    def __init__(self, config: BwcConfig, models: ResolvedModels, device: str = "cpu") -> None:
        self.config = config
        stale = sweep_stale_scratch(config.run.scratch_dir)  # left by workers killed mid-recording
        if stale:
            LOG.warning(
                "removed %d scratch files left by processes that no longer run (%s)", len(stale), stale[0].parent
            )
        # Scanning (decode + VAD) runs ahead in a thread only on a GPU, where it overlaps the GPU's work. On CPU the
        # two compete for the same cores, and torch running in two threads makes two OpenMP teams: libgomp, counting
        # more threads than CPUs, then stops spin-waiting in every team (measured on 2 cores: the segmentation VAD
        # 1.1 s in the main thread, 1.8 s in a second one, and pyannote after it 1.7x slower while that thread lived).
        self.scan_ahead = device.startswith("cuda")
        self.clock = ForwardClock(synchronize=device.startswith("cuda"))
        self.vad = load_vad(config.vad, models.vad_model, device)
        self.asr = WhisperTranscriber(config.whisper, models.whisper_checkpoint, device=device, clock=self.clock)
        self.diarizer = PyannoteDiarizer(config.diarization, models.pyannote_pipeline, device=device, clock=self.clock)

    @classmethod
    def from_config(cls, config: BwcConfig, device: str | None = None) -> SpeechStage:
        if device is None:
            device = "cuda" if config.run.device != "cpu" and torch.cuda.is_available() else "cpu"
        return cls(config, ResolvedModels.resolve(config), device=device)

    @property
    def model_versions(self) -> dict[str, str]:
        return {"vad": self.vad.version, "asr": self.asr.version, "diarization": self.diarizer.version}

    def __call__(self, recording: Recording) -> SpeechResult:
        outcome = self.process_batch([recording])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def process(self, recording: Recording, audio: np.ndarray) -> SpeechResult:
        """The stage on audio already decoded to 16 kHz mono float32."""
        outcome = self.process_arrays([(recording, audio)])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def process_arrays(self, batch: Sequence[tuple[Recording, np.ndarray]]) -> list[SpeechResult | Exception]:
        """:meth:`process_batch` on audio already decoded to 16 kHz mono float32."""
        items = []
        for recording, audio in batch:
            source = InMemoryAudio(np.asarray(audio, dtype=np.float32))
            items.append((recording, source, partial(_feed_blocks, source, self.config)))
        return self._run(items)

    def process_batch(self, recordings: Sequence[Recording]) -> list[SpeechResult | Exception]:
        """Each recording's result, or the exception that stopped it (the others go on), in input order.

        On a GPU, decoding and VAD run in a background thread, recording after recording, while whisper works on the
        windows of the recordings already scanned: the GPU waits for the CPU only on the first one. On CPU, each
        recording is scanned when whisper first needs its windows, in the calling thread.
        """
        return self._run([(recording, None, self._decoder(recording)) for recording in recordings])

    def _run(self, items: Sequence[tuple[Recording, AudioSource | None, _Feed]]) -> list[SpeechResult | Exception]:
        scanning = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bwc-scan") if self.scan_ahead else None
        scans: list[Future[_Scanned]] = [
            scanning.submit(self._scan, *item) if scanning else _Deferred(partial(self._scan, *item)) for item in items
        ]
        try:
            outcomes: dict[int, SpeechResult | Exception] = dict(self._transcribe(list(enumerate(scans))))
            if scanning:
                # The scanning thread ends before pyannote runs: while it lives, so does its OpenMP team (below).
                scanning.shutdown(wait=True)
            return self._diarize_all(scans, outcomes)
        finally:
            if scanning:
                scanning.shutdown(wait=True)
            for scan in scans:
                if scan.done() and scan.exception() is None:
                    scan.result().audio.close()

    # -- steps -------------------------------------------------------------------------------------------------

    def _decoder(self, recording: Recording) -> Callable[[Callable[[np.ndarray, float], None]], AudioSource]:
        """Decodes ``recording`` once into a scratch file, handing each block to the scanner as it arrives; a file
        whose audio stops well short of its container's duration is refused as truncated."""
        run, vad = self.config.run, self.config.vad
        max_s = run.max_duration_s * (1 + OVERRUN_SHARE) if run.max_duration_s else None

        def decode(add: Callable[[np.ndarray, float], None]) -> AudioSource:
            if not Path(recording.path).exists():
                raise RecordingError(f"the original disappeared after ingest (deleted or moved): {recording.path}")
            audio = decode_to_scratch(recording.path, run.scratch_dir, vad.block_s, on_block=add, max_s=max_s)
            expected = recording.audio.duration_s
            if expected - audio.duration_s > max(TRUNCATED_MIN_S, TRUNCATED_SHARE * expected):
                audio.close()
                raise TruncatedAudio(
                    f"truncated or damaged: its container says {expected:.1f} s, but the audio stops at "
                    f"{audio.duration_s:.1f} s (an incomplete copy? export it again)"
                )
            return audio

        return decode

    def _scan(
        self,
        recording: Recording,
        source: AudioSource | None,
        feed: _Feed,
    ) -> _Scanned:
        """VAD and level meter over the blocks ``feed`` hands over; the merged regions packed into windows."""
        deadline = Deadline(self.config.run.max_processing_s)
        scanner = _BlockScanner(self.vad, deadline)
        clock = time.perf_counter()
        audio = feed(scanner.add) or source
        assert audio is not None
        total_s = time.perf_counter() - clock
        vad = self.config.vad
        merged = merge_regions(scanner.regions(), vad.merge_gap_s, vad.max_region_s)
        return _Scanned(
            recording=recording,
            audio=audio,
            regions=scanner.regions(),
            windows=pack_regions(merged, WINDOW_S, vad.pack_gap_s),
            floor_db=scanner.floor_db(),
            deadline=deadline,
            timings=StageTimings(decode_s=total_s - scanner.vad_s, vad_s=scanner.vad_s, forward_s=scanner.forward_s),
        )

    def _diarize_all(
        self, scans: Sequence[Future[_Scanned]], outcomes: dict[int, SpeechResult | Exception]
    ) -> list[SpeechResult | Exception]:
        """pyannote and assembly per recording, after whisper ran across the batch (``outcomes``: the recordings
        that failed already); errors stay with their recording."""
        for index, scan in enumerate(scans):
            if index not in outcomes:
                try:
                    outcomes[index] = self._diarize_and_assemble(scan.result())
                except Exception as error:
                    outcomes[index] = error
        return [outcomes[index] for index in range(len(scans))]

    def _transcribe(self, scans: list[tuple[int, Future[_Scanned]]]) -> dict[int, Exception]:
        """Whisper over every recording's packed windows at once; on a failure, each recording alone, so that one
        bad recording does not take the batch with it. Returns the recordings that failed (scan errors included)."""
        try:
            return self._transcribe_together(scans)
        except Exception:
            if len(scans) == 1:
                raise
        failed: dict[int, Exception] = {}
        for index, scan in scans:
            try:
                failed |= self._transcribe_together([(index, scan)])
            except Exception as error:
                failed[index] = error
        return failed

    def _transcribe_together(self, scans: list[tuple[int, Future[_Scanned]]]) -> dict[int, Exception]:
        clock, forward = time.perf_counter(), self.clock.seconds
        scanned: dict[int, _Scanned] = {}
        failed: dict[int, Exception] = {}
        waited = 0.0  # for the scanning thread: not whisper's time

        def chunks() -> Iterator[SpeechChunk]:
            nonlocal waited
            for index, scan in scans:
                started = time.perf_counter()
                try:
                    item = scan.result()
                except Exception as error:
                    failed[index] = error
                    continue
                finally:
                    waited += time.perf_counter() - started
                scanned[index] = item
                try:
                    item.language = self.config.whisper.language or self._detect_language(item)
                    yield from self._chunks(str(index), item)
                except ProcessingTimeExceeded as error:  # the batch goes on without it
                    failed[index] = error

        found = self.asr.transcribe_chunks(chunks(), self.config.whisper.batch_size)
        asr_s, forward_s = time.perf_counter() - clock - waited, self.clock.seconds - forward
        windows = sum(len(item.windows) for item in scanned.values()) or 1
        for index, item in scanned.items():
            share = len(item.windows) / windows  # batched time is shared out by windows
            item.words = found.get(str(index), ())
            item.timings = replace(
                item.timings,
                asr_s=asr_s * share,
                forward_s=item.timings.forward_s + forward_s * share,
            )
        return failed

    def _chunks(self, key: str, item: _Scanned) -> Iterator[SpeechChunk]:
        """A recording's windows as whisper chunks, read from its audio only when whisper gets to them."""
        gap = np.zeros(round(self.config.vad.pack_gap_s * SAMPLE_RATE), dtype=np.float32)
        region_starts = [found.start for found in item.regions]
        for window in item.windows:
            item.deadline.check("transcribing")
            parts, pieces, speech, offset = [], [], [], 0.0
            for region in window:
                samples = item.audio.read(region.start, region.end)
                if parts:
                    parts.append(gap)
                    offset += len(gap) / SAMPLE_RATE
                parts.append(samples)
                pieces.append((offset, region.start, region.end))
                # the VAD's own regions inside the merged one: whisper is asked again about speech it passed over
                first = max(0, bisect_right(region_starts, region.start) - 1)  # regions are sorted, apart
                speech += [
                    (offset + max(found.start, region.start) - region.start,
                     offset + min(found.end, region.end) - region.start)
                    for found in item.regions[first:bisect_left(region_starts, region.end)]
                    if found.end > region.start
                ]  # fmt: skip
                offset += len(samples) / SAMPLE_RATE
            yield SpeechChunk(
                key=key,
                start=window[0].start,
                end=window[-1].end,
                audio=np.concatenate(parts),
                pieces=tuple(pieces) if len(pieces) > 1 else (),
                speech=tuple(speech),
                language=item.language,
            )

    def _detect_language(self, item: _Scanned) -> str:
        """No language configured: whisper detects it once per recording, on its first window of speech."""
        if not item.windows:
            return ""
        first = next(self._chunks("", replace(item, windows=item.windows[:1])))
        return self.asr.detect_language(first.audio)

    def _diarize_and_assemble(self, item: _Scanned) -> SpeechResult:
        clock, forward = time.perf_counter(), self.clock.seconds

        def read(start_s: float, end_s: float) -> np.ndarray:
            item.deadline.check("diarizing")
            return item.audio.read(start_s, end_s)

        # Only speech is diarized: pyannote on silence or road noise is wasted work.
        if item.regions:
            diarization = self.diarizer.diarize_regions(read, item.regions, self.config.vad.pack_gap_s)
        else:
            diarization = Diarization(turns=(), exclusive_turns=())
        diarization_s, forward_s = time.perf_counter() - clock, self.clock.seconds - forward
        item.deadline.check("assembling utterances")
        clock = time.perf_counter()
        attributed = assign_speakers(item.words, diarization.exclusive_turns)
        utterances = build_utterances(item.recording.recording_id, attributed, self.config.assembly.max_pause_s)
        acoustics = tuple(
            measure_span(item.audio.read(u.start, u.end), 0.0, u.end - u.start, item.floor_db) for u in utterances
        )
        return SpeechResult(
            recording=item.recording,
            speech_regions=item.regions,
            diarization=diarization,
            words=attributed,
            utterances=utterances,
            language=item.language,
            acoustics=acoustics,
            timings=replace(
                item.timings,
                diarization_s=diarization_s,
                assembly_s=time.perf_counter() - clock,
                forward_s=item.timings.forward_s + forward_s,
            ),
        )


class _BlockScanner:
    """What the stage learns from each decoded block as it passes: speech regions and frame levels."""

    def __init__(self, vad: VoiceActivityDetector, deadline: Deadline) -> None:
        self.vad = vad
        self.deadline = deadline
        self.clock = ForwardClock()  # its own: scanning may run in a thread beside whisper (on a GPU)
        self.vad_s = 0.0
        self.forward_s = 0.0
        self._regions: list[SpeechRegion] = []
        self._levels: list[np.ndarray] = []  # 10 ms frame levels, float32: 1.4 MB per hour

    def add(self, block: np.ndarray, start_s: float) -> None:
        self.deadline.check("decoding and detecting speech")
        clock, forward = time.perf_counter(), self.clock.seconds
        if float(np.max(np.abs(block), initial=0.0)) < DIGITAL_SILENCE:
            regions: tuple[SpeechRegion, ...] = ()  # a muted camera: silero would take 40 s an hour to find nothing
        else:
            with self.clock.timing():  # either VAD is a model run window by window: all of it is the model
                regions = self.vad.detect(block, start_s)
        self.vad_s += time.perf_counter() - clock
        self.forward_s += self.clock.seconds - forward
        if self._regions and regions and regions[0].start <= self._regions[-1].end + 1e-3:
            # speech running across a block boundary: one region, unless that would make it too long for whisper
            joined = SpeechRegion(self._regions[-1].start, regions[0].end)
            if joined.end - joined.start <= self.vad.config.max_region_s:
                self._regions[-1], regions = joined, regions[1:]
        self._regions.extend(regions)
        # a minute at a time: frame_levels_db materialises every frame (400 samples each, float64), 30x the block
        step = round(LEVEL_SPAN_S * SAMPLE_RATE)
        for first in range(0, len(block), step):
            self._levels.append(frame_levels_db(block[first : first + step]).astype(np.float32))

    def regions(self) -> tuple[SpeechRegion, ...]:
        return tuple(self._regions)

    def floor_db(self) -> float:
        """The recording's noise floor: a low percentile of all its frame levels."""
        if not self._levels:
            return SILENCE_DB
        return float(np.percentile(np.concatenate(self._levels), FLOOR_PERCENTILE))


def _feed_blocks(source: InMemoryAudio, config: BwcConfig, add: Callable[[np.ndarray, float], None]) -> None:
    """Hand decoded samples to the scanner in the blocks a scratch decode would (same regions either way)."""
    block = max(1, round(config.vad.block_s * SAMPLE_RATE))
    for first in range(0, len(source.samples), block):
        add(source.samples[first : first + block], first / SAMPLE_RATE)
