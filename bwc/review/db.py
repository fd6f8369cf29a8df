"""The review database: accounts, login sessions, review decisions, exemplar tags and the audit log.

SQLite inside the store by default (``STORE/review.sqlite``, apart from the catalog so reviewers never wait on a
nightly run's writes), or any SQLAlchemy URL (``review.database_url``). Passwords are stored as Argon2id hashes
(argon2-cffi); session tokens only as SHA-256 digests, so a copy of the database logs nobody in. The audit log is
append-only in the database itself (triggers refuse UPDATE, DELETE, REPLACE and backdated or out-of-place inserts,
whatever the client) and tamper-evident beyond it: a keyed hash chain with its head in the store
(:mod:`bwc.review.audit`), checked by ``bwc audit verify``. Failed logins are counted before the password is
checked, in one statement, so parallel guesses cannot outrun the lockout.

Example
-------
>>> db = ReviewDatabase.for_store(Path("/data/bwc-store"))                     # doctest: +SKIP
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
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    case,
    create_engine,
    delete,
    event,
    func,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bwc.config import ReviewConfig
from bwc.review.audit import (
    CHAINED_FIELDS,
    GENESIS,
    HEAD_FILE,
    KEY_FILE,
    POSTGRESQL_RULES,
    POSTGRESQL_TRIGGERS,
    RULES_RESTORED,
    SQLITE_RULES,
    AuditProblem,
    AuditReport,
    append_lock,
    audit_key,
    clean_field,
    entry_mac,
    head_break,
    read_head,
    verify_entries,
    write_head,
)

REVIEW_DB_FILE = "review.sqlite"  # inside the store, when no URL is configured
ROLES = ("trainer", "supervisor", "researcher", "admin")
DECISIONS = ("confirmed", "rejected")
MIN_PASSWORD_CHARS = 12  # NIST SP 800-63B asks for at least 8; evidence access deserves more
USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
ALL_CLIENTS = "*"  # the client column of an account's count over every address
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
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # slides forward with activity, to a cap


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
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the entry before's entry_hash
    entry_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # keyed hash of this entry and prev


class LoginFailuresRow(_Base):
    """Wrong passwords counted for one account from one client address (or from all: client ``*``)."""

    __tablename__ = "login_failures"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)  # address, or ALL_CLIENTS
    failures: Mapped[int] = mapped_column(Integer, default=0)  # attempts counted in the current window
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # first counted attempt


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


@dataclass(frozen=True)
class LoginLimits:
    """How many wrong passwords are checked before a lock, and for how long."""

    per_client: int = 10  # for one account from one client address
    per_account: int = 50  # for one account from every address together
    window: timedelta = timedelta(minutes=15)  # a lock lasts this long from the failure that reached a limit

    @classmethod
    def from_config(cls, review: ReviewConfig) -> LoginLimits:
        """The limits ``review.lockout_*`` set."""
        return cls(review.lockout_failures, review.lockout_account_failures, timedelta(minutes=review.lockout_minutes))


class ReviewDatabase:
    """Accounts, sessions, decisions, exemplar tags and the audit log of one store.

    Parameters
    ----------
    url
        SQLAlchemy URL, e.g. ``sqlite:////data/store/review.sqlite`` or ``postgresql+psycopg://bwc@db/bwc``.
    store_root
        The store: its ``secrets/`` folder holds the audit log's key and head.
    """

    def __init__(self, url: str, store_root: Path) -> None:
        self.url = url
        self.store_root = Path(store_root)
        key_existed = (self.store_root / KEY_FILE).exists()
        self._key = audit_key(self.store_root)
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _Base.metadata.create_all(self.engine)
        with append_lock(self.store_root), self.engine.begin() as connection:
            empty = connection.execute(select(AuditRow.entry_id).limit(1)).first() is None
            missing = _missing_rules(connection)  # before an upgrade touches them (it drops and recreates them)
            head = read_head(self.store_root)
            chained = _chain_unchained_entries(connection, self._key, sign=head is None)
            if chained and head is None:
                write_head(self.store_root, *chained)
            elif chained:  # hash columns gone from a log that had a head: tampering, not an old database
                write_head(self.store_root, int(head["entries"]), head["entry_hash"], [
                    *head.get("breaks", []), {"found_at": _iso(_now()), "head_entries": head["entries"],
                    "head_hash": head["entry_hash"], "log_entries": chained[0], "log_hash": None,
                    "what": "the hash columns had been removed"}])  # fmt: skip
            elif head is None and not key_existed:
                write_head(self.store_root, 0, GENESIS)  # a new log: from now on a missing head means removal
            elif head is None:  # the key was there, so bwc had written a head: someone removed it
                count = connection.execute(select(func.count()).select_from(AuditRow)).scalar_one()
                write_head(self.store_root, 0, GENESIS, [{"found_at": _iso(_now()), "head_entries": "?",
                    "head_hash": None, "log_entries": count, "log_hash": None,
                    "what": f"the head file ({HEAD_FILE}) had been removed"}])  # fmt: skip
            upgraded = bool(chained) and head is None  # a log from before the chain: its rules are replaced, not lost
            self.rules_missing_at_open = [] if (empty and not key_existed) or upgraded else missing
            if missing or chained:  # only then: on PostgreSQL the app's role need not own the table afterwards
                _install_rules(connection)
        if self.rules_missing_at_open:
            # Someone dropped the database's own protection; it is back now, and the log says when it came back.
            self.audit(RULES_RESTORED, "error", 0, object="audit_log",
                       detail=f"missing when opened: {', '.join(self.rules_missing_at_open)}")  # fmt: skip

    @classmethod
    def for_store(cls, store_root: Path, url: str | None = None) -> ReviewDatabase:
        """The configured database, or SQLite inside the store."""
        return cls(url or f"sqlite:///{(Path(store_root) / REVIEW_DB_FILE).absolute()}", store_root)

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

    def reserve_login_attempt(self, username: str, client: str, limits: LoginLimits) -> bool:
        """Count one password check for ``username`` from ``client`` before it is made; False when either count
        has reached its limit (then nothing is counted, so attempts during a lock neither count nor extend it).

        Each count moves in one conditional UPDATE, so 40 parallel guesses get at most ``per_client`` checks: the
        database, not the web server's threads, decides who is next. The failure that reaches a limit starts the
        lock's window afresh, so a burst just before a window ends cannot be followed by another just after it. A
        success clears the counts (:meth:`clear_login_failures`).
        """
        now = _now()
        cutoff = now - limits.window
        name = (clean_field("username", username.strip().lower()) or "")[:64]
        insert = postgresql_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        table = LoginFailuresRow.__table__
        with self.engine.connect() as connection, connection.begin() as transaction:
            for key, limit in ((client[:64] or "unknown", limits.per_client), (ALL_CLIENTS, limits.per_account)):
                connection.execute(
                    insert(table)
                    .values(username=name, client=key, failures=0, window_started_at=now)
                    .on_conflict_do_nothing()
                )
                expired = LoginFailuresRow.window_started_at < cutoff
                reaching = LoginFailuresRow.failures + 1 >= limit
                counted = connection.execute(
                    update(LoginFailuresRow)
                    .where(LoginFailuresRow.username == name, LoginFailuresRow.client == key)
                    .where(or_(expired, LoginFailuresRow.failures < limit))
                    .values(
                        failures=case((expired, 1), else_=LoginFailuresRow.failures + 1),
                        window_started_at=case((or_(expired, reaching), now), else_=LoginFailuresRow.window_started_at),
                    )
                )
                if counted.rowcount == 0:
                    transaction.rollback()  # a refused attempt counts nowhere, this address's count included
                    return False
            old = LoginFailuresRow.window_started_at < cutoff - limits.window
            connection.execute(delete(LoginFailuresRow).where(old))
            transaction.commit()
        return True

    def clear_login_failures(self, username: str, client: str) -> None:
        """After a right password: this client's count and the account's count start again."""
        name = username.strip().lower()
        with self.engine.begin() as connection:
            connection.execute(
                delete(LoginFailuresRow).where(
                    LoginFailuresRow.username == name,
                    LoginFailuresRow.client.in_([client[:64] or "unknown", ALL_CLIENTS]),
                )
            )

    @staticmethod
    def _user_row(session: Session, username: str) -> UserRow:
        row = session.scalar(select(UserRow).where(UserRow.username == username.strip().lower()))
        if row is None:
            raise AccountError(f"no user {username!r}")
        return row

    # -- sessions -------------------------------------------------------------------------------------------------
    def start_session(self, user: User, hours: float, max_hours: float | None = None) -> tuple[str, LoginSession]:
        """A new session for ``user``: the cookie token (shown once, stored hashed) and the session."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = _now() + timedelta(hours=min(hours, max_hours or hours))
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

    def session(
        self, token: str | None, hours: float, max_hours: float | None = None, extend: bool = True
    ) -> LoginSession | None:
        """The live session for a cookie token, its expiry moved ``hours`` ahead (never past ``max_hours`` after
        the login); None when unknown or expired. ``extend=False`` only looks (e.g. to name who was refused)."""
        if not token:
            return None
        with Session(self.engine) as session, session.begin():
            row = session.get(SessionRow, _digest(token))
            if row is None:
                return None
            user_row = session.get(UserRow, row.user_id)
            now = _now()
            ends = _utc(row.created_at) + timedelta(hours=max_hours) if max_hours else None
            if _utc(row.expires_at) <= now or (ends and ends <= now) or user_row is None or not user_row.active:
                session.delete(row)
                return None
            if extend:
                moved = now + timedelta(hours=hours)
                row.expires_at = min(moved, ends) if ends else moved
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
        """Append one entry at the end of the chain and move the head (see :mod:`bwc.review.audit`)."""
        fields = {
            "username": user.username if user else None,
            "role": user.role if user else None,
            "action": action,
            "object": object,
            "outcome": outcome,
            "status": int(status),
            "detail": detail,
            "client": client,
        }
        entry = {name: clean_field(name, value) if isinstance(value, str) else value for name, value in fields.items()}
        with append_lock(self.store_root):
            head = read_head(self.store_root)
            with Session(self.engine) as session, session.begin():
                last = session.execute(text(LAST_ENTRY_SQL)).first()
                # Never before the last entry, even when the clock stepped back (the database refuses backdating);
                # a last time that is not a timestamp or lies beyond tomorrow was not written by bwc: not followed.
                now = _now()
                last_at = _parse_time(last.at) if last else None
                at = max(now, last_at) if last_at and last_at <= now + MAX_CLOCK_AHEAD else now
                entry |= {"entry_id": (last.entry_id if last else 0) + 1, "at": _iso(at)}
                prev_hash = (last.entry_hash or GENESIS) if last else GENESIS
                entry_hash = entry_mac(self._key, entry, prev_hash)
                session.add(AuditRow(**(entry | {"at": at}), prev_hash=prev_hash, entry_hash=entry_hash))
            breaks = list((head or {}).get("breaks", []))
            found = head_break(
                head, last.entry_id if last else 0, last.entry_hash if last else None,
                last.prev_hash if last else None, entry["at"],
            )  # fmt: skip
            write_head(self.store_root, entry["entry_id"], entry_hash, breaks + ([found] if found else []))

    def verify_audit(self) -> AuditReport:
        """Check the audit log's chain, its head, its columns and the database's rules (``bwc audit verify``).

        Rows are read raw (times as text), so a value no bwc entry could hold is reported, not a crash."""
        with self.engine.connect() as connection:
            rows = [_chained(dict(row)) for row in connection.execute(text(ALL_ENTRIES_SQL)).mappings()]
            columns = [column["name"] for column in inspect(connection).get_columns("audit_log")]
        extra = [column for column in columns if column not in AuditRow.__table__.columns]
        report = verify_entries(self._key, rows, read_head(self.store_root), self.rules_missing_at_open)
        if not extra:
            return report
        added = AuditProblem(None, f"columns added outside bwc: {', '.join(extra)}")
        return AuditReport(report.entries, (*report.problems, added), report.seal)

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


LAST_ENTRY_SQL = (
    "SELECT entry_id, entry_hash, prev_hash, CAST(at AS TEXT) AS at FROM audit_log ORDER BY entry_id DESC LIMIT 1"
)
ALL_ENTRIES_SQL = (
    "SELECT entry_id, CAST(at AS TEXT) AS at, username, role, action, object, outcome, status, detail, client, "
    "prev_hash, entry_hash FROM audit_log ORDER BY entry_id"
)
MAX_CLOCK_AHEAD = timedelta(days=1)  # a last entry dated further ahead than this was not written by bwc


def _chained(row: dict[str, Any]) -> dict[str, Any]:
    """An entry as its hash covers it, from a raw row: text fields as text (a blob someone stored shows as its
    repr, and fails its hash), the time in bwc's form, or marked when it is no timestamp."""
    values = {
        name: (value if value is None or isinstance(value, (str, int)) else repr(value))
        for name, value in ((name, row.get(name)) for name in (*CHAINED_FIELDS, "prev_hash", "entry_hash"))
    }
    moment = _parse_time(row.get("at"))
    values["at"] = _iso(moment) if moment else f"not a time: {row.get('at')!r}"
    return values


def _parse_time(value: Any) -> datetime | None:
    """A stored time (SQLite text, PostgreSQL timestamptz as text) in UTC, or None when it is not one."""
    if isinstance(value, datetime):
        return _utc(value)
    try:
        return _utc(datetime.fromisoformat(str(value)))
    except (TypeError, ValueError):
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _missing_rules(connection: Connection) -> list[str]:
    """The database's audit rules that are not there, or not as bwc wrote them (a trigger of the same name that does
    nothing counts as missing); all of them in a new database."""
    if connection.dialect.name == "sqlite":
        query = text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'")
        found = {row[0]: " ".join(str(row[1]).split()) for row in connection.execute(query)}
        return [name for name, body in SQLITE_RULES.items() if found.get(name) != _trigger_sql(name, body)]
    if connection.dialect.name == "postgresql":
        # A trigger counts when it exists, is enabled and calls its function as bwc wrote it.
        query = text(
            "SELECT t.tgname, p.prosrc FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE t.tgrelid = 'audit_log'::regclass AND NOT t.tgisinternal AND t.tgenabled <> 'D'"
        )
        found = {row[0]: " ".join(str(row[1]).split()) for row in connection.execute(query)}
        return [name for name, body in POSTGRESQL_TRIGGERS.items() if found.get(name) != " ".join(body.split())]
    return []


def _trigger_sql(name: str, body: str) -> str:
    return " ".join(f"CREATE TRIGGER {name} {body}".split())


def _install_rules(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        for name, body in SQLITE_RULES.items():
            connection.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
            connection.execute(text(_trigger_sql(name, body)))
    elif connection.dialect.name == "postgresql":
        for statement in POSTGRESQL_RULES:
            connection.execute(text(statement))


def _chain_unchained_entries(connection: Connection, key: bytes, sign: bool) -> tuple[int, str] | None:
    """A database from before the chain: add its columns and chain the entries it has, in order (once). With
    ``sign`` false (the log had a head, so the columns were removed, not never there) they stay unsigned: bwc does
    not vouch for entries it cannot check."""
    columns = {column["name"] for column in inspect(connection).get_columns("audit_log")}
    if "entry_hash" in columns:
        return None
    if connection.dialect.name == "sqlite":
        for name in SQLITE_RULES:
            connection.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
    else:
        connection.execute(text("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log"))
    for column in ("prev_hash", "entry_hash"):
        connection.execute(text(f"ALTER TABLE audit_log ADD COLUMN {column} VARCHAR(64)"))
    previous, count = GENESIS, 0
    for row in connection.execute(text(ALL_ENTRIES_SQL)).mappings():
        count = row["entry_id"]
        if not sign:
            continue
        entry = _chained(dict(row))
        entry_hash = entry_mac(key, entry, previous)
        connection.execute(
            update(AuditRow.__table__)
            .where(AuditRow.__table__.c.entry_id == row["entry_id"])
            .values(prev_hash=previous, entry_hash=entry_hash)
        )
        previous = entry_hash
    return (count, previous) if count else None


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
    """SQLite hands back naive datetimes for what was written as UTC; PostgreSQL aware ones in the session's zone."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
