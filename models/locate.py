"""Finding model weights on disk, by name or path, without ever downloading.

A run never opens a network connection for weights: names are looked up in the models directory and in the
libraries' own caches, and a model that is nowhere raises :class:`ModelNotFoundError` at once, naming the model,
every place searched, and how to supply it. Downloading is ``bwc models fetch``'s job, on a connected machine.

Example
-------
>>> resolve_whisper("small", Path("/opt/bwc-models"))       # doctest: +SKIP
PosixPath('/opt/bwc-models/whisper/small.pt')
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import whisper

if TYPE_CHECKING:
    from bwc.config import BwcConfig, WhisperConfig

PIPELINE_CONFIG = "config.yaml"  # what makes a directory a pyannote pipeline
CT2_MODEL_FILE = "model.bin"  # what makes a directory a CTranslate2 model
CT2_TOKENIZER_FILE = "tokenizer.json"  # ... and its tokenizer (without it faster-whisper downloads one)
CT2_SUFFIX = "-ct2"  # a CTranslate2 copy of whisper/<name>.pt is whisper/<name>-ct2/ (bwc models fetch, starter)


class ModelNotFoundError(RuntimeError):
    """A model's weights are not on this machine."""

    def __init__(self, model: str, searched: list[Path], how_to_supply: str) -> None:
        self.model = model
        self.searched = searched
        self.how_to_supply = how_to_supply
        places = "\n".join(f"  - {place}" for place in searched) or "  (nowhere: not a name or a path)"
        super().__init__(f"{model} not found. Searched:\n{places}\nTo supply it: {how_to_supply}")

    @staticmethod
    def combine(errors: list[ModelNotFoundError]) -> ModelNotFoundError:
        """One error naming every missing model, so a user fixes them all in one go."""
        if len(errors) == 1:
            return errors[0]
        combined = ModelNotFoundError(" and ".join(e.model for e in errors), [], "")
        combined.searched = [place for e in errors for place in e.searched]
        combined.args = ("\n\n".join(str(e) for e in errors),)
        return combined


def whisper_file_name(name: str) -> str:
    """The file name whisper's own downloader gives a named model (e.g. "turbo" -> "large-v3-turbo.pt")."""
    return os.path.basename(whisper._MODELS[name])


def whisper_ct2_dir_name(name: str) -> str:
    """The directory bwc gives a named model's CTranslate2 copy, beside its .pt (e.g. "large-v3-turbo-ct2")."""
    return Path(whisper_file_name(name)).stem + CT2_SUFFIX


def whisper_cache_dir() -> Path:
    """Where ``whisper.load_model`` keeps downloaded weights."""
    return Path(os.getenv("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"


def resolve_whisper(spec: str, models_dir: Path | None) -> Path:
    """A whisper checkpoint file for ``spec``: a path to a ``.pt`` file, or a model name found on disk."""
    candidate = Path(spec).expanduser()
    searched: list[Path] = []
    if spec not in whisper.available_models() or candidate.suffix == ".pt":
        if (found := _local_file(candidate, models_dir, searched)) is not None:
            return found
        raise ModelNotFoundError(
            f"whisper model '{spec}'",
            searched,
            f"whisper.model must be a model name ({', '.join(whisper.available_models())}) "
            "or the path of a whisper checkpoint (.pt).",
        )
    file_name = whisper_file_name(spec)
    places = ([models_dir / "whisper"] if models_dir else []) + [whisper_cache_dir()]
    for place in places:
        searched.append(place / file_name)
        if (place / file_name).is_file():
            return place / file_name
    raise ModelNotFoundError(
        f"whisper model '{spec}'",
        searched,
        f"on a connected machine run `bwc models fetch DIR --whisper {spec}`, copy DIR here and pass "
        "`--models DIR` (or set $BWC_MODELS); for an offline test run, `bwc models make-tiny DIR`.",
    )


def resolve_whisper_weights(config: WhisperConfig, models_dir: Path | None) -> Path:
    """The weights ``whisper.engine`` runs for ``whisper.model``: a CTranslate2 directory or a ``.pt`` checkpoint.

    ``auto`` takes the CTranslate2 copy when one is installed (:func:`resolve_whisper_ct2`), else the ``.pt``;
    ``ctranslate2`` and ``openai`` insist on their format. Raises :class:`ModelNotFoundError` naming every place
    searched.
    """
    searched: list[Path] = []
    if config.engine != "openai":
        if (found := resolve_whisper_ct2(config.model, models_dir, searched)) is not None:
            return found
        if config.engine == "ctranslate2":
            raise ModelNotFoundError(
                f"whisper model '{config.model}' in CTranslate2 format",
                searched,
                f"on a connected machine run `bwc models fetch DIR --whisper NAME` (it fetches faster-whisper's "
                f"CTranslate2 copy beside the .pt), or set whisper.model to a CTranslate2 directory (holding "
                f"{CT2_MODEL_FILE}), or set whisper.engine to openai.",
            )
    if Path(config.model).expanduser().is_dir():
        raise ModelNotFoundError(
            f"whisper model '{config.model}'",
            searched or [Path(config.model)],
            "a directory is a whisper model only in CTranslate2's format (model.bin, tokenizer.json): "
            + (
                "whisper.engine openai needs a .pt checkpoint; set whisper.engine to auto, or whisper.model to a .pt."
                if config.engine == "openai"
                else f"this one has no {CT2_MODEL_FILE}; set whisper.model to a CTranslate2 directory or a .pt."
            ),
        )
    try:
        return resolve_whisper(config.model, models_dir)
    except ModelNotFoundError as error:
        raise ModelNotFoundError(error.model, searched + error.searched, error.how_to_supply) from None


def resolve_whisper_ct2(spec: str, models_dir: Path | None, searched: list[Path] | None = None) -> Path | None:
    """A CTranslate2 directory for ``spec``, or None: ``spec`` itself when it is one; for a ``.pt`` path, the
    ``<stem>-ct2`` directory beside it; for a model name, ``whisper/<name>-ct2`` in the models directory or
    faster-whisper's download in the Hugging Face cache. Places looked at are added to ``searched``."""
    searched = [] if searched is None else searched
    candidate = Path(spec).expanduser()
    relative = not candidate.is_absolute() and models_dir is not None
    paths = [candidate, models_dir / candidate] if relative else [candidate]  # type: ignore[operator]
    if spec in whisper.available_models() and candidate.suffix != ".pt":
        paths = [models_dir / "whisper" / whisper_ct2_dir_name(spec)] if models_dir else []
    elif candidate.suffix == ".pt":
        paths = [path.with_name(path.stem + CT2_SUFFIX) for path in paths]
    for path in paths:
        searched.append(path / CT2_MODEL_FILE)
        if (path / CT2_MODEL_FILE).is_file():
            if not (path / CT2_TOKENIZER_FILE).is_file():  # faster-whisper would fetch one from the hub
                raise ModelNotFoundError(
                    f"the tokenizer of the CTranslate2 whisper model {path}",
                    [path / CT2_TOKENIZER_FILE],
                    f"copy the model's {CT2_TOKENIZER_FILE} into it (faster-whisper's repositories have one; "
                    "`bwc models fetch` takes it).",
                )
            return path.absolute()
    if spec in whisper.available_models():
        cached = _faster_whisper_cache(spec)
        searched.append(Path(f"huggingface cache: faster-whisper {spec}/{CT2_MODEL_FILE}"))
        if cached is not None:
            return cached
    return None


def _faster_whisper_cache(name: str) -> Path | None:
    """faster-whisper's CTranslate2 download of a named model, if it is in the Hugging Face cache (no network)."""
    from faster_whisper.utils import _MODELS
    from huggingface_hub import try_to_load_from_cache

    repo = _MODELS.get(name)
    found = try_to_load_from_cache(repo, CT2_MODEL_FILE) if repo else None
    return Path(found).parent if isinstance(found, str) else None


def _local_file(candidate: Path, models_dir: Path | None, searched: list[Path]) -> Path | None:
    """``candidate`` as given, then inside the models directory when it is relative: the first that is a file
    (absolute), or None; every place looked at is added to ``searched``."""
    paths = [candidate] if candidate.is_absolute() or models_dir is None else [candidate, models_dir / candidate]
    for path in paths:
        searched.append(path)
        if path.is_file():
            return path.absolute()
    return None


def resolve_pyannote(spec: str, models_dir: Path | None) -> Path:
    """A local pyannote pipeline directory (holding ``config.yaml``) for a path or a hub id found on disk."""
    candidate = Path(spec).expanduser()
    searched: list[Path] = []
    local_candidates = [candidate] if candidate.is_absolute() or models_dir is None else [candidate, models_dir / spec]
    for path in local_candidates:
        if path.is_file() and path.name == PIPELINE_CONFIG:
            return path.parent.absolute()
        searched.append(path / PIPELINE_CONFIG)
        if (path / PIPELINE_CONFIG).is_file():
            return path.absolute()
    if "/" in spec and not candidate.is_absolute():
        if models_dir is not None:
            local = models_dir / "pyannote" / spec.split("/")[-1]
            searched.append(local / PIPELINE_CONFIG)
            if (local / PIPELINE_CONFIG).is_file():
                return local
        cached = _hub_cache_snapshot(spec)
        searched.append(Path(f"huggingface cache: {spec}/{PIPELINE_CONFIG}"))
        if cached is not None:
            return cached
    raise ModelNotFoundError(
        f"pyannote pipeline '{spec}'",
        searched,
        f"on a connected machine run `bwc models fetch DIR --pyannote {spec}` (with a hub token in $HF_TOKEN if "
        "the model is gated), copy DIR here and pass `--models DIR`; or set diarization.pipeline to a local "
        "directory holding config.yaml; for an offline test run, `bwc models make-tiny DIR`.",
    )


def resolve_vad_model(spec: str | None, models_dir: Path | None) -> Path:
    """The segmentation checkpoint file of a ``segmentation`` VAD: a path, absolute or in the models directory."""
    searched: list[Path] = []
    if spec and (found := _local_file(Path(spec).expanduser(), models_dir, searched)) is not None:
        return found
    raise ModelNotFoundError(
        f"VAD segmentation model '{spec}'",
        searched,
        "set vad.model to a pyannote segmentation checkpoint (the starter set has one: `bwc models starter`), "
        "or vad.engine to silero.",
    )


def _hub_cache_snapshot(repo_id: str) -> Path | None:
    """The snapshot directory of a pipeline already in the Hugging Face cache, looked up without the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, PIPELINE_CONFIG)
    return Path(found).parent if isinstance(found, str) else None


def fingerprint(path: Path) -> str:
    """Short SHA-256 of a weights file, or of every file (names and bytes) in a model directory."""
    digest = hashlib.sha256()
    files = (
        [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    )
    for file in files:
        digest.update(str(file.relative_to(path.parent if path.is_file() else path)).encode())
        with open(file, "rb") as handle:
            while block := handle.read(4 * 1024 * 1024):
                digest.update(block)
    return digest.hexdigest()[:12]


def whisper_version(checkpoint: Path) -> str:
    """What the catalog records for outputs of this whisper checkpoint."""
    return f"whisper:{checkpoint.name}@{fingerprint(checkpoint)}"


def engine_name(weights: Path) -> str:
    """Which whisper engine runs these weights: "ctranslate2" for a CTranslate2 directory, else "openai"."""
    return "ctranslate2" if (weights / CT2_MODEL_FILE).is_file() else "openai"


def asr_version(weights: Path, compute_type: str | None = None) -> str:
    """What the catalog records for transcripts from these whisper weights: the engine shows, and a configured
    CTranslate2 compute type (the default, int8 on CPU and float16 on GPU, is left out: one version across a
    cluster's CPU and GPU workers, as openai-whisper's fp16 on GPU always was)."""
    if engine_name(weights) == "ctranslate2":
        return whisper_version(weights) + " ctranslate2" + (f" {compute_type}" if compute_type else "")
    return whisper_version(weights)


def pyannote_version(pipeline_dir: Path) -> str:
    """What the catalog records for outputs of this pyannote pipeline directory."""
    return f"pyannote:{pipeline_dir.name}@{fingerprint(pipeline_dir)}"


@dataclass(frozen=True)
class ResolvedModels:
    """Local weights for every model the speech stage needs (found before any worker starts)."""

    whisper_checkpoint: Path  # whisper weights: a CTranslate2 directory, or an openai-whisper .pt file
    pyannote_pipeline: Path  # pyannote pipeline directory holding config.yaml
    vad_model: Path | None = None  # segmentation checkpoint of the VAD; None: silero-vad (inside its wheel)
    whisper_compute_type: str | None = None  # whisper.compute_type as configured (part of a CTranslate2 version)

    @classmethod
    def resolve(cls, config: BwcConfig) -> ResolvedModels:
        """Find the weights on disk; raises :class:`models.locate.ModelNotFoundError` when they are absent."""
        models_dir = Path(config.models_dir) if config.models_dir else None
        found: dict[str, Path] = {}
        missing: list[ModelNotFoundError] = []
        for field, resolve, spec in (
            ("whisper_checkpoint", resolve_whisper_weights, config.whisper),
            ("pyannote_pipeline", resolve_pyannote, config.diarization.pipeline),
        ):
            try:
                found[field] = resolve(spec, models_dir)
            except ModelNotFoundError as error:
                missing.append(error)
        if config.vad.engine == "segmentation":
            try:
                found["vad_model"] = resolve_vad_model(config.vad.model, models_dir)
            except ModelNotFoundError as error:
                missing.append(error)
        if missing:
            raise ModelNotFoundError.combine(missing)
        return cls(**found, whisper_compute_type=config.whisper.compute_type)

    def versions(self) -> dict[str, str]:
        """Each speech model's version, as the speech stage reports it, computed without loading any model."""
        from models.vad import segmentation_version, silero_version

        return {
            "vad": segmentation_version(self.vad_model) if self.vad_model is not None else silero_version(),
            "asr": asr_version(self.whisper_checkpoint, self.whisper_compute_type),
            "diarization": pyannote_version(self.pyannote_pipeline),
        }
