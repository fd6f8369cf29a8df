"""Where the respect model's artifact lives, checked without importing torch (runs fail fast on a missing model)."""

from __future__ import annotations

from pathlib import Path

BUNDLED_MODEL_DIR = Path(__file__).parent / "model"  # the artifact trained by `make respect-model`, shipped in git
WEIGHTS_FILE = "encoder_top.safetensors"  # fine-tuned top layers and the regression head
PARAMETERS_FILE = "respect.json"  # everything else: feature weights, blend, calibration, provenance


def require_artifact(model_dir: Path | None) -> Path:
    """The artifact directory (default: the bundled one); raises ModelNotFoundError when its files are absent."""
    model_dir = model_dir or BUNDLED_MODEL_DIR
    needed = [model_dir / WEIGHTS_FILE, model_dir / PARAMETERS_FILE]
    if not all(path.is_file() for path in needed):
        from models.locate import ModelNotFoundError

        raise ModelNotFoundError(
            "respect model",
            needed,
            "build it with `make respect-model CORPUS=...` (or `bwc models train respect --data CSV --out DIR`) "
            "and point scoring.respect_model at DIR",
        )
    return model_dir
