"""``bwc run`` on a real multi-node Ray cluster on loopback: a head and two worker nodes with custom resources,
bounded memory and token authentication (cluster/local.py). A driver without the token is refused; a worker node is
killed mid-job and the run still finishes every recording, each exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bwc.audio import SAMPLE_RATE
from bwc.demo import Line, render_scene
from cluster.local import LocalCluster, WorkerSpec
from tests.conftest import encode

pytestmark = pytest.mark.slow

RECORDINGS = 8
CLUSTER_CONFIG = """
run:
  speech_workers: 2
  cpus_per_speech_worker: 1
  speech_resources: {bwc_speech: 1}     # speech actors only on the worker nodes
  recordings_per_speech_call: 1         # outputs one by one, so that the node is lost between them
  scoring_workers: 1
  cpus_per_scoring_worker: 1
  scoring_resources: {bwc_language: 1}  # language actors on the head
  settle_s: 0
"""


def _intake(folder: Path) -> Path:
    folder.mkdir()
    for seed in range(RECORDINGS):
        audio, _ = render_scene(
            [Line("officer", "Good evening. May I see your license?", 0.0), Line("civilian", "Sure, officer.", 0.8)],
            lead_in_s=1.0 + 0.1 * seed,
            tail_s=1.0,
            seed=100 + seed,
        )
        encode(folder / f"EV{seed}.wav", audio, SAMPLE_RATE, "-c:a", "pcm_s16le")
    return folder


def _cluster() -> LocalCluster:
    worker = WorkerSpec(cpus=1, resources={"bwc_speech": 1}, memory_bytes=3 * 1024**3)
    return LocalCluster(workers=[worker, worker], head_cpus=1, head_resources={"bwc_language": 1})


def _bwc_run(intake: Path, store: Path, models: Path, config: Path, cluster: LocalCluster) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bwc.cli", "run", str(intake), "--store", str(store), "--models", str(models),
               "--config", str(config), "--address", cluster.address]  # fmt: skip
    return subprocess.Popen(
        command, env=cluster.driver_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_a_run_survives_losing_a_worker_node(tmp_path: Path, tiny_models: Path) -> None:
    intake, store = _intake(tmp_path / "intake"), tmp_path / "store"
    config = tmp_path / "cluster.yaml"
    config.write_text(CLUSTER_CONFIG)
    with _cluster() as cluster:
        _assert_refused_without_the_token(cluster)
        driver = _bwc_run(intake, store, tiny_models, config, cluster)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not list((store / "recordings").glob("part-*.parquet")):
            assert driver.poll() is None, driver.stdout.read() if driver.stdout else ""
            time.sleep(0.2)
        done_at_kill = len(list((store / "recordings").glob("part-*.parquet")))
        cluster.workers[1].kill()  # a worker node lost mid-job, with its speech actor and the objects it held
        output, _ = driver.communicate(timeout=600)
        assert driver.returncode == 0, output[-4000:]
    assert done_at_kill < RECORDINGS, "the node should be lost mid-job"

    report = json.loads(max((store / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime).read_text())
    assert report["processed"] == RECORDINGS and report["failed"] == 0
    recordings = pd.read_parquet(store / "recordings")
    assert len(recordings) == RECORDINGS and recordings.recording_id.is_unique
    for table in ("utterances", "utterance_scores"):
        frame = pd.read_parquet(store / table)
        assert not frame.duplicated("utterance_id").any(), table
        assert set(frame.recording_id) == set(recordings.recording_id), table
    assert len(pd.read_parquet(store / "encounter_scores")) == RECORDINGS


def _assert_refused_without_the_token(cluster: LocalCluster) -> None:
    """Token authentication is on for the whole cluster: a driver with another token cannot join."""
    env = cluster.driver_env() | {"RAY_AUTH_TOKEN": "not-the-token"}
    script = f"import ray; ray.init(address={cluster.address!r}); print('joined')"
    completed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert completed.returncode != 0 and "joined" not in completed.stdout
    assert "token" in completed.stderr.lower()
