"""``bwc rescore``: a changed scoring model redoes scoring only, from the stored utterances; a changed speech model
redoes speech and scoring from the originals; an original that changed since ingest is refused loudly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bwc.audio import SAMPLE_RATE
from bwc.catalog import Catalog, StageRow
from bwc.demo import Line, render_scene
from models.tiny import make_tiny_whisper
from scoring.escalation import EscalationModel
from tests.conftest import encode

pytestmark = pytest.mark.slow


def _bwc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bwc.cli", *args], capture_output=True, text=True, timeout=600)


def _mtimes(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in folder.glob("part-*.parquet")}


def _catalog_versions(store: Path, stage: str) -> list[str]:
    """The model versions the catalog holds for ``stage`` of every recording done."""
    catalog = Catalog.for_store(store)
    with Session(catalog.engine) as session:
        rows = session.scalars(select(StageRow).where(StageRow.stage == stage, StageRow.state == "done"))
        versions = [row.model_version or "" for row in rows]
    catalog.close()
    return versions


def test_rescore_redoes_only_what_a_model_change_affects(tmp_path: Path, tiny_models: Path) -> None:
    intake, store = tmp_path / "intake", tmp_path / "store"
    intake.mkdir()
    for seed in range(3):
        audio, _ = render_scene(
            [Line("officer", "Good evening, sir. I stopped you for speeding.", 0.0), Line("civilian", "Okay.", 0.8)],
            lead_in_s=1.0,
            tail_s=1.0,
            seed=40 + seed,
        )
        encode(intake / f"EV{seed}.wav", audio, SAMPLE_RATE, "-c:a", "pcm_s16le")
    models = ["--models", str(tiny_models)]
    first = _bwc("run", str(intake), "--store", str(store), *models, "--settle", "0")
    assert first.returncode == 0, first.stderr[-3000:]

    nothing = _bwc("rescore", "--store", str(store), *models, "--dry-run")
    assert nothing.returncode == 0, nothing.stderr[-3000:]
    assert "speech 0 recordings" in nothing.stdout + nothing.stderr
    assert "scoring 0 more" in nothing.stdout + nothing.stderr

    # A department fits its own escalation model: scores are outdated, transcripts are not.
    escalation = tmp_path / "escalation.json"
    prior = EscalationModel.default()
    EscalationModel(
        weights=dict(prior.weights), intercept=prior.intercept + 1.0, version="escalation-fitted-test"
    ).save(escalation)
    config = tmp_path / "bwc.yaml"
    config.write_text(f"scoring:\n  escalation_model: {escalation}\n")
    words_before, scores_before = _mtimes(store / "words"), pd.read_parquet(store / "encounter_scores")
    scoring = _bwc("rescore", "--store", str(store), *models, "--config", str(config))
    assert scoring.returncode == 0, scoring.stderr[-3000:]
    assert "speech 0 recordings" in scoring.stderr and "scoring 3 more" in scoring.stderr
    scores_after = pd.read_parquet(store / "encounter_scores").set_index("recording_id")
    assert len(scores_after) == 3 and scores_after.index.is_unique
    assert all("escalation-fitted-test" in version for version in scores_after.model_version)
    old_escalation = scores_before.set_index("recording_id").escalation
    assert (scores_after.escalation.loc[old_escalation.index] != old_escalation).all()  # the new model was used
    assert _mtimes(store / "words") == words_before  # speech untouched: no audio decoded, no transcript rewritten
    assert all("escalation-fitted-test" in version for version in _catalog_versions(store, "scoring"))

    # A new whisper checkpoint: speech (and then scoring) is redone for every recording whose original is intact.
    whisper_v2 = tmp_path / "whisper-v2.pt"
    make_tiny_whisper(whisper_v2, seed=7)
    config.write_text(f"scoring:\n  escalation_model: {escalation}\nwhisper:\n  model: {whisper_v2}\n")
    changed = intake / "EV2.wav"
    changed.write_bytes(changed.read_bytes()[:-3200])  # this original no longer has the catalogued content
    speech = _bwc("rescore", "--store", str(store), *models, "--config", str(config))
    assert speech.returncode == 3, speech.stderr[-3000:]
    assert "speech 3 recordings" in speech.stderr
    assert "the original changed since ingest" in " ".join(speech.stderr.split())  # rich wraps long lines
    words_after = _mtimes(store / "words")
    assert sum(words_after[name] != words_before[name] for name in words_before) == 2
    assert sum("whisper-v2.pt" in version for version in _catalog_versions(store, "speech")) == 2
    report = json.loads(max((store / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime).read_text())
    assert report["kind"] == "rescore" and report["processed"] == 2 and report["failed"] == 1
    failures = pd.read_parquet(store / "failures")
    assert list(failures.path) == [str(changed)]
    recordings = pd.read_parquet(store / "recordings")
    assert len(recordings) == 3 and recordings.recording_id.is_unique
