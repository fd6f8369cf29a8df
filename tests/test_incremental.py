"""Nightly runs against one store: only new footage is processed, duplicates across nights are recorded, files
still being written wait, failures are retried up to a limit, and a second run on a busy store refuses."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from bwc.audio import SAMPLE_RATE
from bwc.demo import Line, render_scene
from tests.conftest import NOT_MEDIA, encode

pytestmark = pytest.mark.slow


def scene(seed: int):
    audio, _ = render_scene(
        [Line("officer", "Good evening. May I see your license?", 0.0), Line("civilian", "Sure, officer.", 0.8)],
        lead_in_s=1.5,
        tail_s=1.0,
        seed=seed,
    )
    return audio


def bwc_run(intake: Path, store: Path, models: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    completed = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "run", str(intake), "--store", str(store), "--models", str(models),
         "--settle", "0", *extra],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    reports = sorted((store / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return completed, json.loads(reports[-1].read_text()) if reports else {}


def test_nightly_runs_are_incremental(tmp_path: Path, tiny_models: Path) -> None:
    intake, store = tmp_path / "intake", tmp_path / "store"
    intake.mkdir()
    encode(intake / "EV1.wav", scene(1), SAMPLE_RATE, "-c:a", "pcm_s16le")
    encode(intake / "EV2.flac", scene(2), SAMPLE_RATE, "-c:a", "flac")
    (intake / "EV3.wav").write_bytes(NOT_MEDIA)  # corrupt

    # Night 1: two processed, one failure (attempt 1).
    night1, report = bwc_run(intake, store, tiny_models)
    assert night1.returncode == 3, night1.stderr[-2000:]
    assert (report["processed"], report["failed"], report["already_done"]) == (2, 1, 0)
    failures = pd.read_parquet(store / "failures")
    assert list(failures.path) == [str(intake / "EV3.wav")] and list(failures.attempts) == [1]

    # Night 2: new content, the same content under a new name, and a file still being written.
    encode(intake / "EV4.wav", scene(4), SAMPLE_RATE, "-c:a", "pcm_s16le")
    shutil.copy(intake / "EV1.wav", intake / "EV1-reexport.wav")
    night2, report = bwc_run(intake, store, tiny_models, "--metadata", str(_empty_export(tmp_path)))
    assert night2.returncode == 3
    assert report["processed"] == 1 and report["already_done"] == 2
    assert [Path(d["path"]).name for d in report["duplicates"]] == ["EV1-reexport.wav"]
    assert list(pd.read_parquet(store / "failures").attempts) == [2]  # retried, one row per failing file
    recordings = pd.read_parquet(store / "recordings")
    assert len(recordings) == 3 and recordings.recording_id.is_unique
    for table in ("utterances", "utterance_scores", "encounter_scores"):
        assert set(pd.read_parquet(store / table).recording_id) == set(recordings.recording_id), table

    # Night 3 with a settle time: a file modified just now waits; the corrupt file reaches its last attempt.
    encode(intake / "EV5.wav", scene(5), SAMPLE_RATE, "-c:a", "pcm_s16le")
    night3 = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "run", str(intake), "--store", str(store), "--models", str(tiny_models),
         "--settle", "3600"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = json.loads(max((store / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime).read_text())
    assert night3.returncode == 0, night3.stderr[-2000:]  # every file here is recent: all settle
    assert len(report["settling"]) == 6 and report["processed"] == 0

    night4, report = bwc_run(intake, store, tiny_models)
    assert night4.returncode == 3, night4.stderr[-2000:]
    assert report["processed"] == 1 and list(pd.read_parquet(store / "failures").attempts) == [3]
    # Night 5: the corrupt file has failed max_attempts (3) times: it is no longer tried, and nothing is left to do.
    night5, report = bwc_run(intake, store, tiny_models)
    assert night5.returncode == 0, night5.stderr[-2000:]
    assert report["processed"] == 0 and report["failed"] == 0
    assert [Path(p).name for p in report["given_up"]] == ["EV3.wav"]
    assert len(pd.read_parquet(store / "recordings")) == 4


def _empty_export(folder: Path) -> Path:
    path = folder / "export.csv"
    path.write_text("file_name,evidence_id,officer_id,recorded_at\n")
    return path


def test_a_second_run_on_a_busy_store_refuses(tmp_path: Path, tiny_models: Path) -> None:
    from filelock import FileLock

    intake, store = tmp_path / "intake", tmp_path / "store"
    intake.mkdir()
    store.mkdir()
    encode(intake / "EV1.wav", scene(1), SAMPLE_RATE, "-c:a", "pcm_s16le")
    with FileLock(str(store / ".bwc-run.lock")):
        (store / ".bwc-run.owner").write_text("run on night-host pid 4242 since 2026-11-21 02:00:00 UTC\n")
        completed, _ = bwc_run(intake, store, tiny_models)
    assert completed.returncode == 1
    assert "is in use by run on night-host pid 4242" in completed.stderr
    assert not (store / "recordings").exists()


def test_a_run_killed_mid_batch_is_finished_by_the_next(tmp_path: Path, tiny_models: Path) -> None:
    intake, store = tmp_path / "intake", tmp_path / "store"
    intake.mkdir()
    for seed in range(4):
        encode(intake / f"EV{seed}.wav", scene(10 + seed), SAMPLE_RATE, "-c:a", "pcm_s16le")
    # one recording per speech call, so that outputs come one by one and a kill can land between them
    config = tmp_path / "one-at-a-time.yaml"
    config.write_text("run:\n  recordings_per_speech_call: 1\n")
    command = [sys.executable, "-m", "bwc.cli", "run", str(intake), "--store", str(store), "--models",
               str(tiny_models), "--settle", "0", "--config", str(config)]  # fmt: skip
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((store / "recordings").glob("part-*.parquet")):
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)  # kill -9 of the driver, mid-batch
    driver.wait(timeout=60)
    # Done is what the catalog marked done: a kill between writing a recording's outputs and marking it (which a
    # loaded machine makes likely) leaves it pending, and the next run redoes it, rewriting the same parts.
    with sqlite3.connect(store / "catalog.sqlite") as connection:
        (done_before,) = connection.execute(
            "SELECT COUNT(*) FROM stages WHERE stage = 'scoring' AND state = 'done'"
        ).fetchone()
    assert 1 <= len(list((store / "recordings").glob("part-*.parquet"))) < 4, "the kill should land mid-batch"
    assert done_before < 4

    completed, report = bwc_run(intake, store, tiny_models, "--config", str(config))
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert report["processed"] == 4 - done_before and report["already_done"] == done_before
    recordings = pd.read_parquet(store / "recordings")
    assert len(recordings) == 4 and recordings.recording_id.is_unique
    for table in ("utterances", "words", "utterance_scores"):
        frame = pd.read_parquet(store / table)
        if table != "words":  # words have no key of their own: whisper can give one word twice at the same time
            assert frame.utterance_id.is_unique, table
        # a redone recording rewrote its own part: each recording's rows sit in exactly one part
        owners = [set(pd.read_parquet(part).recording_id) for part in (store / table).glob("part-*.parquet")]
        assert sum(len(owner) for owner in owners) == len(set().union(*owners)), table
        assert set(frame.recording_id) == set(recordings.recording_id), table
    assert len(pd.read_parquet(store / "encounter_scores")) == 4
    assert not [p for p in store.rglob("*.tmp")], "no temporary files are left"
    from bwc.catalog import Catalog, RunRow

    catalog = Catalog.for_store(store)
    with Session(catalog.engine) as session:
        statuses = sorted(run.status for run in session.query(RunRow))
    assert statuses == ["completed", "interrupted"]
