"""Tiny random-weight checkpoints so the whole pipeline runs offline, through the same loading code as real ones.

Written in the libraries' own formats:

- whisper: ``{"dims": ..., "model_state_dict": ...}`` as ``whisper.load_model(path)`` reads it. The vocabulary size
  and mel bins are the real ones (51865, 80) so whisper's tokenizer and front end work unchanged.
- pyannote: a pipeline directory laid out like pyannote's hub repositories: ``config.yaml``, ``segmentation/`` and
  ``embedding/`` checkpoints (``pytorch_model.bin`` with pyannote's checkpoint metadata) and ``plda/``
  (``xvec_transform.npz``, ``plda.npz``). The directory name avoids "wespeaker", which pyannote routes to its
  ONNX loader.

Random weights transcribe nothing meaningful and never emit end-of-text, so the models config written beside them
caps tokens per window (``sample_len``), fixes the language and uses temperature 0. Left as drawn, a random decoder
sits near ties between text, timestamp and special tokens and often writes empty segments (two timestamps in a
row); the tiny whisper therefore zeroes the special-token embeddings and scales up the text-token ones, so that it
always writes text (noise words) after whisper's forced first timestamp. Tests then always have words to follow.

Example
-------
>>> make_tiny_models(Path("/tmp/bwc-tiny"))       # doctest: +SKIP
PosixPath('/tmp/bwc-tiny/models.yaml')
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import yaml

from bwc.config import MODELS_CONFIG_NAME

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

WHISPER_FILE = "whisper/tiny-random.pt"
PYANNOTE_DIR = "pyannote/tiny-random-diarization"
TINY_SAMPLE_LEN = 24  # tokens per 30 s window: random weights would otherwise decode 224 tokens of noise
TEXT_EMBEDDING_GAIN = 4.0  # see module docstring: makes the random decoder always write text
EMBEDDING_DIMENSION = 32
LDA_DIMENSION = 16
SEED = 0


def make_tiny_whisper(path: Path, seed: int = SEED) -> Path:
    """A whisper checkpoint with real vocabulary and mel bins, 2 layers of width 64 (about 15 MB)."""
    from whisper.model import ModelDimensions, Whisper
    from whisper.tokenizer import get_tokenizer

    torch.manual_seed(seed)
    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,  # fixed by whisper's 30 s window
        n_audio_state=64,
        n_audio_head=2,
        n_audio_layer=2,
        n_vocab=51865,  # multilingual tokenizer
        n_text_ctx=448,
        n_text_state=64,
        n_text_head=2,
        n_text_layer=2,
    )
    model = Whisper(dims)
    tokenizer = get_tokenizer(multilingual=True, num_languages=model.num_languages)
    with torch.no_grad():
        # whisper allocates this with torch.empty (real checkpoints overwrite it): uninitialised memory made the
        # tiny model differ from process to process, and sometimes write nothing at all.
        model.decoder.positional_embedding.normal_(0.0, 0.01)
        embedding = model.decoder.token_embedding.weight  # also the output projection (tied)
        embedding[tokenizer.eot : tokenizer.timestamp_begin] = 0.0  # no end-of-text, no other special token wins
        embedding[: tokenizer.eot] *= TEXT_EMBEDDING_GAIN  # text outscores timestamps after the first one
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path


def make_tiny_pyannote(directory: Path, seed: int = SEED) -> Path:
    """A pyannote diarization pipeline directory with small PyanNet, XVectorSincNet and an identity-like PLDA."""
    import lightning
    import pyannote.audio
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import XVectorSincNet
    from pyannote.audio.models.segmentation import PyanNet

    torch.manual_seed(seed)
    segmentation = PyanNet(
        sincnet={"stride": 10},
        lstm={"hidden_size": 32, "num_layers": 1, "bidirectional": True, "monolithic": True},
        linear={"hidden_size": 32, "num_layers": 1},
    )
    # Same task as pyannote's community-1 segmentation: 10 s chunks, 3 speakers, powerset of at most 2 at once.
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=10.0,
        warm_up=(0.0, 0.0),
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    segmentation.setup()
    embedding = XVectorSincNet(dimension=EMBEDDING_DIMENSION)
    embedding.specifications = Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=3.0)
    embedding.setup()
    for name, model in (("segmentation", segmentation), ("embedding", embedding)):
        checkpoint = {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": lightning.__version__,
        }
        model.on_save_checkpoint(checkpoint)  # pyannote's own metadata: version, architecture, specifications
        (directory / name).mkdir(parents=True, exist_ok=True)
        torch.save(checkpoint, directory / name / "pytorch_model.bin")

    rng = np.random.default_rng(seed)
    lda = np.linalg.qr(rng.standard_normal((EMBEDDING_DIMENSION, EMBEDDING_DIMENSION)))[0][:, :LDA_DIMENSION]
    (directory / "plda").mkdir(parents=True, exist_ok=True)
    np.savez(
        directory / "plda" / "xvec_transform.npz",
        mean1=np.zeros(EMBEDDING_DIMENSION),
        mean2=np.zeros(LDA_DIMENSION),
        lda=lda,
    )
    np.savez(
        directory / "plda" / "plda.npz",
        mu=np.zeros(LDA_DIMENSION),
        tr=np.eye(LDA_DIMENSION),
        psi=np.linspace(2.0, 0.5, LDA_DIMENSION),
    )
    config = {
        "version": pyannote.audio.__version__,
        "pipeline": {
            "name": "pyannote.audio.pipelines.SpeakerDiarization",
            "params": {
                "segmentation": "$model/segmentation",
                "embedding": "$model/embedding",
                "plda": "$model/plda",
                "clustering": "VBxClustering",
                "segmentation_batch_size": 16,
                "embedding_batch_size": 16,
            },
        },
        "params": {
            "segmentation": {"min_duration_off": 0.0},
            "clustering": {"threshold": 0.6, "Fa": 0.07, "Fb": 0.8},
        },
    }
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return directory


def make_tiny_models(directory: Path) -> Path:
    """Write tiny whisper and pyannote checkpoints and the ``models.yaml`` that points at them."""
    directory = directory.expanduser().absolute()
    make_tiny_whisper(directory / WHISPER_FILE)
    make_tiny_pyannote(directory / PYANNOTE_DIR)
    models_config = {
        "tiny_models": True,
        "whisper": {
            "model": WHISPER_FILE,
            "language": "en",
            "temperature": 0.0,
            "sample_len": TINY_SAMPLE_LEN,
            "condition_on_previous_text": False,
        },
        "diarization": {"pipeline": PYANNOTE_DIR},
    }
    path = directory / MODELS_CONFIG_NAME
    path.write_text(
        "# Random-weight test checkpoints written by `bwc models make-tiny`: transcripts are meaningless.\n"
        + yaml.safe_dump(models_config, sort_keys=False),
        encoding="utf-8",
    )
    return path
