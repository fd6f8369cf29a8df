"""Discovery, the metadata join (by file name, by evidence id, with a column mapping), ingest errors, config layers."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bwc.audio import SAMPLE_RATE, sha256_file
from bwc.config import BwcConfig, MetadataConfig, load_config
from bwc.ingest import IngestError, MetadataTable, discover, ingest_file
from tests.conftest import NOT_MEDIA, encode, tone


def test_discover_recurses_filters_and_survives_link_loops(tmp_path: Path) -> None:
    (tmp_path / "day1" / "cam 7").mkdir(parents=True)
    for name in ("day1/a.WAV", "day1/cam 7/b.mp4", "day1/notes.txt", "day1/.partial.mp4", "c.mkv"):
        (tmp_path / name).write_bytes(b"x")
    os.symlink(tmp_path, tmp_path / "day1" / "loop")  # a folder link back to the root
    found = [p.relative_to(tmp_path).as_posix() for p in discover([tmp_path])]
    assert found == ["c.mkv", "day1/a.WAV", "day1/cam 7/b.mp4"]
    assert discover([tmp_path / "day1" / "notes.txt"]) == [(tmp_path / "day1" / "notes.txt").absolute()]
    with pytest.raises(FileNotFoundError):
        discover([tmp_path / "missing"])


def write_export(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_metadata_joins_by_file_name_then_evidence_id_and_converts_times_to_utc(tmp_path: Path) -> None:
    export = write_export(
        tmp_path / "export.csv",
        "file_name,evidence_id,officer_id,recorded_at,incident_id,category",
        "stop one.mp4,EV1,B17,2026-03-01 21:05:00,CAD-1,Traffic Stop",
        ",EV2,B18,2026-03-02T10:00:00+02:00,,Pedestrian",
    )
    table = MetadataTable.from_csv(export, MetadataConfig(timezone="America/Los_Angeles"))
    first = table.match(Path("/intake/STOP ONE.mp4"))
    assert (first.evidence_id, first.officer_id, first.incident_id, first.category) == (
        "EV1",
        "B17",
        "CAD-1",
        "Traffic Stop",
    )
    assert first.recorded_at == datetime(2026, 3, 2, 5, 5, tzinfo=UTC)  # PST is UTC-8
    second = table.match(Path("/intake/ev2.wav"))
    assert second.officer_id == "B18" and second.incident_id is None
    assert second.recorded_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert table.match(Path("/intake/other.wav")).evidence_id is None


def test_metadata_column_mapping_for_another_evidence_system(tmp_path: Path) -> None:
    export = write_export(
        tmp_path / "axon.csv", "Evidence ID,Badge,Recorded On,Title", "X-9,4471,2026-01-05T03:00:00Z,Stop"
    )
    mapping = {"evidence_id": "Evidence ID", "officer_id": "Badge", "recorded_at": "Recorded On", "category": "Title"}
    config = BwcConfig().merged({"metadata": {"columns": mapping}}).metadata
    metadata = MetadataTable.from_csv(export, config).match(Path("x-9.mp4"))
    assert (metadata.evidence_id, metadata.officer_id, metadata.category) == ("X-9", "4471", "Stop")
    with pytest.raises(IngestError, match="none of the configured metadata columns"):
        MetadataTable.from_csv(export, MetadataConfig())


def test_ingest_hashes_probes_and_matches(tmp_path: Path) -> None:
    path = encode(tmp_path / "EV5.flac", tone(2.0, 440.0, 44_100, 2), 44_100, "-c:a", "flac")
    export = write_export(tmp_path / "e.csv", "evidence_id,officer_id", "EV5,B1")
    recording = ingest_file(path, MetadataTable.from_csv(export, MetadataConfig()))
    assert recording.sha256 == sha256_file(path) and recording.recording_id == recording.sha256[:16]
    assert (recording.audio.sample_rate, recording.audio.channels, recording.audio.format) == (44_100, 2, "flac")
    assert recording.metadata.officer_id == "B1"
    assert recording.size_bytes == path.stat().st_size


def test_ingest_reasons(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.touch()
    with pytest.raises(IngestError, match="empty file"):
        ingest_file(empty, MetadataTable.empty())
    with pytest.raises(IngestError, match="file disappeared"):
        ingest_file(tmp_path / "gone.wav", MetadataTable.empty())
    long = encode(tmp_path / "long.wav", tone(3.0), SAMPLE_RATE, "-c:a", "pcm_s16le")
    with pytest.raises(IngestError, match="over the configured maximum"):
        ingest_file(long, MetadataTable.empty(), max_duration_s=2.0)
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(NOT_MEDIA)
    with pytest.raises(IngestError, match="not a readable audio/video file"):
        ingest_file(garbage, MetadataTable.empty())


def test_config_layers_and_relative_model_paths(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "whisper").mkdir(parents=True)
    (models / "whisper" / "custom.pt").write_bytes(b"weights")
    (models / "models.yaml").write_text("whisper:\n  model: whisper/custom.pt\n  sample_len: 10\n")
    overrides_file = tmp_path / "site.yaml"
    overrides_file.write_text("whisper:\n  sample_len: 20\nrun:\n  speech_workers: 3\n")
    config = load_config(models, overrides_file, {"run": {"speech_workers": 4}})
    assert config.whisper.model == str((models / "whisper" / "custom.pt").resolve())
    assert config.whisper.sample_len == 20  # config file beats models.yaml
    assert config.run.speech_workers == 4  # command line beats config file
    assert config.whisper.language == "en"  # default kept
    with pytest.raises(ValueError):
        BwcConfig().merged({"whisper": {"no_such_setting": 1}})
