"""``bwc rescore``: after a model changes, redo only the stages it affects, for only the recordings they produced.

The catalog records which model versions produced every stage's output. Against the versions configured now:

- **speech** outputs made by another VAD, whisper or pyannote version: the original is hashed again (it must be the
  content the catalog has; a changed original is a loud failure, never silently reprocessed), then runs through
  speech and language again, as in ``bwc run``;
- **scoring** outputs made by another respect, act-rule or escalation version (and speech up to date): the stored
  utterances, with their acoustics, go back through attribution and scoring alone; no audio is decoded.

Outputs replace the recording's parts of each table atomically; the catalog then records the new versions. A killed
rescore leaves the rest outdated, and the next rescore (or run) picks it up.

Example
-------
>>> summary = rescore_store(Path("/data/bwc-store"), load_config(Path("/opt/bwc-models")))   # doctest: +SKIP
>>> summary.speech, summary.scoring                                                        # doctest: +SKIP
(0, 1250)
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bwc.catalog import FAILED, PENDING, Catalog
from bwc.config import BwcConfig
from bwc.ingest import MetadataTable
from bwc.records import Encounter, Failure, Recording, TranscriptLine
from bwc.store import Store, acoustics_from_row, recording_from_row
from models.locate import ResolvedModels
from pipelines.flagging import flag_and_clip
from pipelines.run import (
    CUSTODY,
    SCORING,
    SPEECH,
    OutputWriter,
    failure_report,
    failure_rows,
    ingest_paths,
    process,
    recover_interrupted,
    store_lock,
    verify_originals,
)
from pipelines.workers import StoredTranscript, ray_session, speech_version

STAGES = (SPEECH, SCORING)


@dataclass(frozen=True)
class RescorePlan:
    """What a rescore would redo."""

    speech: tuple[str, ...]  # sha256 of recordings whose speech outputs are outdated (scoring follows)
    scoring: tuple[str, ...]  # sha256 of recordings whose scores alone are outdated
    speech_version: str  # the speech models' version now
    scoring_version: str  # the scoring models' version now


@dataclass(frozen=True)
class RescoreSummary:
    """What a rescore did."""

    run_id: str  # as for a run; also the report's name
    plan: RescorePlan  # what was outdated
    redone: tuple[str, ...]  # recording ids rewritten
    failures: tuple[Failure, ...]  # recordings that could not be redone, with reasons
    wall_s: float  # wall seconds
    report_path: str = ""  # where the JSON report was written

    def as_report(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": "rescore",
            "speech_outdated": len(self.plan.speech),
            "scoring_outdated": len(self.plan.scoring),
            "speech_version": self.plan.speech_version,
            "scoring_version": self.plan.scoring_version,
            "processed": len(self.redone),
            "failed": len(self.failures),
            "failures": failure_report(self.failures),
            "wall_s": self.wall_s,
        }


def plan_rescore(catalog: Catalog, config: BwcConfig, stages: tuple[str, ...] = STAGES) -> RescorePlan:
    """Which recordings' stages were produced by other model versions than those configured now."""
    from pipelines.language import LanguageStage

    speech_now = speech_version(ResolvedModels.resolve(config).versions())
    scoring_now = LanguageStage.from_config(config).model_version
    speech = tuple(row.sha256 for row in catalog.outdated(SPEECH, speech_now)) if SPEECH in stages else ()
    scoring = (
        tuple(row.sha256 for row in catalog.outdated(SCORING, scoring_now) if row.sha256 not in set(speech))
        if SCORING in stages
        else ()
    )
    return RescorePlan(speech=speech, scoring=scoring, speech_version=speech_now, scoring_version=scoring_now)


def rescore_store(
    store_dir: Path,
    config: BwcConfig,
    address: str | None = None,
    console: Console | None = None,
    stages: tuple[str, ...] = STAGES,
    dry_run: bool = False,
) -> RescoreSummary:
    """Redo the outdated stages of ``store_dir`` (see the module docstring); with ``dry_run``, only plan."""
    console = console or Console(stderr=True)
    started = time.perf_counter()
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    models = ResolvedModels.resolve(config)
    store = Store(store_dir)
    with store_lock(store.root, config.run.lock_wait_s):
        catalog = Catalog.for_store(store.root, config.run.catalog_url)
        try:
            recover_interrupted(store, catalog, console)
            plan = plan_rescore(catalog, config, stages)
            if dry_run:
                return RescoreSummary(run_id, plan, (), (), time.perf_counter() - started)
            catalog.begin_run(run_id, socket.gethostname(), os.getpid())
            status = "failed"
            try:
                summary = _rescore(run_id, plan, store, catalog, config, models, address, console, started)
                status = "completed_with_failures" if summary.failures else "completed"
                return summary
            finally:
                catalog.end_run(run_id, status)
        finally:
            catalog.close()


def _rescore(
    run_id: str,
    plan: RescorePlan,
    store: Store,
    catalog: Catalog,
    config: BwcConfig,
    models: ResolvedModels,
    address: str | None,
    console: Console,
    started: float,
) -> RescoreSummary:
    stored = {row["sha256"]: recording_from_row(row) for row in store.read_rows("recordings")}
    writer = OutputWriter(store, catalog, run_id, console)
    with ray_session(address, console, config.run.executor):
        recordings, unchanged_failures = _originals_again([stored[s] for s in plan.speech if s in stored], config)
        for failed in unchanged_failures:
            writer((failed, None, {}))
        for recording in recordings:  # a crash from here on leaves them pending: the next run redoes them
            catalog.mark(recording.sha256, SPEECH, PENDING, run_id, path=recording.path)
        process(recordings, config, models, writer, console, "speech")

        transcripts = _stored_transcripts(store, [stored[s] for s in plan.scoring if s in stored])
        process(transcripts, config, None, writer, console, "scoring")
    missing = [s for s in (*plan.speech, *plan.scoring) if s not in stored]
    for sha256 in missing:
        console.print(f"[yellow]not in the store's recordings table[/] {sha256}: left as it is")
    flagging = flag_and_clip(store.root, config, catalog=catalog, run_id=run_id)
    console.print(flagging.describe(), markup=False, highlight=False)
    # The originals decoded again are hashed once more, as at the end of a run.
    custody_failures = [*writer.custody_failures, *verify_originals(recordings, writer.custody, writer.who, run_id)]
    for failed in custody_failures:
        catalog.mark(failed.sha256 or "", CUSTODY, FAILED, run_id, reason=failed.reason, path=failed.path)
        console.print(f"[bold red]CUSTODY[/] {failed.path}: {failed.reason}", highlight=False)
    store.write_current_failures(failure_rows(catalog))
    wall_s = time.perf_counter() - started
    failures = (*writer.failures, *flagging.failures, *custody_failures)
    summary = RescoreSummary(run_id, plan, tuple(writer.processed), failures, wall_s)
    report_path = store.write_report(run_id, summary.as_report())
    return replace(summary, report_path=str(report_path))


def _originals_again(recordings: list[Recording], config: BwcConfig) -> tuple[list[Recording], list[Failure]]:
    """Hash the originals again; those whose bytes changed since ingest fail, the rest keep their stored metadata."""
    found, failures = ingest_paths([Path(r.path) for r in recordings], MetadataTable.empty(), config)
    by_path = {r.path: r for r in recordings}
    again: list[Recording] = []
    for recording in found:
        before = by_path[recording.path]
        if recording.sha256 != before.sha256:
            failures.append(
                Failure(
                    path=before.path,
                    sha256=before.sha256,
                    stage=SPEECH,
                    reason=f"the original changed since ingest: sha256 {recording.sha256[:16]}…, "
                    f"catalogued {before.sha256[:16]}…; not reprocessed",
                    last_attempt_at=datetime.now(UTC),
                )
            )
        else:
            again.append(replace(recording, metadata=before.metadata))
    failures = [replace(f, sha256=by_path[f.path].sha256) if f.path in by_path else f for f in failures]
    return again, failures


def _stored_transcripts(store: Store, recordings: list[Recording]) -> list[StoredTranscript]:
    """Each recording's stored utterances as an encounter whose roles are still to be attributed."""
    if not recordings:
        return []
    rows_by_recording: dict[str, list[dict[str, Any]]] = {r.recording_id: [] for r in recordings}
    for row in store.read_rows("utterances", list(rows_by_recording)):
        rows_by_recording[row["recording_id"]].append(row)
    transcripts = []
    for recording in recordings:
        rows = sorted(rows_by_recording[recording.recording_id], key=lambda row: _utterance_index(row["utterance_id"]))
        lines = tuple(
            TranscriptLine(
                encounter_id=recording.recording_id,
                turn=turn,
                role="unknown",
                text=row["text"],
                utterance_id=row["utterance_id"],
                speaker=row["speaker"],
                start=row["start"],
                end=row["end"],
                acoustics=acoustics_from_row(row),
                n_words=row["n_words"],
            )
            for turn, row in enumerate(rows, start=1)
        )
        encounter = Encounter(
            encounter_id=recording.recording_id,
            lines=lines,
            officer_id=recording.metadata.officer_id,
            recorded_at=recording.metadata.recorded_at,
            recording_id=recording.recording_id,
        )
        transcripts.append(StoredTranscript(recording=recording, encounter=encounter))
    return transcripts


def _utterance_index(utterance_id: str) -> int:
    """Utterance ids are ``<recording_id>-<index>``: order by the number, not the text ("-10" after "-9")."""
    return int(utterance_id.rsplit("-", 1)[1])
