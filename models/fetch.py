"""Downloading real weights into a models directory, on a connected machine, for air-gapped use later.

The directory it writes is self-contained and relocatable (``models.yaml`` holds relative paths)::

    DIR/models.yaml
    DIR/whisper/<name>.pt                      whisper's own file name for the model (the openai engine)
    DIR/whisper/<name>-ct2/model.bin ...       faster-whisper's CTranslate2 copy (the ctranslate2 engine, default)
    DIR/pyannote/<repo name>/config.yaml ...   a snapshot of the pyannote hub repository

Example
-------
>>> fetch_models(Path("/opt/bwc-models"), whisper_name="small",
...              pyannote_repo="pyannote/speaker-diarization-community-1", token="hf_...")   # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from bwc.config import MODELS_CONFIG_NAME
from models.locate import CT2_MODEL_FILE, whisper_ct2_dir_name, whisper_file_name

# what faster-whisper's own download_model takes from a CTranslate2 repository
CT2_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]


def fetch_whisper(directory: Path, name: str) -> Path:
    """Download a named whisper model with whisper's own downloader (it checks the published SHA-256)."""
    import whisper

    if name not in whisper.available_models():
        raise ValueError(f"unknown whisper model '{name}': choose from {', '.join(whisper.available_models())}")
    target = directory / "whisper"
    target.mkdir(parents=True, exist_ok=True)
    whisper._download(whisper._MODELS[name], str(target), in_memory=False)
    return target / whisper_file_name(name)


def fetch_whisper_ct2(directory: Path, name: str, token: str | None) -> Path:
    """Download faster-whisper's CTranslate2 conversion of a named whisper model (e.g. Systran/faster-whisper-small)
    to ``whisper/<name>-ct2``, beside the ``.pt``, where ``whisper.engine: auto`` finds it."""
    from faster_whisper.utils import _MODELS
    from huggingface_hub import snapshot_download

    repo_id = _MODELS.get(name)
    if repo_id is None:
        raise ValueError(f"faster-whisper has no CTranslate2 copy of '{name}': choose from {', '.join(_MODELS)}")
    target = directory / "whisper" / whisper_ct2_dir_name(name)
    snapshot_download(repo_id=repo_id, local_dir=str(target), allow_patterns=CT2_FILES, token=token)
    _drop_download_records(target)
    if not (target / CT2_MODEL_FILE).is_file():
        raise RuntimeError(f"{repo_id} has no {CT2_MODEL_FILE}: it is not a CTranslate2 model repository")
    return target


def _drop_download_records(target: Path) -> None:
    """Remove what snapshot_download keeps about the download in ``target/.cache`` (each file's download time,
    among others): a model's version hashes its directory, and the same weights fetched twice must hash the same."""
    shutil.rmtree(target / ".cache", ignore_errors=True)


def fetch_pyannote(directory: Path, repo_id: str, token: str | None) -> Path:
    """Snapshot a pyannote pipeline repository (config and its model subfolders) from the Hugging Face hub."""
    from huggingface_hub import snapshot_download

    target = directory / "pyannote" / repo_id.split("/")[-1]
    snapshot_download(repo_id=repo_id, local_dir=str(target), token=token)
    _drop_download_records(target)
    if not (target / "config.yaml").is_file():
        raise RuntimeError(f"{repo_id} has no config.yaml: it is not a pyannote pipeline repository")
    return target


def fetch_models(
    directory: Path, whisper_name: str | None, pyannote_repo: str | None, token: str | None, ctranslate2: bool = True
) -> Path:
    """Fetch the requested models (whisper in both formats unless ``ctranslate2`` is False) and update
    ``DIR/models.yaml`` to point at them."""
    directory = directory.expanduser().absolute()
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / MODELS_CONFIG_NAME
    config: dict[str, Any] = {}
    if config_path.is_file():
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    config.pop("tiny_models", None)
    if whisper_name:
        path = fetch_whisper(directory, whisper_name)
        if ctranslate2:
            fetch_whisper_ct2(directory, whisper_name, token)
        config["whisper"] = {"model": str(path.relative_to(directory))}
    if pyannote_repo:
        path = fetch_pyannote(directory, pyannote_repo, token)
        config["diarization"] = {"pipeline": str(path.relative_to(directory))}
    # The random-weight notice stays while either model is still a tiny test checkpoint.
    paths = [
        str(config.get(section, {}).get(key, ""))
        for section, key in (("whisper", "model"), ("diarization", "pipeline"))
    ]
    if any("tiny-random" in path for path in paths):
        config["tiny_models"] = True
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return config_path
