"""The catalog: what bwc knows about every original and every stage, behind SQLAlchemy.

SQLite inside the store by default (``STORE/catalog.sqlite``); any SQLAlchemy URL (PostgreSQL for a cluster whose
nodes share one catalog) when configured. Five tables:

- ``files``: every path seen in an intake, with the size and modification time it had when hashed, so an unchanged
  file is not hashed again on the next night;
- ``originals``: every distinct content (SHA-256), the first path it was seen under, and its recording id;
- ``stages``: per original and stage, the state (``pending``, ``done``, ``failed``), attempts, the last reason, the
  model versions that produced the output, and the run that did it;
- ``runs``: every run, when it started and ended, on which host and process, and how it ended;
- ``custody_heads``: per original, how many entries its custody log has and the hash of the last one
  (:mod:`bwc.custody`), so that a log cut short or deleted whole no longer matches;
- ``custody_pending``: the entry an append is writing, recorded before the log is written, so that an append
  stopped half-way is completed by the next one.

Example
-------
>>> catalog = Catalog.for_store(Path("/data/bwc-store"))                  # doctest: +SKIP
>>> catalog.mark("ab12…", "speech", DONE, run_id="r1", model_version="whisper small …")   # doctest: +SKIP
>>> catalog.todo("speech", ["ab12…"], {"speech": "whisper small …"}, max_attempts=3)       # doctest: +SKIP
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, Float, Integer, String, Text, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

CATALOG_FILE = "catalog.sqlite"  # inside the store, when no URL is configured
PENDING, DONE, FAILED = "pending", "done", "failed"  # stage states


class _Base(DeclarativeBase):
    pass


class FileRow(_Base):
    """A path seen in an intake."""

    __tablename__ = "files"
    path: Mapped[str] = mapped_column(Text, primary_key=True)  # absolute path
    size_bytes: Mapped[int] = mapped_column(Integer)  # size when hashed
    mtime: Mapped[float] = mapped_column(Float)  # modification time (epoch seconds) when hashed
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # content hash
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # last time a run saw it


class OriginalRow(_Base):
    """A distinct content."""

    __tablename__ = "originals"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    recording_id: Mapped[str] = mapped_column(String(16), index=True)  # sha256[:16]
    path: Mapped[str] = mapped_column(Text)  # the path it was first taken from
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StageRow(_Base):
    """One stage of one original."""

    __tablename__ = "stages"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)  # ingest | speech | scoring | ...
    path: Mapped[str | None] = mapped_column(Text, nullable=True)  # the path it was last processed from
    state: Mapped[str] = mapped_column(String(16))  # pending | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # failed attempts so far
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # last failure, one line
    model_version: Mapped[str | None] = mapped_column(Text, nullable=True)  # what produced the output
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # run that last touched it
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunRow(_Base):
    """One run."""

    __tablename__ = "runs"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(32))  # running | completed | completed_with_failures | failed


class CustodyHeadRow(_Base):
    """Where one original's custody log ends."""

    __tablename__ = "custody_heads"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # the original
    entries: Mapped[int] = mapped_column(Integer)  # entries in its log
    head: Mapped[str] = mapped_column(String(64))  # hash of the last entry
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CustodyPendingRow(_Base):
    """An entry about to be added to one original's custody log (written before the log, removed with the head's
    move), so that an append stopped between the two (kill -9, power loss) is completed, not taken for tampering."""

    __tablename__ = "custody_pending"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # the original
    entries: Mapped[int] = mapped_column(Integer)  # entries in its log once the entry is written
    head: Mapped[str] = mapped_column(String(64))  # hash of the entry being written
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class StageState:
    """A stage's state as the catalog has it."""

    state: str  # pending | done | failed
    attempts: int  # failed attempts so far
    reason: str | None  # last failure
    model_version: str | None  # what produced the output (done) or was tried (failed)


class Catalog:
    """The catalog of one store.

    Parameters
    ----------
    url
        SQLAlchemy database URL, e.g. ``sqlite:////data/store/catalog.sqlite`` or
        ``postgresql+psycopg://bwc@db/bwc``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, future=True)
        _Base.metadata.create_all(self.engine)

    @classmethod
    def for_store(cls, store_root: Path, url: str | None = None) -> Catalog:
        """The configured catalog, or SQLite inside the store."""
        return cls(url or f"sqlite:///{(Path(store_root) / CATALOG_FILE).absolute()}")

    def close(self) -> None:
        self.engine.dispose()

    # -- files and originals --------------------------------------------------------------------------------------
    def known_hash(self, path: str, size_bytes: int, mtime: float) -> str | None:
        """The hash recorded for ``path`` when it had this size and modification time; None when unseen or changed."""
        with Session(self.engine) as session:
            row = session.get(FileRow, path)
            if row is None or row.size_bytes != size_bytes or abs(row.mtime - mtime) > 1e-6:
                return None
            return row.sha256

    def record_file(self, path: str, size_bytes: int, mtime: float, sha256: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.merge(FileRow(path=path, size_bytes=size_bytes, mtime=mtime, sha256=sha256, seen_at=_now()))

    def original(self, sha256: str) -> str | None:
        """The path this content was first taken from; None when the content is new."""
        with Session(self.engine) as session:
            row = session.get(OriginalRow, sha256)
            return row.path if row else None

    def add_original(self, sha256: str, path: str) -> bool:
        """Record new content; returns False (and changes nothing) when it is already known."""
        with Session(self.engine) as session, session.begin():
            if session.get(OriginalRow, sha256) is not None:
                return False
            session.add(OriginalRow(sha256=sha256, recording_id=sha256[:16], path=path, first_seen_at=_now()))
            return True

    # -- stages ---------------------------------------------------------------------------------------------------
    def state(self, sha256: str, stage: str) -> StageState | None:
        with Session(self.engine) as session:
            row = session.get(StageRow, (sha256, stage))
            return StageState(row.state, row.attempts, row.reason, row.model_version) if row else None

    def mark(
        self,
        sha256: str,
        stage: str,
        state: str,
        run_id: str,
        model_version: str | None = None,
        reason: str | None = None,
        path: str | None = None,
    ) -> StageState:
        """Set a stage's state; a failure adds one attempt, success keeps the count of earlier failures."""
        if state not in (PENDING, DONE, FAILED):
            raise ValueError(f"unknown stage state {state!r}")
        with Session(self.engine) as session, session.begin():
            row = session.get(StageRow, (sha256, stage))
            if row is None:
                row = StageRow(sha256=sha256, stage=stage, state=state, attempts=0, updated_at=_now())
                session.add(row)
            row.state = state
            row.attempts = (row.attempts or 0) + (1 if state == FAILED else 0)
            row.reason = reason if state == FAILED else None
            row.model_version = model_version
            row.run_id = run_id
            row.path = path or row.path
            row.updated_at = _now()
            return StageState(row.state, row.attempts, row.reason, row.model_version)

    def todo(self, stage: str, hashes: Iterable[str], current_version: str | None, max_attempts: int) -> list[str]:
        """Of ``hashes``, those whose ``stage`` must run: never run, pending, failed fewer than ``max_attempts``
        times, or done by another model version than ``current_version`` (None: any version will do)."""
        wanted = list(dict.fromkeys(hashes))
        with Session(self.engine) as session:
            rows = {
                row.sha256: row
                for chunk in _chunks(wanted, 500)
                for row in session.scalars(select(StageRow).where(StageRow.stage == stage, StageRow.sha256.in_(chunk)))
            }
        result = []
        for sha256 in wanted:
            row = rows.get(sha256)
            if (
                row is None
                or row.state == PENDING
                or (row.state == FAILED and row.attempts < max_attempts)
                or (row.state == DONE and current_version is not None and row.model_version != current_version)
            ):
                result.append(sha256)
        return result

    def outdated(self, stage: str, current_version: str) -> list[StageRow]:
        """Stages done by another model version than ``current_version`` (what a rescore must redo)."""
        with Session(self.engine) as session:
            query = select(StageRow).where(
                StageRow.stage == stage, StageRow.state == DONE, StageRow.model_version != current_version
            )
            return list(session.scalars(query.order_by(StageRow.sha256)))

    def failures(self, stage: str | None = None) -> list[StageRow]:
        """Every stage now failed (whatever its attempts), oldest first."""
        with Session(self.engine) as session:
            query = select(StageRow).where(StageRow.state == FAILED).order_by(StageRow.updated_at)
            if stage:
                query = query.where(StageRow.stage == stage)
            return list(session.scalars(query))

    # -- custody heads --------------------------------------------------------------------------------------------
    def custody_head(self, sha256: str) -> tuple[int, str] | None:
        """(entries, hash of the last entry) of an original's custody log; None when it has none."""
        with Session(self.engine) as session:
            row = session.get(CustodyHeadRow, sha256)
            return (row.entries, row.head) if row else None

    def set_custody_head(self, sha256: str, entries: int, head: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.merge(CustodyHeadRow(sha256=sha256, entries=entries, head=head, updated_at=_now()))

    def custody_pending(self, sha256: str) -> tuple[int, str] | None:
        """(entries, hash) of the entry an append began to write to an original's log; None when none is under way."""
        with Session(self.engine) as session:
            row = session.get(CustodyPendingRow, sha256)
            return (row.entries, row.head) if row else None

    def custody_pendings(self) -> dict[str, tuple[int, str]]:
        with Session(self.engine) as session:
            return {row.sha256: (row.entries, row.head) for row in session.scalars(select(CustodyPendingRow))}

    def set_custody_pending(self, sha256: str, entries: int, head: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.merge(CustodyPendingRow(sha256=sha256, entries=entries, head=head, updated_at=_now()))

    def clear_custody_pending(self, sha256: str) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.get(CustodyPendingRow, sha256)
            if row is not None:
                session.delete(row)

    def complete_custody_append(self, sha256: str, entries: int, head: str) -> None:
        """Move the head to the entry just written and drop its pending row, in one transaction."""
        with Session(self.engine) as session, session.begin():
            session.merge(CustodyHeadRow(sha256=sha256, entries=entries, head=head, updated_at=_now()))
            row = session.get(CustodyPendingRow, sha256)
            if row is not None:
                session.delete(row)

    def custody_heads(self) -> dict[str, tuple[int, str]]:
        with Session(self.engine) as session:
            return {row.sha256: (row.entries, row.head) for row in session.scalars(select(CustodyHeadRow))}

    def originals(self) -> dict[str, str]:
        """Every distinct content the catalog knows: SHA-256 -> the path it was first taken from."""
        with Session(self.engine) as session:
            return {row.sha256: row.path for row in session.scalars(select(OriginalRow))}

    # -- runs -----------------------------------------------------------------------------------------------------
    def begin_run(self, run_id: str, host: str, pid: int) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(RunRow(run_id=run_id, host=host, pid=pid, started_at=_now(), status="running"))

    def end_run(self, run_id: str, status: str) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.get(RunRow, run_id)
            if row is not None:
                row.status, row.finished_at = status, _now()

    def running(self) -> list[RunRow]:
        """Runs that started and never ended (still running, or killed)."""
        with Session(self.engine) as session:
            return list(session.scalars(select(RunRow).where(RunRow.status == "running")))


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
