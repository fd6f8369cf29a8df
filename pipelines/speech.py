"""The speech stage: one :class:`~bwc.records.Recording` in, one :class:`~bwc.records.SpeechResult` out.

decode (ffmpeg, 16 kHz mono) → VAD (silero) → transcription (whisper on the VAD chunks, ``whisper.batch_size`` chunks
per encoder/decoder call, word timestamps) →
diarization (pyannote) → every word assigned to a speaker → utterances → each utterance's acoustics (level, distance
cues, pitch: what attribution and prosody need, so that no later stage decodes the audio again).

The models are loaded once, when the stage is built; a Ray actor builds one and reuses it for every recording.

Example
-------
>>> stage = SpeechStage.from_config(load_config(Path("/opt/bwc-models")))   # doctest: +SKIP
>>> result = stage(recording)                                             # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from bwc.acoustics import measure_span, noise_floor_db
from bwc.audio import SAMPLE_RATE, read_pcm
from bwc.config import BwcConfig
from bwc.records import Diarization, Recording, SpeechRegion, SpeechResult, StageTimings, Word
from bwc.transcript import assign_speakers, build_utterances
from models.asr import SpeechChunk, WhisperTranscriber
from models.diarization import PyannoteDiarizer
from models.locate import ResolvedModels
from models.vad import SileroVad, merge_regions


class SpeechStage:
    """VAD, whisper and pyannote loaded once; call it with a recording.

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
        self.vad = SileroVad(config.vad)
        self.asr = WhisperTranscriber(config.whisper, models.whisper_checkpoint, device=device)
        self.diarizer = PyannoteDiarizer(config.diarization, models.pyannote_pipeline, device=device)

    @classmethod
    def from_config(cls, config: BwcConfig, device: str | None = None) -> SpeechStage:
        if device is None:
            device = "cuda" if config.run.device != "cpu" and torch.cuda.is_available() else "cpu"
        return cls(config, ResolvedModels.resolve(config), device=device)

    @property
    def model_versions(self) -> dict[str, str]:
        return {"vad": self.vad.version, "asr": self.asr.version, "diarization": self.diarizer.version}

    def __call__(self, recording: Recording) -> SpeechResult:
        clock = time.perf_counter()
        audio = read_pcm(recording.path)
        decode_s, _ = _lap(clock)
        result = self.process(recording, audio)
        return replace(result, timings=replace(result.timings, decode_s=decode_s))

    def process(self, recording: Recording, audio: np.ndarray) -> SpeechResult:
        """The stage on audio already decoded to 16 kHz mono float32 (``__call__`` decodes, then calls this)."""
        clock = time.perf_counter()
        regions = self.vad.detect(audio)
        vad_s, clock = _lap(clock)

        chunks = merge_regions(regions, self.config.vad.merge_gap_s, self.config.vad.max_region_s)
        words, language = self._transcribe(recording, audio, chunks)
        asr_s, clock = _lap(clock)

        # No voice activity: nothing to attribute, and pyannote on silence or road noise is wasted work.
        diarization = self.diarizer.diarize(audio) if regions else Diarization(turns=(), exclusive_turns=())
        diarization_s, clock = _lap(clock)

        attributed = assign_speakers(words, diarization.exclusive_turns)
        utterances = build_utterances(recording.recording_id, attributed, self.config.assembly.max_pause_s)
        floor_db = noise_floor_db(audio)
        acoustics = tuple(measure_span(audio, u.start, u.end, floor_db) for u in utterances)
        assembly_s, _ = _lap(clock)

        return SpeechResult(
            recording=recording,
            speech_regions=regions,
            diarization=diarization,
            words=attributed,
            utterances=utterances,
            language=language,
            acoustics=acoustics,
            timings=StageTimings(
                vad_s=vad_s,
                asr_s=asr_s,
                diarization_s=diarization_s,
                assembly_s=assembly_s,
            ),
        )

    def _transcribe(
        self, recording: Recording, audio: np.ndarray, chunks: tuple[SpeechRegion, ...]
    ) -> tuple[tuple[Word, ...], str]:
        """Whisper on the recording's VAD chunks, ``whisper.batch_size`` of them per encoder/decoder call.

        With no language configured, whisper.transcribe's own pass detects it once for the recording (the batched
        path would detect it per chunk and could mix languages within one recording).
        """
        language = self.config.whisper.language
        if language is None:
            return self.asr.transcribe(audio, chunks)
        pieces = [
            SpeechChunk(
                key=recording.recording_id,
                start=chunk.start,
                end=chunk.end,
                audio=audio[round(chunk.start * SAMPLE_RATE) : round(chunk.end * SAMPLE_RATE)],
            )
            for chunk in chunks
        ]
        words = self.asr.transcribe_chunks(pieces, self.config.whisper.batch_size)
        return words.get(recording.recording_id, ()), language


def _lap(start: float) -> tuple[float, float]:
    now = time.perf_counter()
    return now - start, now
