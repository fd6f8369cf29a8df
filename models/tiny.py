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
# openai/whisper's published sizes: (width, heads, layers per stack, mel bins, vocabulary). Random weights at these
# sizes cost what the real models cost, for benchmarks and capacity planning; tests use the tiny default.
WHISPER_SIZES = {
    "tiny": (384, 6, 4, 80, 51865),
    "base": (512, 8, 6, 80, 51865),
    "small": (768, 12, 12, 80, 51865),
    "medium": (1024, 16, 24, 80, 51865),
    "large-v3": (1280, 20, 32, 128, 51866),
}
REAL_EMBEDDING_DIMENSION = 256  # WeSpeakerResNet34's, as in pyannote's community-1 pipeline
REAL_LDA_DIMENSION = 128


def make_tiny_whisper(path: Path, seed: int = SEED, size: str | None = None) -> Path:
    """A whisper checkpoint with real vocabulary and mel bins, 2 layers of width 64 (about 15 MB); or, with
    ``size`` (a key of :data:`WHISPER_SIZES`), random weights at that real model's size."""
    from whisper.model import ModelDimensions, Whisper
    from whisper.tokenizer import get_tokenizer

    torch.manual_seed(seed)
    width, heads, layers, mels, vocabulary = WHISPER_SIZES[size] if size else (64, 2, 2, 80, 51865)
    dims = ModelDimensions(
        n_mels=mels,
        n_audio_ctx=1500,  # fixed by whisper's 30 s window
        n_audio_state=width,
        n_audio_head=heads,
        n_audio_layer=layers,
        n_vocab=vocabulary,  # multilingual tokenizer
        n_text_ctx=448,
        n_text_state=width,
        n_text_head=heads,
        n_text_layer=layers,
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


def make_tiny_pyannote(directory: Path, seed: int = SEED, real_size: bool = False) -> Path:
    """A pyannote diarization pipeline directory with small PyanNet, XVectorSincNet and an identity-like PLDA; or,
    with ``real_size``, PyanNet at pyannote's default size and WeSpeakerResNet34 (what community-1 runs)."""
    import lightning
    import pyannote.audio
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34, XVectorSincNet
    from pyannote.audio.models.segmentation import PyanNet

    torch.manual_seed(seed)
    if real_size:
        segmentation = PyanNet()
        embedding_dimension, lda_dimension = REAL_EMBEDDING_DIMENSION, REAL_LDA_DIMENSION
    else:
        segmentation = PyanNet(
            sincnet={"stride": 10},
            lstm={"hidden_size": 32, "num_layers": 1, "bidirectional": True, "monolithic": True},
            linear={"hidden_size": 32, "num_layers": 1},
        )
        embedding_dimension, lda_dimension = EMBEDDING_DIMENSION, LDA_DIMENSION
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
    embedding = WeSpeakerResNet34() if real_size else XVectorSincNet(dimension=EMBEDDING_DIMENSION)
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
    lda = np.linalg.qr(rng.standard_normal((embedding_dimension, embedding_dimension)))[0][:, :lda_dimension]
    (directory / "plda").mkdir(parents=True, exist_ok=True)
    np.savez(
        directory / "plda" / "xvec_transform.npz",
        mean1=np.zeros(embedding_dimension),
        mean2=np.zeros(lda_dimension),
        lda=lda,
    )
    np.savez(
        directory / "plda" / "plda.npz",
        mu=np.zeros(lda_dimension),
        tr=np.eye(lda_dimension),
        psi=np.linspace(2.0, 0.5, lda_dimension),
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


def make_tiny_models(
    directory: Path, whisper_size: str | None = None, real_size_pyannote: bool = False, sample_len: int | None = None
) -> Path:
    """Write random-weight whisper and pyannote checkpoints and the ``models.yaml`` that points at them: tiny by
    default (tests), or at real sizes (benchmarks: they cost what real weights cost)."""
    directory = directory.expanduser().absolute()
    whisper_file = f"whisper/{whisper_size}-random.pt" if whisper_size else WHISPER_FILE
    pyannote_dir = "pyannote/fullsize-random-diarization" if real_size_pyannote else PYANNOTE_DIR
    make_tiny_whisper(directory / whisper_file, size=whisper_size)
    make_tiny_pyannote(directory / pyannote_dir, real_size=real_size_pyannote)
    models_config = {
        "tiny_models": True,
        "whisper": {
            "model": whisper_file,
            "language": "en",
            "temperature": 0.0,
            "sample_len": sample_len or TINY_SAMPLE_LEN,
            "temperature_increment_on_fallback": None,  # random weights fail every rule: no fallback in tests
        },
        "diarization": {"pipeline": pyannote_dir},
    }
    path = directory / MODELS_CONFIG_NAME
    path.write_text(
        "# Random-weight checkpoints written by `bwc models make-tiny`: transcripts are meaningless.\n"
        + yaml.safe_dump(models_config, sort_keys=False),
        encoding="utf-8",
    )
    return path
