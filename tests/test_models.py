"""Model loading by path through the libraries' own loaders, the missing-weights message, and fetch's layout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bwc.audio import SAMPLE_RATE
from bwc.config import load_config
from bwc.demo import Line, render_scene
from bwc.ingest import MetadataTable, ingest_file
from models.locate import ModelNotFoundError, resolve_pyannote, resolve_whisper
from pipelines.speech import ResolvedModels, SpeechStage
from tests.conftest import encode


def test_speech_stage_on_tiny_models_attributes_every_word(tiny_models: Path, tmp_path: Path) -> None:
    audio, _ = render_scene(
        [Line("officer", "Good evening, license please.", 0.0), Line("civilian", "Here you go.", 2.0)],
        lead_in_s=2.0,
        tail_s=2.0,
    )
    path = encode(tmp_path / "scene.wav", audio, SAMPLE_RATE, "-c:a", "pcm_s16le")
    config = load_config(tiny_models)
    assert config.tiny_models
    stage = SpeechStage.from_config(config, device="cpu")
    assert set(stage.model_versions) == {"vad", "asr", "diarization"}
    result = stage(ingest_file(path, MetadataTable.empty()))
    assert result.speech_regions, "silero found no speech in the scene"
    assert result.words, "tiny whisper produced no words inside the speech regions"
    assert all(word.speaker for word in result.words)
    assert sum(len(u.words) for u in result.utterances) == len(result.words)
    for word in result.words:  # whisper only decoded inside the (padded, merged) VAD regions
        assert any(r.start - 1.0 <= word.start <= r.end + 1.0 for r in result.speech_regions)


def test_missing_weights_fail_fast_naming_model_places_and_remedy(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("BWC_MODELS", None)
    (tmp_path / "in").mkdir()
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "run", str(tmp_path / "in"), "--store", str(tmp_path / "store"),
         "--models", str(tmp_path / "no-models")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    assert completed.returncode == 1
    assert elapsed < 10, f"took {elapsed:.1f} s"
    message = completed.stderr
    assert "whisper model 'small' not found" in message
    assert "pyannote pipeline 'pyannote/speaker-diarization-community-1' not found" in message
    assert str(tmp_path / "no-models" / "whisper" / "small.pt") in message
    assert str(tmp_path / "cache" / "whisper" / "small.pt") in message
    assert "bwc models fetch" in message and "make-tiny" in message
    assert not (tmp_path / "store" / "recordings").exists()


def test_a_segmentation_vad_without_its_model_fails_naming_it(tiny_models: Path) -> None:
    config = load_config(tiny_models, overrides={"vad": {"engine": "segmentation", "model": "vad/missing.bin"}})
    with pytest.raises(ModelNotFoundError) as raised:
        ResolvedModels.resolve(config)
    message = str(raised.value)
    assert "VAD segmentation model 'vad/missing.bin' not found" in message
    assert str(tiny_models / "vad" / "missing.bin") in message and "vad.engine to silero" in message
    assert ResolvedModels.resolve(load_config(tiny_models)).vad_model is None  # silero: nothing to find


def test_resolution_by_name_path_and_hub_id(tiny_models: Path, tmp_path: Path) -> None:
    checkpoint = tiny_models / "whisper" / "tiny-random.pt"
    assert resolve_whisper(str(checkpoint), None) == checkpoint
    assert resolve_whisper("whisper/tiny-random.pt", tiny_models) == checkpoint
    pipeline = tiny_models / "pyannote" / "tiny-random-diarization"
    assert resolve_pyannote(str(pipeline), None) == pipeline
    assert resolve_pyannote(str(pipeline / "config.yaml"), None) == pipeline
    with pytest.raises(ModelNotFoundError, match="huggingface cache"):
        resolve_pyannote("pyannote/speaker-diarization-community-1", tmp_path)
    with pytest.raises(ModelNotFoundError, match="checkpoint"):
        resolve_whisper("/nowhere/model.pt", None)


def test_fetch_writes_a_relocatable_models_directory(tiny_models: Path, tmp_path: Path, monkeypatch) -> None:
    """The hub and whisper's CDN are outside the project and unreachable here: only the download is replaced."""
    import huggingface_hub
    import whisper

    from models.fetch import fetch_models

    def fake_whisper_download(url: str, root: str, in_memory: bool) -> str:
        target = Path(root) / os.path.basename(url)
        shutil.copy(tiny_models / "whisper" / "tiny-random.pt", target)
        return str(target)

    def fake_snapshot_download(repo_id: str, local_dir: str, token: str | None, **options: object) -> str:
        assert token == "hf_test"
        if repo_id == "Systran/faster-whisper-small":  # faster-whisper's CTranslate2 copy: only its files
            assert "model.bin" in options["allow_patterns"]  # type: ignore[operator]
            Path(local_dir).mkdir(parents=True)
            for name in ("model.bin", "config.json", "tokenizer.json"):
                (Path(local_dir) / name).write_bytes(b"weights")
            # what huggingface_hub keeps beside a local_dir download: each file's download time, among others
            (Path(local_dir) / ".cache" / "huggingface" / "download").mkdir(parents=True)
            (Path(local_dir) / ".cache" / "huggingface" / "download" / "model.bin.metadata").write_text("1764590000.1")
            return local_dir
        assert repo_id == "pyannote/speaker-diarization-community-1"
        shutil.copytree(tiny_models / "pyannote" / "tiny-random-diarization", local_dir)
        return local_dir

    monkeypatch.setattr(whisper, "_download", fake_whisper_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    fetched = tmp_path / "fetched"
    fetch_models(fetched, "small", "pyannote/speaker-diarization-community-1", "hf_test")
    moved = tmp_path / "air-gapped"
    shutil.move(fetched, moved)  # the directory is copied to the offline machine
    config = load_config(moved)
    assert not config.tiny_models
    models = ResolvedModels.resolve(config)
    assert models.whisper_checkpoint == (moved / "whisper" / "small-ct2").resolve()  # the faster engine's copy
    assert not (moved / "whisper" / "small-ct2" / ".cache").exists()  # a second fetch hashes the same
    openai = ResolvedModels.resolve(config.merged({"whisper": {"engine": "openai"}}))
    assert openai.whisper_checkpoint == (moved / "whisper" / "small.pt").resolve()
    assert models.pyannote_pipeline == (moved / "pyannote" / "speaker-diarization-community-1").resolve()
    # The names a user would type resolve through the models directory as well.
    assert resolve_whisper("small", moved) == moved / "whisper" / "small.pt"
    assert resolve_pyannote("pyannote/speaker-diarization-community-1", moved) == models.pyannote_pipeline
