"""Releases of the public data: prepare a draft inside the store, review it, release it into the portal folder.

A **draft** (``STORE/publish/drafts/<id>/``) holds the whole package as it would go out (``package/``), its
settings and warnings (``draft.json``) and, internal only, every cell with its true count and suppression reason
(``cells.parquet``). Preparing checks the package against its own Frictionless schema and scans every file for the
store's officer, encounter and recording ids. **Releasing** a draft checks that nothing in it changed since it was
prepared (its SHA-256 sums) and that the portal folder still holds the release the draft revises, then writes:

- ``OUT/releases/<release>/``: this release, complete and never changed again;
- ``OUT/`` itself: the latest release's files (``datapackage.json`` last), so a portal can point at one address.

The draft then moves to ``STORE/publish/releases/<release>/`` with ``release.json`` (who, when, the SHA-256), where
the next draft finds the cells it revises. Every preparation and release is written to the review audit log with
the package's SHA-256.

A series keeps its period and tables: a quarterly table beside a monthly one, or a new table for old periods,
would give a reader new margins to difference suppressed cells out of, so such a change needs a new folder.

Example
-------
>>> draft = prepare(Path("/data/bwc-store"), Path("/srv/portal/bwc"), PublishSettings(), database=db)  # doctest: +SKIP
>>> released = release(Path("/data/bwc-store"), draft.draft_id, database=db, user=supervisor)       # doctest: +SKIP
>>> released.release_id, released.sha256[:12]                                                      # doctest: +SKIP
('r001', '5be1c0a7d2f4')
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from bwc.custody import actor
from bwc.publish import package
from bwc.publish.suppression import suppress
from bwc.publish.tables import (
    MEASURES,
    OTHER,
    OVERALL,
    UNKNOWN,
    PublishInputError,
    PublishSettings,
    build_cells,
    encounter_frame,
    load_stops,
    resolve_fields,
)
from bwc.store import Store, write_atomically

PUBLISH_DIR = "publish"  # in the store: drafts/ and releases/ (internal, never copied out)
DRAFT_FILE, RELEASE_FILE, CELLS_FILE = "draft.json", "release.json", "cells.parquet"
SERIES_FILE = "series.json"  # in STORE/publish: the one portal folder this store releases into
PACKAGE_DIR = "package"  # a draft's files exactly as they go out
RELEASES_DIR = "releases"  # in OUT: one folder per release
PUBLISHING_ROLES = ("supervisor", "admin")  # who may release (the CLI: whoever may write the store)
ID_PATTERN = re.compile(r"[0-9a-f]{12}")  # draft ids
RELEASE_LOCK = ".release.lock"  # in STORE/publish: one release at a time, whichever process makes it
LOCK_WAIT_S = 60.0  # a release waits this long for another to finish, then refuses
MIN_SCANNED_ID_CHARS = 4
TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")  # a word as an id could appear in text
SVG_BLOCK = re.compile(r"<svg.*?</svg>", re.DOTALL)  # chart drawings: coordinates, not words
NUMERIC_COLUMNS = (
    "period_start",
    "period_end",
    "encounters",
    "suppressed",
)  # published numbers, not labels  # ids shorter than this ("12") would match ordinary numbers in any table
README, DICTIONARY, INDEX, CHANGELOG = "README.md", "data_dictionary.md", "index.html", "CHANGELOG.md"
CHANGELOG_TITLE = "# Changelog"


class PublishError(RuntimeError):
    """A draft cannot be prepared or released; the message says why, in one line, and ``status`` how (HTTP-like:
    403 a role that may not publish, 404 no such draft, 409 a conflict, 500 the portal folder could not be written).
    """

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Draft:
    """A prepared release awaiting review."""

    draft_id: str  # 12 hex characters
    folder: Path  # STORE/publish/drafts/<draft_id>
    out_dir: Path  # the portal folder it is meant for (absolute)
    release_id: str  # the id it will have when released (r001, ...)
    previous: str | None  # the release it revises (the folder's latest when prepared)
    sha256: str  # SHA-256 of the package's SHA256SUMS: the package's identity
    created: str  # ISO time prepared (UTC)
    created_by: str  # who prepared it (user, or user@host on the command line)
    summary: dict[str, Any] = field(default_factory=dict)  # periods, tables, cells, suppressed, encounters
    warnings: tuple[str, ...] = ()  # what a reviewer should read before releasing
    changes: int = 0  # rows of changes.csv

    @property
    def package_dir(self) -> Path:
        return self.folder / PACKAGE_DIR


@dataclass(frozen=True)
class Release:
    """A release as written to the portal folder."""

    release_id: str  # r001, ...
    out_dir: Path  # the portal folder
    sha256: str  # the package's SHA-256 (recorded in the audit log)
    released_at: str  # ISO time (UTC)
    released_by: str  # the account or command-line user
    summary: dict[str, Any] = field(default_factory=dict)


def prepare(
    store_root: Path,
    out_dir: Path,
    settings: PublishSettings,
    stops_path: Path | None = None,
    database: Any = None,
    user: Any = None,
    respect_dir: Path | None = None,
    identity: dict[str, str] | None = None,
    now: datetime | None = None,
) -> Draft:
    """Build, check and keep a draft release of the store's public tables for ``out_dir``.

    Parameters
    ----------
    store_root, out_dir
        The store read, and the portal folder the release is for (its latest release is the one revised).
    settings
        Period, group fields, time zone, last day and suppression thresholds.
    stops_path
        Stop data joined on ``encounter_id`` (district, stop reason, civilian demographics, outcome).
    database
        The review database (:class:`~bwc.review.db.ReviewDatabase`): the preparation is audited there.
    user
        The account preparing it (the review app), or None: the operating-system user (the command line).
    respect_dir
        The respect model directory (its metrics go into the data dictionary); None = the bundled model.
    identity
        ``name``, ``title``, ``publisher``, ``license`` of the package.

    Raises
    ------
    PublishInputError
        Bad stop data or settings (one line naming the file, row or field).
    PublishError
        Nothing to publish, or ``out_dir`` is not this series (another period or other tables).
    """
    store_root, out_dir = Path(store_root).resolve(), Path(out_dir).resolve()
    if not (store_root / "encounter_scores").is_dir():
        raise PublishError(f"{store_root}: no encounter_scores in the store (run `bwc run` or `bwc score` first)")
    if out_dir == store_root or store_root in out_dir.parents:
        raise PublishError(f"{out_dir}: the portal folder must be outside the store")
    created = (now or datetime.now(UTC)).astimezone(UTC)
    prepared_by = user.username if user is not None else actor()
    stops = load_stops(Path(stops_path)) if stops_path is not None else None
    store = Store(store_root)
    frame = encounter_frame(store, settings, stops)
    if frame.empty:
        raise PublishError(f"{store_root}: no analysed encounter in a complete {settings.period} to publish")
    fields = resolve_fields(settings.by, frame.attrs["fields"])
    _check_one_series(store_root, out_dir)
    previous = _latest(out_dir)
    _check_series(out_dir, previous, settings, fields)
    domains, published = _previous_domains(out_dir, previous)
    unknown_fields = sorted(set(settings.labels) - set(fields))
    if unknown_fields:
        raise PublishInputError(f"publish.labels: {', '.join(unknown_fields)} not among the published fields "
                                f"({', '.join(fields)})")  # fmt: skip
    cells = build_cells(frame, fields, settings.min_cell, domains, published, settings.labels)
    sticky = _previously_suppressed(out_dir, previous)
    previous_cells = _released_cells(store_root, previous)
    kept, kept_why = _periods_to_keep(cells, previous_cells, published, settings.min_cell)
    fresh = cells[~cells["period"].isin(kept)]
    fresh = suppress(fresh, settings.min_cell, settings.min_officers, settings.max_officer_share, sticky[0], MEASURES,
                     sticky_shares=sticky[1])  # fmt: skip
    if kept:  # those periods stay exactly as the last release published them (its internal record of them)
        carried = previous_cells[previous_cells["period"].isin(kept)]
        cells = pd.concat([carried, fresh], ignore_index=True)
    else:
        cells = fresh
    number = int(previous["bwc"]["release"].lstrip("r")) + 1 if previous else 1
    info = package.ReleaseInfo(
        release_id=f"r{number:03d}",
        version=f"1.{number}.0",
        created=created,
        previous=previous["bwc"]["release"] if previous else None,
        name=(identity or {}).get("name", "bwc-encounters"),
        title=(identity or {}).get("title", "Police-public encounters: what body-worn-camera audio shows"),
        publisher=(identity or {}).get("publisher", ""),
        license=(identity or {}).get("license", "CC-BY-4.0"),
        period=settings.period,
        fields=fields,
        min_cell=settings.min_cell,
        min_officers=settings.min_officers,
        max_officer_share=settings.max_officer_share,
        timezone=settings.timezone,
    )
    tables = {OVERALL: package.public_table(cells, OVERALL, settings.min_cell)}
    for name in fields:
        tables[f"by_{name}"] = package.public_table(cells, f"by_{name}", settings.min_cell)
    changes, warnings = _changes(out_dir, previous, tables, cells, previous_cells, info)
    if kept:
        rows = [{"release": info.release_id, "table": "", "period": period, "group": "", "change": "kept",
                 "detail": f"not revised: the changes since {info.previous} are too small to publish without "
                 "revealing the encounters behind them; as published before"} for period in kept]  # fmt: skip
        changes = pd.concat([changes, pd.DataFrame(rows, columns=package.CHANGE_COLUMNS)], ignore_index=True)
        warnings += [f"{period} kept as published in {info.previous}: {kept_why[period]}" for period in kept]
    for name in fields:  # labels a reader will see for the first time: a reviewer reads them before they go out
        if name in settings.labels or name == "time_of_day":
            continue
        table = f"by_{name}"
        fresh_labels = sorted(set(cells.loc[cells["table"] == table, "group"]) - (domains or {}).get(table, set())
                              - {OTHER, UNKNOWN})  # fmt: skip
        if fresh_labels:
            warnings.append(f"{table}: labels published for the first time (no publish.labels list for {name}): "
                            + ", ".join(repr(label) for label in fresh_labels))  # fmt: skip
    left_out = int(frame.attrs.get("left_out", 0))
    if left_out:
        warnings.append(f"{left_out} scored encounters left out: no officer language to judge, no officer or no time")
    facts = package.model_facts(respect_dir)
    summary = {
        "periods": sorted(set(cells["period"])),
        "tables": list(tables),
        "cells": len(cells),
        "suppressed": int(cells["suppressed"].sum()),
        "encounters": int(cells.loc[cells["table"] == OVERALL, "encounters"].sum()),
        "model_versions": list(frame.attrs["model_versions"]),
    }
    draft_id = secrets.token_hex(6)
    drafts = store_root / PUBLISH_DIR / "drafts"
    building = drafts / f".building-{draft_id}"
    folder = drafts / draft_id
    try:
        files = building / PACKAGE_DIR
        files.mkdir(parents=True)
        _write_package(files, _previous_package(store_root, out_dir, info.previous), info, tables, changes, cells,
                       facts, summary)  # fmt: skip
        problems = _validate(files)
        if problems:
            raise PublishError(f"the package does not validate: {problems[0]}")
        _scan_for_identifiers(files, frame, stops)
        sha256 = _package_sha256(files)
        cells.to_parquet(building / CELLS_FILE, index=False)
        draft = Draft(
            draft_id=draft_id,
            folder=folder,
            out_dir=out_dir,
            release_id=info.release_id,
            previous=info.previous,
            sha256=sha256,
            created=created.isoformat(),
            created_by=prepared_by,
            summary=summary,
            warnings=tuple(warnings),
            changes=len(changes),
        )
        (building / DRAFT_FILE).write_text(json.dumps(_as_json(draft), indent=2))
        os.replace(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if database is not None:
        database.audit(
            "publish_prepare",
            "ok",
            0,
            user=user,
            object=f"draft:{draft_id}",
            detail=f"sha256 {draft.sha256}; {info.release_id} for {out_dir}; {summary['cells']} cells, "
            f"{summary['suppressed']} suppressed; by {prepared_by}",
        )
    return draft


def release(
    store_root: Path,
    draft_id: str,
    database: Any = None,
    user: Any = None,
    client: str = "",
    now: datetime | None = None,
    expected_sha256: str | None = None,
) -> Release:
    """Write draft ``draft_id`` to its portal folder as the new latest release.

    ``user`` is the reviewing account (a supervisor or admin; checked here), or None on the command line, where the
    operating-system user who can write the store acts. ``expected_sha256`` is the package the reviewer saw (the
    review app's form carries it). The package must still be the one its preparation recorded in the audit log,
    byte for byte, and pass the checks again. Refusals are audited too.

    Raises
    ------
    PublishError
        Unknown draft, a role that may not publish, files changed since the draft was prepared, or a portal folder
        whose latest release is no longer the one the draft revises (prepare it again).
    """
    store_root = Path(store_root).absolute()
    who = user.username if user is not None else actor()
    lock_path = store_root / PUBLISH_DIR / RELEASE_LOCK
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if user is not None and user.role not in PUBLISHING_ROLES:
            raise PublishError(
                f"{user.username} ({user.role}) may not publish: releasing needs a supervisor or admin", 403
            )
        try:
            out_lock = _out_lock(read_draft(store_root, draft_id).out_dir)
            with FileLock(str(lock_path)).acquire(timeout=LOCK_WAIT_S), out_lock.acquire(timeout=LOCK_WAIT_S):
                draft, record = _release_locked(store_root, draft_id, who, now, database, expected_sha256)
        except Timeout:
            raise PublishError(f"another release of {store_root} is still being written; try again") from None
        except OSError as error:
            raise PublishError(f"draft {draft_id}: could not write the release: {error}", 500) from None
    except PublishError as error:
        if database is not None:
            outcome = "failed" if error.status >= 500 else "refused"
            database.audit("publish_release", outcome, error.status, user=user, object=f"draft:{draft_id}",
                           detail=str(error), client=client)  # fmt: skip
        raise
    if database is not None:
        database.audit(
            "publish_release",
            "ok",
            0,
            user=user,
            object=f"release:{draft.release_id}",
            detail=f"sha256 {draft.sha256}; to {draft.out_dir}; draft {draft.draft_id}; by {who}",
            client=client,
        )
    return record


def stale(draft: Draft) -> str | None:
    """Why ``draft`` can no longer be released as it is (its portal folder moved on), or None."""
    latest = _latest(draft.out_dir)
    current = latest["bwc"]["release"] if latest else None
    if current != draft.previous:
        return (
            f"draft {draft.draft_id} revises {draft.previous or 'nothing'}, but {draft.out_dir} now holds "
            f"{current or 'no release'}; prepare it again"
        )
    return None


def _out_lock(out_dir: Path) -> FileLock:
    """A lock in the portal folder (hidden, empty), so two stores or two hosts cannot release into it at once."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(out_dir / RELEASE_LOCK))


def _prepared_sha256(database: Any, draft_id: str) -> str | None:
    """The SHA-256 the audit log recorded when draft ``draft_id`` was prepared (None when it has none)."""
    for entry in database.audit_entries(action="publish_prepare"):
        if entry.object == f"draft:{draft_id}" and entry.outcome == "ok":
            found = re.search(r"sha256 ([0-9a-f]{64})", entry.detail or "")
            return found.group(1) if found else None
    return None


def _release_locked(
    store_root: Path, draft_id: str, who: str, now: datetime | None, database: Any, expected_sha256: str | None
) -> tuple[Draft, Release]:
    draft = read_draft(store_root, draft_id)
    changed = f"draft {draft_id}: its files changed after it was prepared; prepare it again"
    if _package_sha256(draft.package_dir) != draft.sha256 or _changed_files(draft.package_dir):
        raise PublishError(changed)
    if expected_sha256 is not None and expected_sha256 != draft.sha256:
        raise PublishError(f"draft {draft_id}: not the package that was reviewed (sha256 differs); review it again")
    if database is not None and _prepared_sha256(database, draft_id) != draft.sha256:
        raise PublishError(changed + " (its SHA-256 is not the one the audit log recorded when it was prepared)")
    problems = _validate(draft.package_dir)
    if problems:
        raise PublishError(f"draft {draft_id}: the package no longer validates: {problems[0]}")
    reason = stale(draft)
    if reason:
        raise PublishError(reason)
    _check_one_series(store_root, draft.out_dir)
    target = draft.out_dir / RELEASES_DIR / draft.release_id
    if target.exists():
        raise PublishError(f"{target} exists already; prepare the draft again")
    _copy_release(draft, target)
    record = Release(
        release_id=draft.release_id,
        out_dir=draft.out_dir,
        sha256=draft.sha256,
        released_at=(now or datetime.now(UTC)).astimezone(UTC).isoformat(),
        released_by=who,
        summary=draft.summary,
    )
    kept = store_root / PUBLISH_DIR / RELEASES_DIR / draft.release_id
    kept.parent.mkdir(parents=True, exist_ok=True)
    if kept.exists():  # a release of another portal folder with the same number: keep both
        kept = kept.with_name(f"{draft.release_id}-{draft.draft_id}")
    os.replace(draft.folder, kept)
    (kept / RELEASE_FILE).write_text(json.dumps(_as_json(record) | {"draft_id": draft.draft_id}, indent=2))
    series = store_root / PUBLISH_DIR / SERIES_FILE
    if not series.exists():
        write_atomically(series, lambda temporary: Path(temporary).write_text(json.dumps(
            {"out_dir": str(draft.out_dir), "first_release": draft.release_id, "released_at": record.released_at},
            indent=2)))  # fmt: skip
    return draft, record


def _check_one_series(store_root: Path, out_dir: Path) -> None:
    """One store, one series of releases: two folders of tables from the same encounters (by month and by quarter,
    in two time zones, with other groups or another history of suppressions) could be differenced against each
    other, which the suppression of each cannot see."""
    path = store_root / PUBLISH_DIR / SERIES_FILE
    if not path.exists():
        return
    try:
        registered = Path(json.loads(path.read_text())["out_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        raise PublishError(f"{path}: damaged; it names the portal folder this store releases into") from None
    if registered != out_dir:
        raise PublishError(f"this store releases into {registered}: tables of the same encounters in a second "
                           f"folder ({out_dir}) could be differenced against them; publish there (copy that "
                           "folder to other portals)")  # fmt: skip


def read_draft(store_root: Path, draft_id: str) -> Draft:
    """The draft ``draft_id`` of the store (PublishError when there is none)."""
    if not ID_PATTERN.fullmatch(draft_id or ""):
        raise PublishError(f"{draft_id!r} is not a draft id", 404)
    folder = Path(store_root) / PUBLISH_DIR / "drafts" / draft_id
    try:
        data = json.loads((folder / DRAFT_FILE).read_text())
    except (OSError, ValueError):
        raise PublishError(f"no draft {draft_id} in {store_root}", 404) from None
    known = {item.name for item in fields(Draft)}
    try:
        values = {key: value for key, value in data.items() if key in known}
        return Draft(**(values | {"folder": folder, "out_dir": Path(data["out_dir"]),
                                  "warnings": tuple(data.get("warnings", ()))}))  # fmt: skip
    except (KeyError, TypeError):
        raise PublishError(f"draft {draft_id}: {DRAFT_FILE} is damaged", 404) from None


def list_drafts(store_root: Path) -> list[Draft]:
    """Drafts awaiting review, newest first."""
    folder = Path(store_root) / PUBLISH_DIR / "drafts"
    drafts = []
    for path in folder.glob("*"):
        if ID_PATTERN.fullmatch(path.name):
            try:
                drafts.append(read_draft(store_root, path.name))
            except PublishError:  # damaged, or released while the folder was listed: not awaiting review
                continue
    return sorted(drafts, key=lambda draft: draft.created, reverse=True)


def list_releases(store_root: Path) -> list[dict[str, Any]]:
    """Releases made from this store (``release.json`` records), newest first."""
    folder = Path(store_root) / PUBLISH_DIR / RELEASES_DIR
    records = []
    for path in folder.glob(f"*/{RELEASE_FILE}"):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(records, key=lambda record: record.get("released_at", ""), reverse=True)


def draft_table(draft: Draft, table: str) -> pd.DataFrame:
    """One public table of a draft, as it would be published (for the review app's preview)."""
    names = {path.stem for path in draft.package_dir.glob("*.csv")}
    if table not in names:
        raise PublishError(f"draft {draft.draft_id} has no table {table!r}")
    return pd.read_csv(draft.package_dir / f"{table}.csv", dtype=str, keep_default_na=False)


# -- building ---------------------------------------------------------------------------------------------------
def _write_package(
    files: Path,
    previous_package: Path | None,
    info: package.ReleaseInfo,
    tables: dict[str, pd.DataFrame],
    changes: pd.DataFrame,
    cells: pd.DataFrame,
    facts: dict[str, Any],
    summary: dict[str, Any],
) -> None:
    for name, frame in tables.items():
        package.write_csv(frame, files / f"{name}.csv")
    package.write_csv(changes, files / f"{package.CHANGES}.csv")
    context = {
        "info": info,
        "tables": tables,
        "changes": changes,
        "facts": facts,
        "summary": summary,
        "measures": package.BINARY_MEASURES,
        "quantiles": package.RESPECT_QUANTILES,
        "field_titles": package.FIELD_TITLES,
    }
    (files / DICTIONARY).write_text(package.render("data_dictionary.md", **context), encoding="utf-8")
    (files / README).write_text(package.render("README.md", **context), encoding="utf-8")
    entry = package.render("changelog_entry.md", **context)
    history = _history(previous_package)
    (files / CHANGELOG).write_text(f"{CHANGELOG_TITLE}\n\n{entry}{history}", encoding="utf-8")
    overall = tables[OVERALL]
    (files / INDEX).write_text(
        package.render("index.html", charts=package.charts(overall), **context), encoding="utf-8"
    )
    (files / "datapackage.json").write_text(json.dumps(package.datapackage(info, tables, cells), indent=2) + "\n")
    names = sorted(path.name for path in files.iterdir() if path.is_file())
    (files / package.CHECKSUMS).write_text(package.checksums(files, names))


def _previous_package(store_root: Path, out_dir: Path, previous: str | None) -> Path | None:
    """The previous release's files: the store's copy (what went out), else the portal folder's archive."""
    if previous is None:
        return None
    kept = store_root / PUBLISH_DIR / RELEASES_DIR / previous / PACKAGE_DIR
    return kept if kept.is_dir() else out_dir / RELEASES_DIR / previous


def _history(previous_package: Path | None) -> str:
    """The earlier entries of the changelog, from the previous release as it went out."""
    if previous_package is None or not (previous_package / CHANGELOG).exists():
        return ""
    text = (previous_package / CHANGELOG).read_text(encoding="utf-8")
    return text.removeprefix(CHANGELOG_TITLE).lstrip("\n")


def _validate(files: Path) -> list[str]:
    """Frictionless validation of the package: every resource against its schema (types, constraints, keys)."""
    from frictionless import Package, system

    with system.use_context(trusted=True):
        report = Package(str(files / "datapackage.json")).validate()
    if report.valid:
        return []
    return [f"{task.name}: {error.message}" for task in report.tasks for error in task.errors][:5] or ["invalid"]


def _scan_for_identifiers(files: Path, frame: pd.DataFrame, stops: pd.DataFrame | None) -> None:
    """Refuse a package in which any officer, encounter or stop-record id of the store appears as a word (defence
    in depth: nothing should ever put one there). Checksums and chart drawings are not text anyone reads; ids made
    only of digits (badge numbers) are looked for where a label could carry one, not among the published numbers."""
    identifiers = set(frame["encounter_id"]) | set(frame["officer_id"])
    if stops is not None:
        identifiers |= set(stops["encounter_id"].astype(str))
    identifiers = {value.casefold() for value in identifiers if len(value) >= MIN_SCANNED_ID_CHARS}
    numeric = {value for value in identifiers if value.isdigit()}
    worded = identifiers - numeric
    for path in sorted(files.iterdir()):
        if path.name == package.CHECKSUMS or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".html":
            text = SVG_BLOCK.sub(" ", text)
        tokens = {token.strip(".:-").casefold() for token in TOKEN.findall(text)}
        found = tokens & worded
        if path.suffix == ".csv" and numeric:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            labels = [c for c in table.columns if c not in NUMERIC_COLUMNS and not c.startswith(("share_", "respect_"))]
            found |= {
                token.casefold() for c in labels for value in table[c] for token in TOKEN.findall(value)
            } & numeric
        if found:
            raise PublishError(f"{path.name}: holds an identifier of the store; nothing was released")


def _package_sha256(files: Path) -> str:
    return hashlib.sha256((files / package.CHECKSUMS).read_bytes()).hexdigest()


def _changed_files(files: Path) -> list[str]:
    """Files of a package whose SHA-256 no longer matches its SHA256SUMS line, or that are not listed."""
    listed = {}
    for line in (files / package.CHECKSUMS).read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    present = {path.name for path in files.iterdir() if path.is_file()} - {package.CHECKSUMS}
    changed = sorted(present ^ set(listed))
    for name in sorted(present & set(listed)):
        if hashlib.sha256((files / name).read_bytes()).hexdigest() != listed[name]:
            changed.append(name)
    return changed


def _copy_release(draft: Draft, target: Path) -> None:
    """The release folder (complete or absent: staged under a unique hidden name, then renamed, which fails if
    another release claimed the name first), then the folder's top level, ``datapackage.json`` last."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.copytree(draft.package_dir, staging, dirs_exist_ok=True)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    names = sorted(path.name for path in draft.package_dir.iterdir() if path.is_file())
    for name in [*[n for n in names if n != "datapackage.json"], "datapackage.json"]:
        source = draft.package_dir / name
        write_atomically(draft.out_dir / name, lambda temporary, source=source: shutil.copyfile(source, temporary))


# -- the series and its changes ---------------------------------------------------------------------------------
def _latest(out_dir: Path) -> dict[str, Any] | None:
    """The folder's latest release's ``datapackage.json`` (None for an empty or absent folder), with ``_folder``:
    where its files are. That is the top level, unless a release was interrupted after its archive folder was
    complete and before the top level was rewritten: then the archive (its checksums verified) is the latest, and
    the next release rewrites the top level."""
    top = out_dir / "datapackage.json"
    archived = _newest_archive(out_dir)
    if not top.exists() and archived is None:
        if out_dir.exists() and any(not path.name.startswith(".") for path in out_dir.iterdir()):
            raise PublishError(f"{out_dir}: not empty and holds no bwc release; publish to an empty or new folder")
        return None
    data = _read_release(top) if top.exists() else None
    if archived is not None and (data is None or _release_number(archived.name) > _release_number(
            data["bwc"]["release"])):  # fmt: skip
        data, folder = _read_release(archived / "datapackage.json"), archived
    else:
        folder = out_dir
    return data | {"_folder": folder}


def _read_release(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        data["bwc"]["release"]
    except (OSError, ValueError, KeyError, TypeError):
        raise PublishError(f"{path}: not a bwc release (no bwc.release); publish to an empty or new folder") from None
    return data


def _newest_archive(out_dir: Path) -> Path | None:
    """The highest-numbered complete release folder under ``OUT/releases`` (every file as its SHA256SUMS says)."""
    folders = [path for path in (out_dir / RELEASES_DIR).glob("r[0-9]*") if path.is_dir()]
    for folder in sorted(folders, key=lambda path: _release_number(path.name), reverse=True):
        if (folder / package.CHECKSUMS).exists() and not _changed_files(folder):
            return folder
    return None


def _release_number(release_id: str) -> int:
    digits = release_id.lstrip("r")
    return int(digits) if digits.isdigit() else -1


def _check_series(out_dir: Path, previous: dict[str, Any] | None, settings: PublishSettings, fields: tuple) -> None:
    if previous is None:
        return
    if previous["bwc"].get("timezone") != settings.timezone:
        raise PublishError(
            f"{out_dir}: its periods are in {previous['bwc'].get('timezone')} time; periods in "
            f"{settings.timezone} would shift their edges by hours a reader could difference: set "
            f"publish.timezone to {previous['bwc'].get('timezone')}"
        )
    if previous["bwc"].get("period") != settings.period:
        raise PublishError(
            f"{out_dir}: its releases are by {previous['bwc'].get('period')}; a {settings.period} "
            "release beside them would let readers difference suppressed cells: publish by "
            f"{previous['bwc'].get('period')}"
        )
    before = [
        r["path"].removesuffix(".csv").removeprefix("by_")
        for r in previous.get("resources", [])
        if r.get("path", "").startswith("by_")
    ]
    if sorted(before) != sorted(fields):
        raise PublishError(
            f"{out_dir}: its releases have tables by {', '.join(before) or 'nothing'}, this one "
            f"by {', '.join(fields) or 'nothing'}; new margins for old periods would let readers "
            "difference suppressed cells: publish the same --by fields"
        )


def _previously_suppressed(out_dir: Path, previous: dict[str, Any] | None) -> tuple[set[tuple], set[tuple]]:
    """(table, period, group) of every cell any earlier release of the folder suppressed, and (table, period, group,
    measure) of every share one withheld in a row it published."""
    rows: set[tuple] = set()
    shares: set[tuple] = set()
    if previous is None:
        return rows, shares
    for folder in [out_dir, *sorted((out_dir / RELEASES_DIR).glob("r*"))]:
        for table, frame in _public_tables(folder).items():
            group = _group_column(table, frame)
            hidden = frame[frame["suppressed"] == "true"]
            rows |= {(table, p, g) for p, g in zip(hidden["period"], hidden[group], strict=True)}
            shown = frame[frame["suppressed"] == "false"]
            for measure in MEASURES:
                empty = shown[shown.get(f"share_{measure}", pd.Series("", index=shown.index)) == ""]
                shares |= {(table, p, g, measure) for p, g in zip(empty["period"], empty[group], strict=True)}
    return rows, shares


def _previous_domains(out_dir: Path, previous: dict[str, Any] | None) -> tuple[dict[str, set[str]] | None, set[str]]:
    """Each table's groups and the periods of the folder's latest release (None, empty for a first release)."""
    if previous is None:
        return None, set()
    tables = _public_tables(previous["_folder"])
    domains = {name: set(frame[_group_column(name, frame)]) for name, frame in tables.items()}
    return domains, set(tables.get(OVERALL, pd.DataFrame(columns=["period"]))["period"])


def _public_tables(folder: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for path in sorted(folder.glob("*.csv")):
        if path.stem == OVERALL or path.stem.startswith("by_"):
            tables[path.stem] = pd.read_csv(path, dtype=str, keep_default_na=False)
    return tables


def _group_column(table: str, frame: pd.DataFrame) -> str:
    if table == OVERALL:
        frame["group"] = "all"
        return "group"
    return table.removeprefix("by_")


def _periods_to_keep(
    cells: pd.DataFrame, previous_cells: pd.DataFrame | None, published: set[str], min_cell: int
) -> tuple[list[str], dict[str, str]]:
    """Periods published before whose cells changed by fewer than ``min_cell`` encounters in or out (a late
    recording, a removal): publishing the revision would let a reader difference those few encounters' measures
    out of two releases, so the period keeps its published values until the change is large enough (or none).
    Without the last release's internal record every published period is kept (nothing to compare with)."""
    periods = sorted(published & set(cells["period"]))
    if previous_cells is None or "encounter_ids" not in previous_cells.columns:
        return periods, {period: "the store holds no record of the last release to compare with" for period in periods}
    before = previous_cells.set_index(["table", "period", "group"])
    kept, why = [], {}
    for period in periods:
        reason = next(filter(None, (_small_change(row, before, min_cell) for row in
                                    cells[cells["period"] == period].to_dict("records"))), "")  # fmt: skip
        if reason:
            kept.append(period)
            why[period] = reason
    return kept, why


def _small_change(row: dict[str, Any], before: pd.DataFrame, min_cell: int) -> str:
    """Why publishing ``row``'s revision would show a few encounters by difference, or ``""``: encounters in or out
    of the cell, or (unless a new model rescored it, which the changelog names) encounters with or without a
    measure, changed by 1 to ``min_cell - 1``."""
    key = (row["table"], row["period"], row["group"])
    old = before.loc[key] if key in before.index else None
    old_ids = set(old["encounter_ids"]) if old is not None else set()
    added, removed = len(set(row["encounter_ids"]) - old_ids), len(old_ids - set(row["encounter_ids"]))
    if 0 < added < min_cell or 0 < removed < min_cell:
        return f"{row['table']} {row['group']}: {added} encounters in, {removed} out"
    if old is None or old["model_versions"] != row["model_versions"]:
        return ""
    for measure in MEASURES:
        with_it = int(row[f"n_{measure}"]) - int(old[f"n_{measure}"])
        without = (int(row["encounters"]) - int(row[f"n_{measure}"])) - (
            int(old["encounters"]) - int(old[f"n_{measure}"]))  # fmt: skip
        if 0 < abs(with_it) < min_cell or 0 < abs(without) < min_cell:
            return f"{row['table']} {row['group']}: {abs(with_it)} encounters changed {measure}"
    return ""


def _released_cells(store_root: Path, previous: dict[str, Any] | None) -> pd.DataFrame | None:
    """The internal cells of the folder's latest release: the store's record of it, or, when that release was
    interrupted before the store recorded it, the draft it was made from (the same SHA256SUMS). None for a first
    release."""
    if previous is None:
        return None
    release_id = previous["bwc"]["release"]
    path = store_root / PUBLISH_DIR / RELEASES_DIR / release_id / CELLS_FILE
    if path.exists():
        return pd.read_parquet(path)
    sums = previous["_folder"] / package.CHECKSUMS
    if sums.exists():
        digest = hashlib.sha256(sums.read_bytes()).hexdigest()
        for draft in list_drafts(store_root):
            if draft.release_id == release_id and draft.sha256 == digest and (draft.folder / CELLS_FILE).exists():
                return pd.read_parquet(draft.folder / CELLS_FILE)
    raise PublishError(f"{store_root}: no record of {release_id}, the portal folder's latest release; it cannot be "
                       "revised safely from this store")  # fmt: skip


def _changes(
    out_dir: Path,
    previous: dict[str, Any] | None,
    tables: dict[str, pd.DataFrame],
    cells: pd.DataFrame,
    previous_cells: pd.DataFrame | None,
    info: package.ReleaseInfo,
) -> tuple[pd.DataFrame, list[str]]:
    """``changes.csv`` rows against the folder's latest release, and the reviewer's warnings."""
    rows: list[dict[str, str]] = []
    warnings: list[str] = []
    new_periods = sorted(set(cells["period"]))
    if previous is None:
        rows += [
            {"table": "", "period": p, "group": "", "change": "new_period", "detail": "first release"}
            for p in new_periods
        ]
        return pd.DataFrame(rows, columns=package.CHANGE_COLUMNS[1:]).assign(release=info.release_id)[
            list(package.CHANGE_COLUMNS)
        ], warnings
    old_tables = _public_tables(previous["_folder"])
    old_periods = set(old_tables.get(OVERALL, pd.DataFrame(columns=["period"]))["period"])
    rows += [
        {"table": "", "period": p, "group": "", "change": "new_period", "detail": "period published for the first time"}
        for p in new_periods
        if p not in old_periods
    ]
    rows += [
        {
            "table": "",
            "period": p,
            "group": "",
            "change": "period_removed",
            "detail": "no analysed encounter in the period any more",
        }
        for p in sorted(old_periods - set(new_periods))
    ]
    internal = previous_cells.set_index(["table", "period", "group"]) if previous_cells is not None else None
    now_internal = cells.set_index(["table", "period", "group"])
    for table, frame in tables.items():
        if table not in old_tables:
            continue
        old = old_tables[table]
        group = _group_column(table, old)
        new = package.as_published(frame)
        new_group = "group" if table == OVERALL else group
        if table == OVERALL:
            new = new.assign(group="all")
        old_rows = old.set_index(["period", group])
        for row in new.to_dict("records"):
            key = (row["period"], row[new_group])
            if key not in old_rows.index:
                continue
            before = old_rows.loc[key]
            if before["suppressed"] == "true":
                continue  # suppressed before and now (sticky): nothing to say
            if row["suppressed"] == "true":
                rows.append(
                    {
                        "table": table,
                        "period": key[0],
                        "group": key[1],
                        "change": "now_suppressed",
                        "detail": "withheld in this release",
                    }
                )
                continue
            differs = [
                c
                for c in new.columns
                if c in before.index
                and c not in ("period", new_group)
                and _numeric_text(row[c]) != _numeric_text(before[c])
            ]
            if not differs:
                continue
            delta = int(row["encounters"]) - int(before["encounters"])
            detail = _why(internal, now_internal, (table, *key), delta)
            rows.append(
                {
                    "table": table,
                    "period": key[0],
                    "group": key[1],
                    "change": "revised",
                    "detail": f"{detail}; columns {', '.join(differs)}",
                }
            )
    frame = pd.DataFrame(rows, columns=package.CHANGE_COLUMNS[1:]).assign(release=info.release_id)
    return frame[list(package.CHANGE_COLUMNS)], warnings


def _why(internal: pd.DataFrame | None, now: pd.DataFrame, key: tuple[str, str, str], delta: int) -> str:
    if internal is None or key not in internal.index:
        return "values changed"
    before, after = internal.loc[key], now.loc[key]
    if before["model_versions"] != after["model_versions"]:
        return f"rescored: {before['model_versions'] or 'unknown'} -> {after['model_versions'] or 'unknown'}"
    # One wording for every other revision: saying whose encounters changed and whose did not would tell a reader
    # which cells of the last release still hold, and so which of its equations to reuse.
    return "revised: recordings added late, re-analysed or removed, or department-relative measures recomputed"


def _numeric_text(value: Any) -> str:
    text = str(value)
    try:
        return f"{float(text):.6g}"
    except ValueError:
        return text


def _as_json(record: Draft | Release) -> dict[str, Any]:
    data = asdict(record)
    data.pop("folder", None)
    data["out_dir"] = str(data["out_dir"])
    data["warnings"] = list(data.get("warnings", ()))
    return {key: value for key, value in data.items() if key != "package_dir"}
