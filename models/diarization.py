"""Speaker diarization with a pyannote.audio pipeline loaded from a local directory.

The pipeline is data: a directory with ``config.yaml`` (pyannote's own format) naming its segmentation model,
embedding model and PLDA, as pyannote's hub repositories are laid out. The waveform is handed to pyannote in memory.

Example
-------
>>> pipeline_dir = Path("/models/pyannote/speaker-diarization-community-1")
>>> diarizer = PyannoteDiarizer(DiarizationConfig(), pipeline_dir)  # doctest: +SKIP
>>> diarization = diarizer.diarize(audio)                                                            # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bwc.audio import SAMPLE_RATE
from bwc.config import DiarizationConfig
from bwc.records import Diarization, SpeakerTurn
from models.locate import pyannote_version

# Before pyannote is imported: no telemetry, and no hub look-ups at run time.
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MIN_DIARIZATION_SAMPLES = SAMPLE_RATE // 2  # pyannote's models need at least this much audio


class PyannoteDiarizer:
    """A pyannote speaker-diarization pipeline loaded once, applied to many recordings.

    Parameters
    ----------
    config
        Speaker-count hints and batch sizes.
    pipeline_dir
        Local pipeline directory (resolved by :func:`models.locate.resolve_pyannote`).
    device
        "cpu" or "cuda".
    """

    def __init__(self, config: DiarizationConfig, pipeline_dir: Path, device: str = "cpu") -> None:
        import torch
        from pyannote.audio import Pipeline

        self.config = config
        self.pipeline = Pipeline.from_pretrained(str(pipeline_dir))
        if self.pipeline is None:
            raise RuntimeError(f"pyannote could not load the pipeline in {pipeline_dir}")
        if config.segmentation_batch_size:
            self.pipeline.segmentation_batch_size = config.segmentation_batch_size
        if config.embedding_batch_size:
            self.pipeline.embedding_batch_size = config.embedding_batch_size
        self.pipeline.to(torch.device(device))
        self.version = pyannote_version(pipeline_dir)

    def diarize(self, audio: np.ndarray) -> Diarization:
        """Speaker turns of 16 kHz mono ``audio``."""
        if audio.size < MIN_DIARIZATION_SAMPLES:
            return Diarization(turns=(), exclusive_turns=())
        import torch

        hints = {
            key: value
            for key, value in (
                ("num_speakers", self.config.num_speakers),
                ("min_speakers", self.config.min_speakers),
                ("max_speakers", self.config.max_speakers),
            )
            if value is not None
        }
        waveform = torch.from_numpy(audio).unsqueeze(0)
        with torch.inference_mode():
            output = self.pipeline({"waveform": waveform, "sample_rate": SAMPLE_RATE}, **hints)
        # pyannote 4 returns DiarizeOutput; legacy pipelines return a bare Annotation.
        full = getattr(output, "speaker_diarization", output)
        exclusive = getattr(output, "exclusive_speaker_diarization", full)
        return Diarization(turns=_turns(full), exclusive_turns=_turns(exclusive))


def _turns(annotation) -> tuple[SpeakerTurn, ...]:  # type: ignore[no-untyped-def]
    return tuple(
        SpeakerTurn(start=float(segment.start), end=float(segment.end), speaker=str(label))
        for segment, _, label in annotation.itertracks(yield_label=True)
    )
