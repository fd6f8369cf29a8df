"""Chain of custody: an append-only log per original, each entry carrying the hash of the one before.

``STORE/custody/<sha256>.jsonl`` holds one JSON object per line for the original with that SHA-256::

    {"seq": 1, "at": "2026-11-22T21:05:01.123456+00:00", "event": "ingested", "actor": "bwc@node-3",
     "detail": {"path": "/intake/EV1.mp4", ...}, "prev": "<sha256 of the original>", "hash": "<this entry's hash>"}

- ``seq`` counts from 1; ``prev`` is the previous entry's ``hash``, and for the first entry the original's own
  SHA-256, which binds the log to the content it describes;
- ``hash`` is the SHA-256 of the entry's canonical JSON (sorted keys, no whitespace, UTF-8) without ``hash``;
- the catalog keeps each log's head (entries and last hash, :class:`~bwc.catalog.CustodyHeadRow`), so a log cut short
  at its end, or deleted whole, no longer matches it.

An edited entry no longer matches its hash; a removed, inserted or reordered entry breaks the ``prev`` links or the
``seq`` count; :func:`verify_custody` (``bwc audit verify``) finds each. Appends take an exclusive lock on the log
file (runs, the review server and exports may append at once) and refuse to extend a log whose end does not match
its head: a damaged log stays as it was found, for someone to look at.

The chain shows that nothing was changed *by accident or without recomputing every later hash*. Someone with write
access to both the store and the catalog can rewrite a whole log; :attr:`CustodyReport.seal` (one hash over every
head) is printed by ``bwc audit verify`` to be recorded outside the store (evidence system, signed ticket), which
closes that gap up to the moment it was recorded.

Example
-------
>>> log = CustodyLog(Path("/data/store"), Catalog.for_store(Path("/data/store")))           # doctest: +SKIP
>>> log.append(sha256, INGESTED, actor(), path="/intake/EV1.mp4", size_bytes=123)          # doctest: +SKIP
>>> verify_custody(Path("/data/store"), catalog).problems                                   # doctest: +SKIP
()
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bwc.catalog import Catalog

CUSTODY_DIR = "custody"  # inside the store
ENTRY_KEYS = ("seq", "at", "event", "actor", "detail", "prev", "hash")  # every entry has exactly these
TAIL_BYTES = 64 * 1024  # read from a log's end to find its last entry (entries are well under this)
SHA256_NAME = re.compile(r"^[0-9a-f]{64}\.jsonl$")

# Events, in the order an original usually meets them.
INGESTED = "ingested"  # first hashed and probed: path, size, audio facts
SEEN_AGAIN = "seen_again"  # the same content found under another path (processed once)
INGEST_FAILED = "ingest_failed"  # read and hashed, but not usable audio: the reason
PROCESSED = "processed"  # a stage wrote outputs from it: stage, model versions, run
PROCESSING_FAILED = "processing_failed"  # a stage failed on it: stage, reason, run
CLIP_CUT = "clip_cut"  # a clip was cut from it after its hash was verified: clip id, span, clip hash
VERIFIED = "verified"  # its SHA-256 was checked again at the end of a run and matched
VERIFY_FAILED = "verify_failed"  # that check failed: changed or gone
VIEWED = "viewed"  # opened in the review app: who, what (encounter page, audio, clip)
PACK_EXPORTED = "pack_exported"  # clips of it left in a training pack: who, pack id and hash
RESEARCH_EXPORTED = "research_exported"  # its de-identified scores left in a research export: who, where
EVENTS = (
    INGESTED, SEEN_AGAIN, INGEST_FAILED, PROCESSED, PROCESSING_FAILED, CLIP_CUT, VERIFIED, VERIFY_FAILED, VIEWED,
    PACK_EXPORTED, RESEARCH_EXPORTED,
)  # fmt: skip


class CustodyError(RuntimeError):
    """A custody log is damaged or does not match its head: it was not extended."""


def actor() -> str:
    """Who is acting, as the operating system knows it: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of an entry's canonical JSON without its ``hash``."""
    body = {key: value for key, value in entry.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class CustodyLog:
    """The custody logs of one store.

    Parameters
    ----------
    store_root
        The store directory; logs live in ``STORE/custody``.
    catalog
        The store's catalog, which keeps each log's head.
    """

    def __init__(self, store_root: Path, catalog: Catalog) -> None:
        self.folder = Path(store_root) / CUSTODY_DIR
        self.catalog = catalog

    def path(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"not a SHA-256: {sha256!r}")
        return self.folder / f"{sha256}.jsonl"

    def append(self, sha256: str, event: str, who: str, **detail: Any) -> dict[str, Any]:
        """Add one entry to the original's log and move its head; returns the entry.

        Raises
        ------
        CustodyError
            When the log's last entry is unreadable or is not the head the catalog has: nothing is written.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown custody event {event!r}")
        path = self.path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
            seq, prev = _last_entry(handle, path, sha256)
            head = self.catalog.custody_head(sha256)
            pending = self.catalog.custody_pending(sha256)
            behind = (head or (0, sha256))[0] == seq - 1  # the head one entry short of the log, as the stop left it
            if (head or (0, sha256)) != (seq, prev) and pending == (seq, prev) and behind:
                # An append stopped between writing its entry and moving the head (kill -9, power loss): the log
                # ends at exactly the entry the catalog recorded it was writing, so the head moves there now.
                self.catalog.complete_custody_append(sha256, seq, prev)
            elif (head or (0, sha256)) != (seq, prev):
                expected = f"entry {head[0]} ({head[1][:12]})" if head else "no entries"
                found = f"entry {seq} ({prev[:12]})" if seq else "no entries"
                raise CustodyError(
                    f"custody log {path} ends at {found} but the catalog's head is {expected}: the log was changed "
                    "outside bwc; it is left as found (run `bwc audit verify`)"
                )
            entry: dict[str, Any] = {
                "seq": seq + 1,
                "at": datetime.now(UTC).isoformat(),
                "event": event,
                "actor": who,
                "detail": _plain(detail),
                "prev": prev,
            }
            entry["hash"] = entry_hash(entry)
            # Write-ahead: the catalog names the entry before the log holds it (a stop before the write leaves a
            # pending row the next append replaces; a stop after it, a log the next append recognises).
            self.catalog.set_custody_pending(sha256, entry["seq"], entry["hash"])
            handle.write((json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
            self.catalog.complete_custody_append(sha256, entry["seq"], entry["hash"])
        return entry

    def entries(self, sha256: str) -> list[dict[str, Any]]:
        """The original's log as written (empty when it has none); not verified, see :func:`verify_custody`."""
        path = self.path(sha256)
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class CustodyProblem:
    """One thing wrong with one log."""

    sha256: str  # the original whose log it is
    seq: int | None  # the entry (line number) it concerns; None for the log as a whole
    problem: str  # one line


@dataclass(frozen=True)
class CustodyReport:
    """What ``bwc audit verify`` found."""

    logs: int  # custody logs checked
    entries: int  # entries in them
    problems: tuple[CustodyProblem, ...]  # empty when every log is intact and matches its head
    seal: str  # SHA-256 over every (original, head) pair: record it outside the store

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_custody(store_root: Path, catalog: Catalog) -> CustodyReport:
    """Check every custody log of the store: each entry's hash, the links between entries, the head in the catalog,
    and that every original the catalog knows has a log."""
    folder = Path(store_root) / CUSTODY_DIR
    heads = catalog.custody_heads()
    pendings = catalog.custody_pendings()
    problems: list[CustodyProblem] = []
    logs = entries = 0
    seen: set[str] = set()
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        if not SHA256_NAME.match(path.name):
            problems.append(CustodyProblem(path.stem, None, f"{path.name} is not named after an original's SHA-256"))
            continue
        sha256 = path.stem
        seen.add(sha256)
        logs += 1
        found, log_problems = _verify_log(path, sha256, heads.get(sha256), pendings.get(sha256))
        entries += found
        problems += log_problems
    for sha256 in sorted(set(heads) - seen):
        entries_expected = heads[sha256][0]
        problems.append(CustodyProblem(sha256, None, f"custody log missing (the catalog's head is entry "
                                                     f"{entries_expected}): deleted or moved"))  # fmt: skip
    for sha256, path in sorted(catalog.originals().items()):
        if sha256 not in seen and sha256 not in heads:
            problems.append(CustodyProblem(sha256, None, f"original {path} has no custody log"))
    seal = hashlib.sha256("".join(f"{sha}:{n}:{head}\n" for sha, (n, head) in sorted(heads.items())).encode())
    return CustodyReport(logs=logs, entries=entries, problems=tuple(problems), seal=seal.hexdigest())


def _verify_log(
    path: Path, sha256: str, head: tuple[int, str] | None, pending: tuple[int, str] | None = None
) -> tuple[int, list[CustodyProblem]]:
    """Entries in one log and what is wrong with it; a log that ends at the entry an interrupted append recorded it
    was writing (``pending``) is whole: the next append moves the head to it."""
    problems: list[CustodyProblem] = []

    def problem(seq: int | None, text: str) -> None:
        problems.append(CustodyProblem(sha256, seq, text))

    try:
        lines = path.read_bytes().decode("utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        return 0, [CustodyProblem(sha256, None, f"unreadable: {error}")]
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last entry
    prev = sha256
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if not isinstance(entry, dict) or sorted(entry) != sorted(ENTRY_KEYS):
            problem(number, "line is not a custody entry (edited, damaged, or fields added or removed)")
            prev = ""
            continue
        if entry["hash"] != entry_hash(entry):
            problem(number, f"{entry['event']} entry edited: its content no longer matches its hash")
        if entry["seq"] != number:
            problem(number, f"entry numbered {entry['seq']} found at position {number}: entries removed, inserted "
                            "or reordered")  # fmt: skip
        if prev and entry["prev"] != prev:
            problem(number, "does not follow the entry before it (prev hash differs): entries removed, inserted, "
                            "reordered or edited")  # fmt: skip
        prev = entry["hash"]
    count = len(lines)
    if pending is not None and pending == (count, prev) and (head or (0, sha256))[0] == count - 1:
        pass  # an append stopped after writing its entry: completed by the next append
    elif head is None:
        problem(None, "the catalog has no head for this log: made outside bwc")
    elif head != (count, prev):
        problem(None, f"log ends at entry {count} ({prev[:12]}) but the catalog's head is entry {head[0]} "
                      f"({head[1][:12]}): entries removed from its end, or added outside bwc")  # fmt: skip
    return count, problems


def _last_entry(handle: Any, path: Path, sha256: str) -> tuple[int, str]:
    """(seq, hash) of the log's last entry, or (0, the original's SHA-256) when it is empty."""
    size = handle.seek(0, os.SEEK_END)
    if size == 0:
        return 0, sha256
    handle.seek(max(0, size - TAIL_BYTES))
    tail = handle.read().decode("utf-8", "replace")
    lines = [line for line in tail.split("\n") if line.strip()]
    try:
        entry = json.loads(lines[-1])
        return int(entry["seq"]), str(entry["hash"])
    except (IndexError, ValueError, KeyError, TypeError) as error:
        raise CustodyError(f"custody log {path} ends in a damaged entry; it is left as found (run `bwc audit "
                           "verify`)") from error  # fmt: skip


def _plain(value: Any) -> Any:
    """Detail values as JSON keeps them: paths and times as text, tuples as lists."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value
