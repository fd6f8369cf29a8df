"""The review audit log's tamper evidence: a keyed hash chain, its head kept in the store, and the database rules
that refuse rewriting it; plus what leaves it (CSV safe to open in a spreadsheet).

Each entry carries ``prev_hash`` (the previous entry's ``entry_hash``; 64 zeros for the first) and ``entry_hash``,
an HMAC-SHA256 of the entry's canonical JSON under a key kept in the store (``STORE/secrets/audit.key``, owner-only).
A keyed hash, not a plain one as in the custody logs: the custody logs must be checkable by anyone with the
evidence, while the audit log lives in a database that database administrators, backup operators and anyone with
``review.sqlite`` can write to. Without the key nobody can make an entry that verifies, so an edited, inserted,
reordered or backdated entry is found by :func:`verify_audit_log` even when the database's own rules were dropped.
The chain's head (entries and last hash) is written to ``STORE/secrets/audit.head`` after every append, so entries
cut from the end are found too; ``bwc audit verify`` prints a seal to record outside the store.

The database refuses, whatever the client: UPDATE, DELETE (and on PostgreSQL TRUNCATE), and any INSERT that is not
the next entry at the end: ``entry_id`` must be the last one plus one (so ``REPLACE INTO`` / ``INSERT OR REPLACE``
of an existing entry, which SQLite would otherwise carry out as a silent delete and insert, is refused), ``prev_hash``
must be the last entry's ``entry_hash`` and ``at`` must not be earlier than the last entry's time (no backdating).

Example
-------
>>> key = b"k" * 32
>>> entry = {"entry_id": 1, "at": "2026-12-01T10:00:00+00:00", "username": "avery", "role": "trainer",
...          "action": "view_queue", "object": "queue", "outcome": "ok", "status": 200, "detail": "", "client": ""}
>>> len(entry_mac(key, entry, GENESIS))
64
>>> spreadsheet_safe("=HYPERLINK(1)"), spreadsheet_safe("-12"), spreadsheet_safe(-12)
("'=HYPERLINK(1)", "'-12", -12)
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bwc.pseudonym import load_or_create_key

GENESIS = "0" * 64  # prev_hash of the first entry
RULES_RESTORED = "audit_rules_restored"  # the entry written when the database's rules were found dropped
KEY_FILE = Path("secrets") / "audit.key"  # inside the store
HEAD_FILE = Path("secrets") / "audit.head"  # inside the store: {"entries": N, "entry_hash": "..."}
LOCK_FILE = Path("secrets") / "audit.lock"  # serialises appends across threads and processes
CHAINED_FIELDS = ("entry_id", "at", "username", "role", "action", "object", "outcome", "status", "detail", "client")
FIELD_LIMITS = {"username": 64, "role": 16, "action": 64, "object": 1000, "detail": 4000, "client": 64}  # characters
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")  # a spreadsheet may read a cell so begun as a formula
FORMULA_LOOKALIKES = "＝＋－＠｜％"  # full-width forms some spreadsheets fold to the ASCII ones
LEADING_BLANKS = " \u00a0\u2000\u2001\u2002\u2003\u2009\u200a\u200b\u200c\u200d\u2060\u3000\ufeff"  # skipped
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # kept visible as \xNN: NUL cannot be stored in PostgreSQL text

SQLITE_TIME_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]*"  # as stored
SQLITE_RULES = {
    "audit_log_no_update": "BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "audit_log_no_delete": "BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "audit_log_append_at_end": (
        "BEFORE INSERT ON audit_log WHEN "
        "NEW.entry_id IS NULL OR NEW.entry_id <> COALESCE((SELECT MAX(entry_id) FROM audit_log), 0) + 1 "
        f"OR NEW.prev_hash IS NOT COALESCE((SELECT entry_hash FROM audit_log ORDER BY entry_id DESC LIMIT 1), "
        f"'{GENESIS}') "
        # A time as SQLAlchemy writes it, not ahead of tomorrow, not before the last entry's (when that is one).
        f"OR typeof(NEW.at) <> 'text' OR NEW.at NOT GLOB '{SQLITE_TIME_GLOB}' OR NEW.at > datetime('now', '+1 day') "
        "OR NEW.at < COALESCE((SELECT at FROM audit_log WHERE entry_id = (SELECT MAX(entry_id) FROM audit_log) "
        f"AND at GLOB '{SQLITE_TIME_GLOB}' AND at <= datetime('now', '+1 day')), NEW.at) "
        "BEGIN SELECT RAISE(ABORT, 'the audit log only takes the next entry at its end, never backdated'); END"
    ),
}
POSTGRESQL_RULES = [
    "CREATE OR REPLACE FUNCTION bwc_audit_log_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END; $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION bwc_audit_log_append_only()",
    "CREATE OR REPLACE FUNCTION bwc_audit_log_append_at_end() RETURNS trigger AS $$ "
    "DECLARE last audit_log%ROWTYPE; BEGIN "
    "SELECT * INTO last FROM audit_log ORDER BY entry_id DESC LIMIT 1; "
    "IF NEW.entry_id IS DISTINCT FROM COALESCE(last.entry_id, 0) + 1 "
    f"OR NEW.prev_hash IS DISTINCT FROM COALESCE(last.entry_hash, '{GENESIS}') "
    "OR NEW.at > now() + interval '1 day' "
    "OR (last.at <= now() + interval '1 day' AND NEW.at < last.at) THEN "
    "RAISE EXCEPTION 'the audit log only takes the next entry at its end, never backdated'; END IF; "
    "RETURN NEW; END; $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS audit_log_append_at_end ON audit_log",
    "CREATE TRIGGER audit_log_append_at_end BEFORE INSERT ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION bwc_audit_log_append_at_end()",
]
POSTGRESQL_TRIGGERS = {  # trigger -> the body of the function it must call
    name: re.search(r"\$\$(.*)\$\$", POSTGRESQL_RULES[index], re.S).group(1)  # type: ignore[union-attr]
    for name, index in (("audit_log_append_only", 0), ("audit_log_append_at_end", 3))
}


@dataclass(frozen=True)
class AuditProblem:
    """One thing wrong with the audit log."""

    entry_id: int | None  # the entry, or None for the log as a whole
    problem: str  # what is wrong, in words


@dataclass(frozen=True)
class AuditReport:
    """What :func:`verify_audit_log` found."""

    entries: int  # entries read
    problems: tuple[AuditProblem, ...]  # empty when intact
    seal: str  # SHA-256 over the entry count and the last hash: record it outside the store

    @property
    def intact(self) -> bool:
        return not self.problems


def audit_key(store_root: Path) -> bytes:
    """The store's audit key, created on first use (owner read/write only)."""
    return load_or_create_key(Path(store_root) / KEY_FILE)


def visible(text: str) -> str:
    """Control characters written out as ``\\xNN``: kept as evidence, harmless in a terminal, CSV or database."""
    return CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def clean_field(name: str, value: str | None) -> str | None:
    """A value as the log keeps it: control characters made visible (``\\x00``), cut to the field's limit."""
    if value is None:
        return None
    text = visible(str(value))
    limit = FIELD_LIMITS.get(name)
    if limit and len(text) > limit:
        cut = len(text) - limit
        text = text[: limit - 40] + f"…[{cut + 40} characters cut]"
    return text


def canonical(entry: dict[str, Any], prev_hash: str) -> bytes:
    """The bytes an entry's hash covers: its chained fields and the previous hash, as compact sorted JSON."""
    body = {name: entry[name] for name in CHAINED_FIELDS} | {"prev_hash": prev_hash}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_mac(key: bytes, entry: dict[str, Any], prev_hash: str) -> str:
    """HMAC-SHA256 of an entry (``at`` as an ISO 8601 string in UTC) chained to ``prev_hash``."""
    return hmac.new(key, canonical(entry, prev_hash), hashlib.sha256).hexdigest()


def read_head(store_root: Path) -> dict[str, Any] | None:
    path = Path(store_root) / HEAD_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def head_break(
    head: dict[str, Any] | None, last_id: int, last_hash: str | None, last_prev: str | None, at: str
) -> dict[str, Any] | None:
    """What an append found wrong at the log's end, or None: the end must be the head's entry, or the one after it
    (a crash between writing an entry and moving the head). Kept in the head file, so appending (which moves the
    head) never hides entries cut from the end or a log rewritten behind bwc's back."""
    recorded, recorded_hash = (int(head["entries"]), head.get("entry_hash")) if head else (0, GENESIS)
    if last_id == recorded and (last_id == 0 or last_hash == recorded_hash):
        return None
    if last_id == recorded + 1 and last_prev == recorded_hash:
        return None
    if head is None and last_id == 0:
        return None
    return {"found_at": at, "head_entries": recorded, "head_hash": recorded_hash, "log_entries": last_id,
            "log_hash": last_hash}  # fmt: skip


def write_head(store_root: Path, entries: int, entry_hash: str, breaks: list[dict[str, Any]] | None = None) -> None:
    """Replace the head file atomically (a reader never sees half of one); earlier breaks are kept."""
    path = Path(store_root) / HEAD_FILE
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body: dict[str, Any] = {"entries": entries, "entry_hash": entry_hash}
    if breaks:
        body["breaks"] = breaks
    temporary.write_text(json.dumps(body) + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


@contextmanager
def append_lock(store_root: Path) -> Iterator[None]:
    """Exclusive while one entry is chained, written and its head moved (threads and processes alike: each call
    opens its own descriptor, and ``flock`` locks are per open file)."""
    path = Path(store_root) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def seal(entries: int, last_hash: str) -> str:
    return hashlib.sha256(f"bwc audit log {entries} {last_hash}".encode()).hexdigest()


def verify_entries(
    key: bytes, rows: Sequence[dict[str, Any]], head: dict[str, Any] | None, rules_missing: Iterable[str] = ()
) -> AuditReport:
    """Check a log's entries (oldest first, ``at`` as ISO strings in UTC) against the key and the head.

    Finds edited entries (hash), removed, inserted or reordered ones (ids and links), backdated ones (time order),
    a log cut short or rewritten at its end (head), and database rules someone dropped.
    """
    problems: list[AuditProblem] = []
    previous_hash, previous_at, expected_id, count = GENESIS, "", 1, 0
    for row in rows:
        count += 1
        entry_id = int(row["entry_id"])
        if entry_id != expected_id:
            problems.append(AuditProblem(entry_id, f"expected entry {expected_id} here: entries removed or inserted"))
        if row.get("prev_hash") != previous_hash:
            problems.append(AuditProblem(entry_id, "does not link to the entry before it (removed, inserted, moved)"))
        if row.get("entry_hash") != entry_mac(key, row, str(row.get("prev_hash"))):
            problems.append(AuditProblem(entry_id, "its hash does not match its content: changed outside bwc"))
        if row["at"].startswith("not a time"):
            problems.append(
                AuditProblem(entry_id, f"its time is {row['at'][12:]}, not a timestamp: written outside bwc")
            )
        elif row["at"] < previous_at:
            problems.append(AuditProblem(entry_id, f"dated {row['at']}, before the entry before it: backdated"))
        if row.get("action") == RULES_RESTORED:
            problems.append(AuditProblem(entry_id, f"the database's rules had been dropped ({row.get('detail')})"))
        previous_hash, expected_id = str(row.get("entry_hash")), entry_id + 1
        previous_at = previous_at if row["at"].startswith("not a time") else row["at"]
    if head is None:
        problems.append(AuditProblem(None, f"no head recorded ({HEAD_FILE}) for a log of {count} entries: removed"))
    else:
        recorded = int(head["entries"])
        if count < recorded:
            problems.append(
                AuditProblem(None, f"{recorded - count} entries cut from the end (head records {recorded})")
            )
        elif count > recorded + 1:  # one more: a crash between writing an entry and moving the head
            problems.append(AuditProblem(None, f"{count - recorded} entries after the recorded head ({recorded})"))
        if 0 < recorded <= count and head.get("entry_hash") != _hash_at(rows, recorded):
            problems.append(AuditProblem(recorded, "is not the entry the head records: the log was rewritten"))
    for found in (head or {}).get("breaks", []):
        what = found.get("what") or "entries were cut or rewritten before bwc appended again"
        problems.append(
            AuditProblem(
                None,
                f"at {found['found_at']} the log ended at entry {found['log_entries']} where its head recorded "
                f"{found['head_entries']}: {what}",
            )
        )
    for rule in rules_missing:
        problems.append(AuditProblem(None, f"database rule {rule} is missing: someone dropped it"))
    return AuditReport(count, tuple(problems), seal(count, previous_hash))


def _hash_at(rows: Sequence[dict[str, Any]], entry_id: int) -> str | None:
    return next((str(row.get("entry_hash")) for row in rows if int(row["entry_id"]) == entry_id), None)


def spreadsheet_safe(value: Any) -> Any:
    """A cell a spreadsheet shows as text: strings that would start a formula get a leading apostrophe (OWASP's
    advice for CSV injection) and control characters are made visible; numbers and empty values pass unchanged."""
    if not isinstance(value, str):
        return value
    text = visible(value)
    first = text.lstrip(LEADING_BLANKS)[:1]
    return "'" + text if first and (first in FORMULA_STARTS or first in FORMULA_LOOKALIKES) else text


def write_csv(handle: IO[str], columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> int:
    """Write a header and rows, every cell through :func:`spreadsheet_safe`; the number of rows written."""
    writer = csv.writer(handle)
    writer.writerow(list(columns))
    written = 0
    for row in rows:
        writer.writerow([spreadsheet_safe(value) for value in row])
        written += 1
    return written
