"""``bwc run``: ingest, speech and language as Ray Data passes, on a local Ray instance or an existing cluster.

1. **ingest** — Ray tasks hash and probe every original in parallel; the driver skips what the catalog has finished,
   drops repeated content (same SHA-256 under another name) and joins the evidence metadata.
2. **speech → language** — two actor pools (:mod:`pipelines.workers`): speech actors (VAD, whisper, pyannote; GPUs
   where configured) feed language actors (attribution and scoring, on CPUs). Results stream back to the driver,
   which writes each recording's outputs as it arrives and then marks it done in the catalog.

A file that fails at any stage becomes a :class:`~bwc.records.Failure` with a one-line reason; the batch goes on.
A pass that loses a node is resubmitted for the recordings that did not come back; a driver that is killed leaves
them pending in the catalog, and the next run finishes them.

Example
-------
>>> summary = run_batch(["/intake"], Path("/data/store"), load_config(Path("/opt/bwc-models")))   # doctest: +SKIP
>>> summary.failures                                                                                # doctest: +SKIP
()
"""

from __future__ import annotations

import os
import pickle
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import ray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bwc.audio import require_ffmpeg, sha256_file
from bwc.catalog import DONE, FAILED, PENDING, Catalog, StageState
from bwc.config import BwcConfig
from bwc.custody import (
    INGEST_FAILED,
    INGESTED,
    PROCESSED,
    PROCESSING_FAILED,
    SEEN_AGAIN,
    VERIFIED,
    VERIFY_FAILED,
    CustodyLog,
    actor,
)
from bwc.ingest import IngestError, MetadataTable, discover, ingest_file
from bwc.records import Failure, Recording, ScoredEncounter, SpeechResult, StageTimings
from bwc.store import Store
from models.locate import ResolvedModels
from models.respect.artifact import require_artifact
from pipelines.flagging import CUSTODY_STAGE, custody_entry, flag_and_clip
from pipelines.workers import (
    Item,
    Output,
    StoredTranscript,
    custom_resources,
    failure,
    item_key,
    one_line,
    ray_session,
    speech_version,
    stream,
)

INGEST, SPEECH, SCORING = "ingest", "speech", "scoring"  # catalog stages
CUSTODY = CUSTODY_STAGE  # custody alarms: originals changed or gone, logs that could not be extended
VERIFY_THREADS = 4  # originals re-hashed at once at the end of a run (hashing waits on the disk)
LOCK_FILE = ".bwc-run.lock"  # held (flock) by the run using a store; released by the OS if the run dies


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the closing summary and the JSON report."""

    run_id: str  # "<UTC time>-<random>", also the report's file name
    files_seen: int  # media files found under the inputs
    processed: tuple[str, ...]  # recording ids written in this run
    duplicates: tuple[tuple[str, str], ...]  # (path, path of the same content already taken) pairs
    failures: tuple[Failure, ...]  # files that failed, with reasons
    audio_s: float  # audio seconds processed
    speech_s: float  # seconds of voice activity in them
    wall_s: float  # wall seconds of the whole run
    stage_s: dict[str, float] = field(default_factory=dict)  # summed seconds per stage over recordings
    model_versions: dict[str, str] = field(default_factory=dict)  # model name -> version and weights hash
    report_path: str = ""  # where the JSON report was written
    already_done: tuple[str, ...] = ()  # paths skipped: unchanged and complete in the catalog
    settling: tuple[str, ...] = ()  # paths left for the next run: modified within the settle time
    given_up: tuple[str, ...] = ()  # paths skipped: failed run.max_attempts times
    resources: dict[str, Any] = field(default_factory=dict)  # what the stages ran on (for `bwc plan`)
    flags: dict[str, Any] = field(default_factory=dict)  # flag and clip counts after the run
    custody_failures: tuple[Failure, ...] = ()  # originals changed or gone by the end of the run, damaged logs
    verified: int = 0  # originals whose SHA-256 was checked again at the end of the run

    @property
    def realtime_factor(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0

    def as_report(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "files_seen": self.files_seen,
            "files_new": self.files_seen - len(self.already_done) - len(self.settling) - len(self.given_up),
            "already_done": len(self.already_done),
            "settling": list(self.settling),
            "given_up": list(self.given_up),
            "processed": len(self.processed),
            "duplicates": [{"path": a, "same_as": b} for a, b in self.duplicates],
            "failed": len(self.failures),
            "failures": failure_report(self.failures),
            "audio_hours": self.audio_s / 3600,
            "speech_hours": self.speech_s / 3600,
            "wall_s": self.wall_s,
            "x_realtime": self.realtime_factor,
            "stage_s": self.stage_s,
            "model_versions": self.model_versions,
            "resources": self.resources,
            "flags": self.flags,
            "originals_verified": self.verified,
            "custody_failures": failure_report(self.custody_failures),
        }


def run_batch(
    inputs: Sequence[str | Path],
    store_dir: Path,
    config: BwcConfig,
    metadata_csv: Path | None = None,
    address: str | None = None,
    console: Console | None = None,
) -> RunSummary:
    """Process what is new under ``inputs`` into ``store_dir``; what the catalog already has done is skipped.

    Raises
    ------
    models.locate.ModelNotFoundError
        Before anything starts, when weights are missing.
    StoreBusyError
        When another run holds the store (after waiting ``run.lock_wait_s``).
    """
    console = console or Console(stderr=True)
    started = time.perf_counter()
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    require_ffmpeg()
    models = ResolvedModels.resolve(config)  # fail in seconds, before Ray starts, when weights are missing
    require_artifact(Path(config.scoring.respect_model) if config.scoring.respect_model else None)
    metadata = MetadataTable.from_csv(metadata_csv, config.metadata) if metadata_csv else MetadataTable.empty()
    paths = discover(inputs)
    store = Store(store_dir)
    with store_lock(store.root, config.run.lock_wait_s):
        catalog = Catalog.for_store(store.root, config.run.catalog_url)
        recover_interrupted(store, catalog, console)
        catalog.begin_run(run_id, socket.gethostname(), os.getpid())
        status = "failed"
        try:
            summary = _run(run_id, paths, store, catalog, config, models, metadata, address, console, started)
            status = (
                "custody_failed" if summary.custody_failures
                else "completed_with_failures" if summary.failures else "completed"
            )  # fmt: skip
            return summary
        finally:
            catalog.end_run(run_id, status)
            catalog.close()


def recover_interrupted(store: Store, catalog: Catalog, console: Console) -> None:
    """Clean up after runs that were killed: their hidden temporaries go, and they are recorded as interrupted.

    Call only while holding the store's lock: whoever left these is then gone.
    """
    for leftover in store.remove_stale_temporaries():
        console.print(f"[yellow]removed[/] {leftover}, left by an interrupted run")
    for interrupted in catalog.running():
        catalog.end_run(interrupted.run_id, "interrupted")
        console.print(f"[yellow]run {interrupted.run_id}[/] on {interrupted.host} was interrupted; finishing its work")


@dataclass
class _Plan:
    """What a run does with each discovered path."""

    ingest: list[Path] = field(default_factory=list)  # new or unfinished: hash, probe, process
    settling: list[str] = field(default_factory=list)  # modified within the settle time: next run
    done: list[str] = field(default_factory=list)  # unchanged and complete in the catalog
    given_up: list[str] = field(default_factory=list)  # failed max_attempts times in this version
    stats: dict[str, os.stat_result] = field(default_factory=dict)  # path -> stat at planning time


def _plan(paths: Sequence[Path], catalog: Catalog, config: BwcConfig) -> _Plan:
    plan = _Plan()
    now, limit = time.time(), config.run.max_attempts
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            plan.ingest.append(path)  # ingest reports why it cannot be read
            continue
        plan.stats[str(path)] = stat
        if now - stat.st_mtime < config.run.settle_s:
            plan.settling.append(str(path))
            continue
        if not catalog.todo(INGEST, [_file_key(path, stat)], None, limit):
            plan.given_up.append(str(path))
            continue
        sha256 = catalog.known_hash(str(path), stat.st_size, stat.st_mtime)
        if sha256 and not _unfinished(catalog, sha256, limit):
            failed = any((catalog.state(sha256, stage) or _NONE).state == FAILED for stage in (SPEECH, SCORING))
            (plan.given_up if failed else plan.done).append(str(path))
            continue
        plan.ingest.append(path)
    return plan


def _run(
    run_id: str,
    paths: Sequence[Path],
    store: Store,
    catalog: Catalog,
    config: BwcConfig,
    models: ResolvedModels,
    metadata: MetadataTable,
    address: str | None,
    console: Console,
    started: float,
) -> RunSummary:
    limit = config.run.max_attempts
    plan = _plan(paths, catalog, config)
    for path in plan.settling:
        console.print(f"[yellow]settling[/] {path} changed less than {config.run.settle_s:.0f} s ago: next run")
    failures: list[Failure] = []
    custody_failures: list[Failure] = []
    duplicates: list[tuple[str, str]] = []
    custody, who = CustodyLog(store.root, catalog), actor()

    def record(sha256: str, path: str, event: str, /, **detail: Any) -> None:
        custody_entry(custody, custody_failures, sha256, path, event, who, run=run_id, **detail)

    with ray_session(address, console, config.run.executor):
        recordings, ingest_failures = ingest_paths(plan.ingest, metadata, config)
        for failed in ingest_failures:
            stat = plan.stats.get(failed.path)
            key = _file_key(Path(failed.path), stat) if stat else f"file:{failed.path}"
            state = catalog.mark(key, INGEST, FAILED, run_id, reason=failed.reason, path=failed.path)
            failures.append(replace(failed, attempts=state.attempts))
            if failed.sha256:  # read and hashed, then refused: its content's log says so
                record(failed.sha256, failed.path, INGEST_FAILED, path=failed.path, reason=failed.reason)
        unique: dict[str, Recording] = {}
        for recording in recordings:
            stat = plan.stats.get(recording.path)
            if stat is not None:
                catalog.record_file(recording.path, stat.st_size, stat.st_mtime, recording.sha256)
            first = catalog.original(recording.sha256)
            if recording.sha256 in unique:
                duplicates.append((recording.path, unique[recording.sha256].path))
                record(recording.sha256, recording.path, SEEN_AGAIN, path=recording.path,
                       same_as=unique[recording.sha256].path)  # fmt: skip
            elif first is not None and first != recording.path and not _unfinished(catalog, recording.sha256, limit):
                duplicates.append((recording.path, first))
                record(recording.sha256, recording.path, SEEN_AGAIN, path=recording.path, same_as=first)
            else:
                if catalog.add_original(recording.sha256, recording.path):
                    record(recording.sha256, recording.path, INGESTED, **_ingest_facts(recording))
                if _unfinished(catalog, recording.sha256, limit):
                    unique[recording.sha256] = recording
                else:
                    plan.done.append(recording.path)
        for path, original in duplicates:
            console.print(f"[yellow]duplicate[/] {path} has the same content as {original}: processed once")
        for recording in unique.values():  # a crash from here on leaves them pending: the next run redoes them
            catalog.mark(recording.sha256, SPEECH, PENDING, run_id, path=recording.path)

        writer = OutputWriter(store, catalog, run_id, console, custody)
        process(list(unique.values()), config, models, writer, console, "speech")
    failures += writer.failures
    flagging = flag_and_clip(store.root, config, catalog=catalog, run_id=run_id)
    console.print(flagging.describe(), markup=False, highlight=False)
    failures += flagging.failures

    # The originals this run read are hashed again: a change or a disappearance during the run is an alarm.
    custody_failures += writer.custody_failures
    custody_failures += verify_originals(recordings, custody, who, run_id)
    for failed in custody_failures:
        if failed.sha256:
            catalog.mark(failed.sha256, CUSTODY, FAILED, run_id, reason=failed.reason, path=failed.path)
        console.print(f"[bold red]CUSTODY[/] {failed.path}: {failed.reason}", highlight=False)
    failures += custody_failures
    custody_failures += [failed for failed in flagging.failures if failed.stage == CUSTODY]  # recorded there

    store.write_current_failures(failure_rows(catalog))
    summary = RunSummary(
        run_id=run_id,
        files_seen=len(paths),
        processed=tuple(writer.processed),
        duplicates=tuple(duplicates),
        failures=tuple(failures),
        audio_s=writer.audio_s,
        speech_s=writer.speech_s,
        wall_s=time.perf_counter() - started,
        stage_s={name: round(value, 3) for name, value in asdict(writer.stage_totals).items()},
        model_versions=writer.model_versions,
        already_done=tuple(plan.done),
        settling=tuple(plan.settling),
        given_up=tuple(plan.given_up),
        resources=stage_resources(config),
        flags=flagging.as_report(),
        custody_failures=tuple(custody_failures),
        verified=len({recording.sha256 for recording in recordings}),
    )
    report_path = store.write_report(run_id, summary.as_report())
    return replace(summary, report_path=str(report_path))


class OutputWriter:
    """Writes each pass output to the store and the catalog as it arrives, and keeps the run's tallies.

    Outputs are written, then marked done in the catalog: a crash between the two leaves the stage pending, and the
    next run rewrites the same part files (named by recording id), so nothing is ever present twice.
    """

    def __init__(
        self, store: Store, catalog: Catalog, run_id: str, console: Console, custody: CustodyLog | None = None
    ) -> None:
        self.store, self.catalog, self.run_id, self.console = store, catalog, run_id, console
        self.custody = custody or CustodyLog(store.root, catalog)
        self.who = actor()
        self.custody_failures: list[Failure] = []  # logs that could not be extended
        self.processed: list[str] = []  # recording ids written
        self.failures: list[Failure] = []  # with their attempt counts
        self.audio_s = self.speech_s = 0.0
        self.stage_totals = StageTimings()
        self.model_versions: dict[str, str] = {}

    def __call__(self, output: Output) -> None:
        item, scored, versions = output
        self.model_versions = versions
        if isinstance(item, Failure):
            self._fail(item, SPEECH, speech_version(versions))
        elif isinstance(item, SpeechResult):
            self._speech(item, scored, versions)
        else:
            self._rescored(item, scored, versions)

    def _speech(self, result: SpeechResult, scored: ScoredEncounter | Failure | None, versions: dict[str, str]) -> None:
        recording, version = result.recording, speech_version(versions)
        try:
            if isinstance(scored, ScoredEncounter):
                self.store.write_scores(recording.recording_id, [scored])
            self.store.write_speech_result(result, processed_at=datetime.now(UTC))
        except OSError as error:
            self._fail(failure(recording.path, recording.sha256, "write", error), SPEECH, version)
            return
        self.catalog.mark(recording.sha256, SPEECH, DONE, self.run_id, version, path=recording.path)
        self._record(recording.sha256, recording.path, PROCESSED, stage=SPEECH, models=_speech_models(versions),
                     recording_id=recording.recording_id, utterances=len(result.utterances),
                     words=len(result.words), speech_s=round(result.speech_s, 3))  # fmt: skip
        self._scoring_state(recording, scored, versions.get("scoring"))
        self.processed.append(recording.recording_id)
        self.audio_s += recording.audio.duration_s
        self.speech_s += result.speech_s
        self.stage_totals = _add_timings(self.stage_totals, result.timings)

    def _rescored(
        self, item: StoredTranscript, scored: ScoredEncounter | Failure | None, versions: dict[str, str]
    ) -> None:
        recording = item.recording
        if isinstance(scored, ScoredEncounter):
            try:
                self.store.write_scores(recording.recording_id, [scored])
            except OSError as error:
                self._fail(failure(recording.path, recording.sha256, "write", error), SCORING, versions.get("scoring"))
                return
        self._scoring_state(recording, scored, versions.get("scoring"))
        self.processed.append(recording.recording_id)

    def _scoring_state(
        self, recording: Recording, scored: ScoredEncounter | Failure | None, version: str | None
    ) -> None:
        if isinstance(scored, Failure):
            self._fail(scored, SCORING, version)
        else:
            self.catalog.mark(recording.sha256, SCORING, DONE, self.run_id, version, path=recording.path)
            self._record(recording.sha256, recording.path, PROCESSED, stage=SCORING, models={SCORING: version},
                         recording_id=recording.recording_id)  # fmt: skip

    def _fail(self, failed: Failure, stage: str, version: str | None) -> None:
        state = self.catalog.mark(failed.sha256 or "", stage, FAILED, self.run_id, version, failed.reason,
                                  failed.path)  # fmt: skip
        self.failures.append(replace(failed, attempts=state.attempts))
        self.console.print(f"[red]failed[/] [{failed.stage}] {failed.path}: {failed.reason}")
        if failed.sha256:
            self._record(failed.sha256, failed.path, PROCESSING_FAILED, stage=stage, models=version,
                         reason=failed.reason)  # fmt: skip

    def _record(self, sha256: str, path: str, event: str, /, **detail: Any) -> None:
        custody_entry(self.custody, self.custody_failures, sha256, path, event, self.who, run=self.run_id, **detail)


def stage_resources(config: BwcConfig) -> dict[str, Any]:
    """What each speech and language actor was given: with the per-stage seconds, a measured throughput per CPU
    core and per GPU (``bwc plan``)."""
    run = config.run
    on_gpu = run.gpus_per_speech_worker > 0 and run.device != "cpu"
    local = run.executor == "local"  # one speech and one language worker in turn, each with every core
    cores = float(os.cpu_count() or 1)
    return {
        "executor": run.executor,
        "speech_device": "cuda" if on_gpu else "cpu",
        "speech_workers": 1 if local else run.speech_workers,
        "cpus_per_speech_worker": cores if local else run.cpus_per_speech_worker,
        "gpus_per_speech_worker": run.gpus_per_speech_worker if on_gpu else 0.0,
        "scoring_workers": 1 if local else run.scoring_workers,
        "cpus_per_scoring_worker": cores if local else run.cpus_per_scoring_worker,
        "whisper": config.whisper.model,
        "diarization": config.diarization.pipeline,
    }


class PassLostError(RuntimeError):
    """A pass kept losing workers or nodes; what it did not finish stays pending for the next run."""


def process(
    items: Sequence[Item],
    config: BwcConfig,
    models: ResolvedModels | None,
    write: Callable[[Output], None],
    console: Console,
    label: str,
) -> None:
    """Stream ``items`` through the actors and ``write`` each output once.

    When the infrastructure fails mid-pass (a node lost with actors and objects on it), the pass is resubmitted for
    the items whose output never arrived, up to ``run.resubmissions`` times; an output that arrives twice (a retried
    task whose first try had already got through) is written once.
    """
    remaining = {item_key(item): item for item in items}
    with _progress(console) as progress:
        task = progress.add_task(label, total=len(remaining))
        for attempt in range(config.run.resubmissions + 1):
            try:
                for output in stream(list(remaining.values()), config, models):
                    key = item_key(output[0])
                    if remaining.pop(key, None) is None:
                        continue  # already written
                    write(output)
                    progress.advance(task)
                return
            except ray.exceptions.RayError as error:
                if attempt == config.run.resubmissions:
                    raise PassLostError(
                        f"the {label} pass failed {attempt + 1} times ({type(error).__name__}: {one_line(error)}); "
                        f"{len(remaining)} recordings stay pending for the next run"
                    ) from error
                console.print(
                    f"[yellow]{label} pass interrupted[/] ({type(error).__name__}: {one_line(error)[:200]}); "
                    f"resubmitting the {len(remaining)} recordings not yet finished"
                )


_NONE = StageState(state="", attempts=0, reason=None, model_version=None)


def _unfinished(catalog: Catalog, sha256: str, max_attempts: int) -> bool:
    return bool(
        catalog.todo(SPEECH, [sha256], None, max_attempts) or catalog.todo(SCORING, [sha256], None, max_attempts)
    )


def _file_key(path: Path, stat: os.stat_result) -> str:
    """Catalog key of a file that could not be ingested: its path and version (a replaced file is tried afresh)."""
    return f"file:{path}:{stat.st_size}:{stat.st_mtime_ns}"


def failure_report(failures: Sequence[Failure]) -> list[dict[str, Any]]:
    """Failures as a run report lists them."""
    return [{"path": f.path, "sha256": f.sha256, "stage": f.stage, "reason": f.reason} for f in failures]


def failure_rows(catalog: Catalog) -> list[Failure]:
    return [
        Failure(
            path=row.path or "",
            sha256=None if row.sha256.startswith("file:") else row.sha256,
            stage=row.stage,
            reason=row.reason or "",
            attempts=row.attempts,
            last_attempt_at=row.updated_at,
        )
        for row in catalog.failures()
    ]


def ingest_paths(
    paths: Sequence[Path], metadata: MetadataTable, config: BwcConfig
) -> tuple[list[Recording], list[Failure]]:
    """Hash and probe ``paths`` in parallel (Ray tasks, or threads with the local executor); recordings sorted by
    path, and the files that failed."""
    if not paths:
        return [], []
    rows = [{"path": str(path)} for path in paths]
    max_size = int(config.run.max_file_size) if config.run.max_file_size is not None else None
    ingest = partial(_ingest_row, metadata=metadata, max_duration_s=config.run.max_duration_s, max_size_bytes=max_size)
    if config.run.executor == "local":  # hashing and ffprobe wait on I/O and a child process: threads suffice
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            outcomes = [pickle.loads(row["outcome"]) for row in pool.map(ingest, rows)]
    else:
        dataset = ray.data.from_items(rows, override_num_blocks=len(paths)).map(
            ingest, num_cpus=config.run.ingest_cpus, **custom_resources(config.run.ingest_resources)
        )
        outcomes = [pickle.loads(row["outcome"]) for row in dataset.iter_rows()]
    recordings, failures = [], []
    for outcome in outcomes:
        (failures if isinstance(outcome, Failure) else recordings).append(outcome)
    recordings.sort(key=lambda recording: recording.path)
    return recordings, failures


def _ingest_row(
    row: dict[str, Any], metadata: MetadataTable, max_duration_s: float | None, max_size_bytes: int | None
) -> dict[str, Any]:
    try:
        outcome: Recording | Failure = ingest_file(row["path"], metadata, max_duration_s, max_size_bytes)
    except IngestError as error:
        outcome = failure(row["path"], error.sha256, "ingest", error)
    return {"outcome": pickle.dumps(outcome)}


class StoreBusyError(RuntimeError):
    """Another run holds the store."""


class store_lock:
    """Hold the store's run lock for the duration of a run; wait up to ``wait_s`` for it, then refuse.

    The lock is an OS file lock, so a run killed with SIGKILL releases it with its process and the next run goes on.
    """

    def __init__(self, root: Path, wait_s: float) -> None:
        from filelock import FileLock

        self.path = root / LOCK_FILE
        self.wait_s = wait_s
        self.lock = FileLock(str(self.path))

    def __enter__(self) -> store_lock:
        from filelock import Timeout

        try:
            self.lock.acquire(timeout=self.wait_s)
        except Timeout:
            holder = self.path.with_suffix(".owner")
            owner = holder.read_text().strip() if holder.is_file() else "another bwc run"
            raise StoreBusyError(
                f"{self.path.parent} is in use by {owner}; this run refuses to start (set run.lock_wait_s to wait)"
            ) from None
        self.path.with_suffix(".owner").write_text(
            f"run on {socket.gethostname()} pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n"
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.lock.release()


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _add_timings(total: StageTimings, more: StageTimings) -> StageTimings:
    return StageTimings(**{name: value + getattr(more, name) for name, value in asdict(total).items()})


def verify_originals(recordings: Sequence[Recording], custody: CustodyLog, who: str, run_id: str) -> list[Failure]:
    """Hash every original a run read once more; each content's custody log records the outcome.

    Returns the originals that changed or disappeared (and logs that could not be extended), as ``custody``
    failures.
    """
    by_content: dict[str, list[str]] = {}
    for recording in recordings:
        by_content.setdefault(recording.sha256, []).append(recording.path)
    paths = sorted({path for found in by_content.values() for path in found})
    with ThreadPoolExecutor(max_workers=VERIFY_THREADS) as pool:
        now = dict(zip(paths, pool.map(_hash_or_reason, paths), strict=True))
    failures: list[Failure] = []
    for sha256, found in sorted(by_content.items()):
        problems = {path: now[path] for path in found if now[path] != sha256}
        if not problems:
            custody_entry(custody, failures, sha256, found[0], VERIFIED, who, run=run_id, paths=found)
            continue
        for path, outcome in problems.items():
            if outcome.startswith("missing"):
                reason = f"the original disappeared during the run (ingested with SHA-256 {sha256}): {outcome[9:]}"
            else:
                reason = f"the original changed during the run: ingested with SHA-256 {sha256}, now {outcome}"
            custody_entry(custody, failures, sha256, path, VERIFY_FAILED, who, run=run_id, path=path, found=outcome)
            failures.append(Failure(path=path, sha256=sha256, stage=CUSTODY, reason=reason,
                                    last_attempt_at=datetime.now(UTC)))  # fmt: skip
    return failures


def _hash_or_reason(path: str) -> str:
    try:
        return sha256_file(path)
    except FileNotFoundError:
        return "missing: deleted or moved before the end of the run"
    except OSError as error:
        return f"missing: unreadable at the end of the run ({error.strerror or error})"


def _ingest_facts(recording: Recording) -> dict[str, Any]:
    """What the custody log records about an original when it is first ingested."""
    audio, metadata = recording.audio, recording.metadata
    return {
        "path": recording.path,
        "size_bytes": recording.size_bytes,
        "recording_id": recording.recording_id,
        "duration_s": round(audio.duration_s, 3),
        "format": audio.format,
        "codec": audio.codec,
        "evidence_id": metadata.evidence_id,
        "officer_id": metadata.officer_id,
    }


def _speech_models(versions: dict[str, str]) -> dict[str, str]:
    return {name: version for name, version in versions.items() if name != SCORING}
