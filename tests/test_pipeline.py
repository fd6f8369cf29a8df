"""``bwc run`` end to end: real ffmpeg, silero, whisper and pyannote (tiny weights), real local Ray, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from bwc.audio import SAMPLE_RATE, sha256_file
from bwc.demo import Line, render_scene
from bwc.store import SCHEMAS
from bwc.transcript import read_rttm, read_vtt
from tests.conftest import NOT_MEDIA, encode

pytestmark = pytest.mark.slow


def scene(seed: int) -> np.ndarray:
    audio, _ = render_scene(
        [
            Line("officer", "Good evening. The reason I stopped you is your brake light.", 0.0),
            Line("civilian", "Oh, thank you officer.", 1.0),
        ],
        lead_in_s=2.0,
        tail_s=1.5,
        seed=seed,
    )
    return audio


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("intake")
    a, b, c, d = (scene(seed) for seed in range(4))
    stereo_44k = signal.resample_poly(np.stack([a, 0.8 * a], axis=1), 441, 160, axis=0).astype(np.float32)
    encode(folder / "EV100.flac", stereo_44k, 44_100, "-c:a", "flac")
    encode(folder / "EV101.wav", b, SAMPLE_RATE, "-c:a", "pcm_s16le")
    (folder / "night shift").mkdir()
    encode(folder / "night shift" / "EV102.mp3", c, SAMPLE_RATE, "-c:a", "libmp3lame", "-ar", "44100")
    encode(folder / "EV103.mp4", d, SAMPLE_RATE, "-c:a", "aac", video=True)
    shutil.copy(folder / "EV101.wav", folder / "EV101 copy.wav")  # same content under a second name
    (folder / "EV104.wav").write_bytes(NOT_MEDIA)  # corrupt
    (folder / "export.csv").write_text(
        "file_name,evidence_id,officer_id,recorded_at,incident_id,category\n"
        "EV100.flac,EV100,B7,2026-05-01T22:10:00Z,CAD-1,Traffic Stop\n"
        ",EV103,B9,2026-05-02T08:00:00Z,CAD-2,Traffic Stop\n"
    )
    return folder


@pytest.fixture(scope="module")
def run_output(footage: Path, tiny_models: Path, tmp_path_factory: pytest.TempPathFactory):
    store = tmp_path_factory.mktemp("store")
    hashes = {path: sha256_file(path) for path in footage.rglob("*") if path.is_file()}
    completed = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "run", str(footage), "--store", str(store), "--models", str(tiny_models),
         "--metadata", str(footage / "export.csv"), "--settle", "0"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return store, completed, hashes


def test_exit_status_and_summary(run_output) -> None:
    _, completed, _ = run_output
    assert completed.returncode == 3, completed.stderr[-3000:]  # completed, but one file failed
    assert "random-weight" in completed.stderr
    assert "x realtime" in completed.stderr


def test_one_recordings_row_per_original_with_stream_facts_and_metadata(run_output, footage: Path) -> None:
    store, _, _ = run_output
    recordings = pd.read_parquet(store / "recordings")
    assert len(recordings) == 4
    by_name = {Path(p).name: row for p, row in zip(recordings.path, recordings.itertuples(), strict=True)}
    # Paths are taken in sorted order, so of two identical files "EV101 copy.wav" comes first and is kept.
    assert set(by_name) == {"EV100.flac", "EV101 copy.wav", "EV102.mp3", "EV103.mp4"}
    flac = by_name["EV100.flac"]
    assert (flac.sample_rate, flac.channels, flac.format, flac.officer_id) == (44_100, 2, "flac", "B7")
    assert flac.recorded_at == pd.Timestamp("2026-05-01T22:10:00Z")
    mp4 = by_name["EV103.mp4"]
    assert (mp4.format, mp4.codec, bool(mp4.has_video), mp4.officer_id) == ("mov", "aac", True, "B9")
    assert by_name["EV102.mp3"].format == "mp3"
    for row in recordings.itertuples():
        assert row.sha256 == sha256_file(row.path)
        assert row.recording_id == row.sha256[:16]
        assert row.duration_s > 5 and 0 < row.speech_s < row.duration_s


def test_tables_match_their_schemas_and_cover_every_word(run_output) -> None:
    store, _, _ = run_output
    for table in ("recordings", "utterances", "words", "failures"):
        frame = pd.read_parquet(store / table)
        assert list(frame.columns) == SCHEMAS[table].names, table
    utterances = pd.read_parquet(store / "utterances")
    words = pd.read_parquet(store / "words")
    assert len(words) > 0
    assert words.speaker.notna().all() and (words.speaker != "").all()
    assert set(words.utterance_id) == set(utterances.utterance_id)
    assert utterances.n_words.sum() == len(words)
    merged = words.merge(utterances, on="utterance_id", suffixes=("", "_u"))
    assert (merged.speaker == merged.speaker_u).all()
    assert ((merged.start >= merged.start_u - 1e-6) & (merged.end <= merged.end_u + 1e-6)).all()
    assert utterances.groupby("recording_id").utterance_id.nunique().sum() == len(utterances)


def test_vtt_and_rttm_per_recording_read_back(run_output) -> None:
    store, _, _ = run_output
    recordings = pd.read_parquet(store / "recordings")
    utterances = pd.read_parquet(store / "utterances")
    for recording_id in recordings.recording_id:
        cues = read_vtt(store / "transcripts" / f"{recording_id}.vtt")
        expected = utterances[utterances.recording_id == recording_id].sort_values("utterance_id")
        assert [c[2] for c in cues] == list(expected.speaker)
        assert [c[3] for c in cues] == list(expected.text)
        assert np.allclose([c[0] for c in cues], expected.start, atol=0.0011)
        turns = read_rttm(store / "diarization" / f"{recording_id}.rttm")
        assert set(expected.speaker) <= {t.speaker for t in turns} | {"UNKNOWN"}


def test_bad_file_is_reported_and_duplicate_processed_once(run_output, footage: Path) -> None:
    store, completed, _ = run_output
    failures = pd.read_parquet(store / "failures")
    assert list(failures.path) == [str(footage / "EV104.wav")]
    assert failures.stage.iloc[0] == "ingest"
    assert "not a readable audio/video file" in failures.reason.iloc[0]
    assert "Traceback" not in completed.stderr
    (report_path,) = (store / "runs").glob("*.json")
    report = json.loads(report_path.read_text())
    assert report["files_seen"] == 6 and report["processed"] == 4 and report["failed"] == 1
    assert [(Path(d["path"]).name, Path(d["same_as"]).name) for d in report["duplicates"]] == [
        ("EV101.wav", "EV101 copy.wav")
    ]
    assert set(report["model_versions"]) == {"vad", "asr", "diarization", "scoring"}


def test_every_recording_is_attributed_and_scored(run_output) -> None:
    """Tiny models make the words meaningless, but attribution, scoring and their tables are real."""
    store, _, _ = run_output
    recordings = pd.read_parquet(store / "recordings")
    utterances = pd.read_parquet(store / "utterances")
    scores = pd.read_parquet(store / "utterance_scores")
    encounters = pd.read_parquet(store / "encounter_scores")
    for table, frame in (("utterance_scores", scores), ("encounter_scores", encounters)):
        assert list(frame.columns) == SCHEMAS[table].names, table
    assert set(encounters.recording_id) == set(recordings.recording_id)
    assert set(scores.utterance_id) == set(utterances.utterance_id)
    assert set(scores.role) <= {"officer", "civilian", "other_officer", "radio", "unknown"}
    assert (utterances.level_db > -100).all() and utterances.snr_db.notna().all()
    officer = scores[scores.role == "officer"]
    assert officer.respect.notna().all() and scores.loc[scores.role != "officer", "respect"].isna().all()
    assert scores.model_version.str.contains(r"respect-2 [0-9a-f]{12}").all()
    by_officer = encounters.set_index("recording_id")
    flac_id = recordings.loc[recordings.path.str.endswith("EV100.flac"), "recording_id"].iloc[0]
    assert by_officer.loc[flac_id, "officer_id"] == "B7"


def test_originals_are_untouched(run_output) -> None:
    _, _, hashes = run_output
    for path, digest in hashes.items():
        assert sha256_file(path) == digest, path


def test_plan_from_the_stores_own_reports(run_output) -> None:
    """The run report records what the actors had; `bwc plan --store` turns it into nodes, naming its source."""
    store, _, _ = run_output
    report = json.loads(next((store / "runs").glob("*.json")).read_text())
    assert report["resources"]["speech_device"] == "cpu" and report["resources"]["cpus_per_speech_worker"] == 1
    planned = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "plan", "--hours-per-night", "100", "--store", str(store),
         "--cores-per-node", "16"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    assert "CPU only:" in planned.stdout and f"{store / 'runs'} (1 reports)" in planned.stdout
    assert "no GPU measurement yet" in planned.stdout


def test_flags_are_recomputed_at_the_end_of_the_run(run_output) -> None:
    """Every run ends by flagging the whole store; the report says what it found."""
    store, _, _ = run_output
    flags = pd.read_parquet(store / "flags")
    assert list(flags.columns) == SCHEMAS["flags"].names
    report = json.loads(next((store / "runs").glob("*.json")).read_text())
    scores = pd.read_parquet(store / "utterance_scores")
    with_officer = scores[(scores.role == "officer") & scores.respect.notna()].encounter_id.nunique()
    assert report["flags"]["encounters_considered"] == with_officer
    assert report["flags"]["poor"] == (flags.flag == "poor").sum()
    assert set(flags.encounter_id) <= set(scores.encounter_id)


def test_local_executor_writes_what_ray_writes(run_output, footage: Path, tiny_models: Path, tmp_path: Path) -> None:
    """`--executor local` runs the same workers in the driver, without Ray: same originals, failures, duplicates,
    and transcripts (tiny whisper is deterministic on CPU)."""
    ray_store, _, _ = run_output
    completed = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "run", str(footage), "--store", str(tmp_path), "--models", str(tiny_models),
         "--metadata", str(footage / "export.csv"), "--settle", "0", "--executor", "local"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 3, completed.stderr[-2000:]  # completed, but the corrupt file failed
    assert "Ray" not in completed.stderr
    report = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    assert report["processed"] == 4 and report["failed"] == 1 and len(report["duplicates"]) == 1
    assert report["resources"]["executor"] == "local" and report["resources"]["speech_workers"] == 1
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "failures")[["path", "stage", "reason"]],
        pd.read_parquet(ray_store / "failures")[["path", "stage", "reason"]],
    )
    columns = ["recording_id", "start", "end", "word"]
    ours = pd.read_parquet(tmp_path / "words")[columns].sort_values(["recording_id", "start"], ignore_index=True)
    theirs = pd.read_parquet(ray_store / "words")[columns].sort_values(["recording_id", "start"], ignore_index=True)
    pd.testing.assert_frame_equal(ours, theirs)
