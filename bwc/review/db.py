"""The review database: accounts, login sessions, review decisions, exemplar tags and the audit log.

SQLite inside the store by default (``STORE/review.sqlite``, apart from the catalog so reviewers never wait on a
nightly run's writes), or any SQLAlchemy URL (``review.database_url``). Passwords are stored as Argon2id hashes
(argon2-cffi); session tokens only as SHA-256 digests, so a copy of the database logs nobody in. The audit log is
append-only in the database itself: triggers refuse UPDATE and DELETE on it, whatever the client.

Example
-------
>>> db = ReviewDatabase.for_store(Path("/data/bwc-store"))                    # doctest: +SKIP
>>> db.add_user("avery", "trainer", "a long passphrase")                       # doctest: +SKIP
>>> user = db.authenticate("avery", "a long passphrase")                       # doctest: +SKIP
>>> token, session = db.start_session(user, hours=8)                          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

REVIEW_DB_FILE = "review.sqlite"  # inside the store, when no URL is configured
ROLES = ("trainer", "supervisor", "researcher", "admin")
DECISIONS = ("confirmed", "rejected")
MIN_PASSWORD_CHARS = 12  # NIST SP 800-63B asks for at least 8; evidence access deserves more
USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
LOCKOUT_FAILURES = 10  # failed logins for one username within LOCKOUT_WINDOW before it is locked for that window
LOCKOUT_WINDOW = timedelta(minutes=15)
_HASHER = PasswordHasher()  # Argon2id with argon2-cffi's current recommended parameters
# A real hash to verify against when the username does not exist, so the answer takes as long either way.
_DUMMY_HASH = _HASHER.hash("no such user: constant-time answer")


class AccountError(ValueError):
    """A user-management request that cannot be done as asked; the message says why."""


class _Base(DeclarativeBase):
    pass


class UserRow(_Base):
    """A person who can log in."""

    __tablename__ = "users"
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # trainer | supervisor | researcher | admin
    password_hash: Mapped[str] = mapped_column(Text)  # Argon2id, PHC string format
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # disabled accounts cannot log in
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SessionRow(_Base):
    """A login."""

    __tablename__ = "sessions"
    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # the cookie's token, hashed
    user_id: Mapped[int] = mapped_column(ForeignKey("users.user_id"))
    csrf_token: Mapped[str] = mapped_column(String(64))  # must come back with every form post of this session
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # slides forward with activity


class DecisionRow(_Base):
    """A reviewer's verdict on one flag of one encounter (the latest one counts; earlier ones stay in the audit)."""

    __tablename__ = "decisions"
    encounter_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    flag: Mapped[str] = mapped_column(String(16), primary_key=True)  # poor | exemplary
    decision: Mapped[str] = mapped_column(String(16))  # confirmed | rejected
    note: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExemplarRow(_Base):
    """An encounter tagged as a training exemplar."""

    __tablename__ = "exemplars"
    encounter_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    note: Mapped[str] = mapped_column(Text, default="")  # what trainees should take from it
    tagged_by: Mapped[str] = mapped_column(String(64))
    tagged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditRow(_Base):
    """One entry of the append-only audit log."""

    __tablename__ = "audit_log"
    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    username: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # None: not logged in
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    action: Mapped[str] = mapped_column(String(64))  # e.g. view_encounter, play_audio, confirm_flag, export_pack
    object: Mapped[str] = mapped_column(Text, default="")  # what it was done to: encounter, clip, user, pack ids
    outcome: Mapped[str] = mapped_column(String(16))  # ok | refused | not_found | invalid | error
    status: Mapped[int] = mapped_column(Integer)  # HTTP status of the answer
    detail: Mapped[str] = mapped_column(Text, default="")  # e.g. the decision and its note, the pack's SHA-256
    client: Mapped[str] = mapped_column(String(64), default="")  # client address as the server saw it


@dataclass(frozen=True)
class User:
    """A logged-in (or looked-up) account."""

    user_id: int  # database id
    username: str  # login name
    role: str  # one of :data:`ROLES`
    active: bool  # disabled accounts cannot log in


@dataclass(frozen=True)
class LoginSession:
    """A valid session, with its user."""

    user: User  # who is logged in
    csrf_token: str  # what every form post must carry
    expires_at: datetime  # UTC


@dataclass(frozen=True)
class AuditEntry:
    """An audit log entry as read back."""

    entry_id: int  # position in the log
    at: datetime  # UTC
    username: str | None  # None: anonymous
    role: str | None  # the user's role at the time
    action: str  # what was attempted
    object: str  # what it was attempted on
    outcome: str  # ok | refused | not_found | invalid | error
    status: int  # HTTP status
    detail: str  # specifics
    client: str  # client address


_APPEND_ONLY_SQLITE = [
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
]
_APPEND_ONLY_POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION bwc_audit_log_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END; $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION bwc_audit_log_append_only()",
]


class ReviewDatabase:
    """Accounts, sessions, decisions, exemplar tags and the audit log of one store.

    Parameters
    ----------
    url
        SQLAlchemy URL, e.g. ``sqlite:////data/store/review.sqlite`` or ``postgresql+psycopg://bwc@db/bwc``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _Base.metadata.create_all(self.engine)
        statements = {"sqlite": _APPEND_ONLY_SQLITE, "postgresql": _APPEND_ONLY_POSTGRESQL}
        with self.engine.begin() as connection:
            for statement in statements.get(self.engine.dialect.name, []):
                connection.execute(text(statement))

    @classmethod
    def for_store(cls, store_root: Path, url: str | None = None) -> ReviewDatabase:
        """The configured database, or SQLite inside the store."""
        return cls(url or f"sqlite:///{(Path(store_root) / REVIEW_DB_FILE).absolute()}")

    def close(self) -> None:
        self.engine.dispose()

    # -- accounts -------------------------------------------------------------------------------------------------
    def add_user(self, username: str, role: str, password: str) -> User:
        """Create an account; raises :class:`AccountError` for a taken name, unknown role or weak password."""
        username = _check_username(username)
        _check_role(role)
        _check_password(password)
        with Session(self.engine) as session, session.begin():
            if session.scalar(select(UserRow).where(UserRow.username == username)) is not None:
                raise AccountError(f"user {username!r} already exists")
            row = UserRow(username=username, role=role, password_hash=_HASHER.hash(password), created_at=_now())
            session.add(row)
            session.flush()
            return _user(row)

    def set_password(self, username: str, password: str) -> None:
        _check_password(password)
        with Session(self.engine) as session, session.begin():
            row = self._user_row(session, username)
            row.password_hash = _HASHER.hash(password)
            session.execute(delete(SessionRow).where(SessionRow.user_id == row.user_id))  # log out everywhere

    def set_role(self, username: str, role: str) -> None:
        _check_role(role)
        with Session(self.engine) as session, session.begin():
            self._user_row(session, username).role = role

    def set_active(self, username: str, active: bool) -> None:
        with Session(self.engine) as session, session.begin():
            row = self._user_row(session, username)
            row.active = active
            if not active:
                session.execute(delete(SessionRow).where(SessionRow.user_id == row.user_id))

    def users(self) -> list[User]:
        with Session(self.engine) as session:
            return [_user(row) for row in session.scalars(select(UserRow).order_by(UserRow.username))]

    def authenticate(self, username: str, password: str) -> User | None:
        """The active user with this name and password, else None (same work done for unknown names)."""
        with Session(self.engine) as session, session.begin():
            row = session.scalar(select(UserRow).where(UserRow.username == username.strip().lower()))
            try:
                _HASHER.verify(row.password_hash if row else _DUMMY_HASH, password)
            except (VerificationError, InvalidHashError):
                return None
            if row is None or not row.active:
                return None
            if _HASHER.check_needs_rehash(row.password_hash):
                row.password_hash = _HASHER.hash(password)
            return _user(row)

    def recent_failed_logins(self, username: str) -> int:
        """Failed logins for ``username`` within the lockout window (from the audit log)."""
        since = _now() - LOCKOUT_WINDOW
        with Session(self.engine) as session:
            query = select(func.count()).where(
                AuditRow.action == "login",
                AuditRow.object == f"user:{username.strip().lower()}",
                AuditRow.outcome == "refused",
                AuditRow.at >= since,
            )
            return int(session.scalar(query) or 0)

    @staticmethod
    def _user_row(session: Session, username: str) -> UserRow:
        row = session.scalar(select(UserRow).where(UserRow.username == username.strip().lower()))
        if row is None:
            raise AccountError(f"no user {username!r}")
        return row

    # -- sessions -------------------------------------------------------------------------------------------------
    def start_session(self, user: User, hours: float) -> tuple[str, LoginSession]:
        """A new session for ``user``: the cookie token (shown once, stored hashed) and the session."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = _now() + timedelta(hours=hours)
        with Session(self.engine) as session, session.begin():
            session.add(
                SessionRow(
                    token_sha256=_digest(token),
                    user_id=user.user_id,
                    csrf_token=csrf,
                    created_at=_now(),
                    expires_at=expires,
                )
            )
        return token, LoginSession(user=user, csrf_token=csrf, expires_at=expires)

    def session(self, token: str | None, hours: float) -> LoginSession | None:
        """The live session for a cookie token, its expiry moved ``hours`` ahead; None when unknown or expired."""
        if not token:
            return None
        with Session(self.engine) as session, session.begin():
            row = session.get(SessionRow, _digest(token))
            if row is None:
                return None
            user_row = session.get(UserRow, row.user_id)
            if _utc(row.expires_at) <= _now() or user_row is None or not user_row.active:
                session.delete(row)
                return None
            row.expires_at = _now() + timedelta(hours=hours)
            return LoginSession(user=_user(user_row), csrf_token=row.csrf_token, expires_at=_utc(row.expires_at))

    def end_session(self, token: str | None) -> None:
        if token:
            with Session(self.engine) as session, session.begin():
                session.execute(delete(SessionRow).where(SessionRow.token_sha256 == _digest(token)))

    # -- review ---------------------------------------------------------------------------------------------------
    def decide(self, encounter_id: str, flag: str, decision: str, note: str, username: str) -> None:
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
        with Session(self.engine) as session, session.begin():
            session.merge(
                DecisionRow(
                    encounter_id=encounter_id,
                    flag=flag,
                    decision=decision,
                    note=note,
                    decided_by=username,
                    decided_at=_now(),
                )
            )

    def decisions(self, encounter_ids: Sequence[str] | None = None) -> dict[tuple[str, str], DecisionRow]:
        """(encounter_id, flag) -> the latest decision."""
        with Session(self.engine) as session:
            query = select(DecisionRow)
            if encounter_ids is not None:
                query = query.where(DecisionRow.encounter_id.in_(list(encounter_ids)))
            return {(row.encounter_id, row.flag): row for row in session.scalars(query)}

    def tag_exemplar(self, encounter_id: str, note: str, username: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.merge(ExemplarRow(encounter_id=encounter_id, note=note, tagged_by=username, tagged_at=_now()))

    def untag_exemplar(self, encounter_id: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(delete(ExemplarRow).where(ExemplarRow.encounter_id == encounter_id))

    def exemplars(self) -> list[ExemplarRow]:
        with Session(self.engine) as session:
            return list(session.scalars(select(ExemplarRow).order_by(ExemplarRow.tagged_at.desc())))

    # -- audit ----------------------------------------------------------------------------------------------------
    def audit(
        self,
        action: str,
        outcome: str,
        status: int,
        user: User | None = None,
        object: str = "",
        detail: str = "",
        client: str = "",
    ) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(
                AuditRow(
                    at=_now(),
                    username=user.username if user else None,
                    role=user.role if user else None,
                    action=action,
                    object=object,
                    outcome=outcome,
                    status=status,
                    detail=detail,
                    client=client,
                )
            )

    def audit_entries(
        self, limit: int | None = None, username: str | None = None, action: str | None = None
    ) -> list[AuditEntry]:
        """Entries, newest first."""
        with Session(self.engine) as session:
            query = select(AuditRow).order_by(AuditRow.entry_id.desc())
            if username:
                query = query.where(AuditRow.username == username)
            if action:
                query = query.where(AuditRow.action == action)
            if limit:
                query = query.limit(limit)
            return [
                AuditEntry(
                    entry_id=row.entry_id,
                    at=_utc(row.at),
                    username=row.username,
                    role=row.role,
                    action=row.action,
                    object=row.object,
                    outcome=row.outcome,
                    status=row.status,
                    detail=row.detail,
                    client=row.client,
                )
                for row in session.scalars(query)
            ]


AUDIT_COLUMNS = ("entry_id", "at", "username", "role", "action", "object", "outcome", "status", "detail", "client")


def _sqlite_pragmas(connection: object, _record: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (page views) never block the audit writer
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _check_username(username: str) -> str:
    name = username.strip().lower()
    if not 2 <= len(name) <= 64 or not set(name) <= USERNAME_CHARS:
        raise AccountError("a username is 2–64 characters: letters, digits, '.', '_' or '-'")
    return name


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")


def _user(row: UserRow) -> User:
    return User(user_id=row.user_id, username=row.username, role=row.role, active=row.active)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for what was written as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
