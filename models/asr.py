"""Transcription with openai-whisper, restricted to the speech regions the VAD found.

Whisper's own ``transcribe`` is run with ``clip_timestamps`` set to the merged VAD regions: it decodes only there,
keeps absolute timestamps, and produces word timestamps with its cross-attention alignment. Nothing of whisper is
re-implemented here.

Example
-------
>>> asr = WhisperTranscriber(WhisperConfig(model="small"), checkpoint=Path("small.pt"))   # doctest: +SKIP
>>> words, language = asr.transcribe(audio, regions)                                     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import whisper

from bwc.config import WhisperConfig
from bwc.records import SpeechRegion, Word
from models.locate import whisper_version


class WhisperTranscriber:
    """A whisper model loaded once, transcribing many recordings.

    Parameters
    ----------
    config
        Decoding settings.
    checkpoint
        Path of the whisper checkpoint (resolved by :func:`models.locate.resolve_whisper`).
    device
        "cpu" or "cuda".
    """

    def __init__(self, config: WhisperConfig, checkpoint: Path, device: str = "cpu") -> None:
        self.config = config
        self.checkpoint = checkpoint
        self.device = device
        self.model = whisper.load_model(str(checkpoint), device=device)
        self.version = whisper_version(checkpoint)

    def transcribe(self, audio: np.ndarray, regions: tuple[SpeechRegion, ...]) -> tuple[tuple[Word, ...], str]:
        """Words (with timestamps and probabilities) spoken inside ``regions``, and the language used."""
        if not regions or audio.size == 0:
            return (), self.config.language or ""
        clips: list[float] = []
        for region in regions:
            clips += [round(region.start, 3), round(region.end, 3)]
        options: dict[str, object] = {"language": self.config.language, "fp16": self._fp16}
        if self.config.beam_size:
            options["beam_size"] = self.config.beam_size
        if self.config.sample_len:
            options["sample_len"] = self.config.sample_len
        with torch.inference_mode():
            result = whisper.transcribe(
                self.model,
                audio,
                temperature=self.config.temperature,
                word_timestamps=True,
                condition_on_previous_text=self.config.condition_on_previous_text,
                clip_timestamps=clips,
                verbose=None,
                **options,
            )
        words = []
        for segment in result["segments"]:
            for item in segment.get("words", []):
                text = str(item["word"]).strip()
                if not text:
                    continue
                start, end = float(item["start"]), float(item["end"])
                words.append(Word(start=start, end=max(end, start), text=text, probability=float(item["probability"])))
        return tuple(words), str(result.get("language") or self.config.language or "")

    @property
    def _fp16(self) -> bool:
        return self.config.fp16 and self.device.startswith("cuda")
