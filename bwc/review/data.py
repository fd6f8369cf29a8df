"""What the review app reads from a store: the flag queue, one encounter with its transcript and clips, recordings
and their browser renditions. Everything is looked up by id in the store's tables; no request ever names a file.

Example
-------
>>> data = ReviewData(Store("/data/bwc-store"))                                # doctest: +SKIP
>>> rows = data.queue(QueueFilter(flag="poor"))                                # doctest: +SKIP
>>> view = data.encounter(rows[0]["encounter_id"])                             # doctest: +SKIP
"""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from bwc.audio import sha256_file
from bwc.clips import clip_path
from bwc.records import RECORD_ID_PATTERN as ID_PATTERN  # ids as the URL has them
from bwc.store import SCHEMAS, Store

RENDITION_DIR = "review_audio"  # browser renditions of recordings, inside the store
RENDITION_ARGS = ("-vn", "-ac", "1", "-c:a", "libopus", "-b:a", "32k")  # speech-grade Ogg Opus, plays in any browser
QUEUE_SORTS = {  # sort key -> (column, ascending)
    "percentile": ("percentile", False),
    "score": ("score", False),
    "newest": ("recorded_at", False),
    "oldest": ("recorded_at", True),
    "officer": ("officer_id", True),
}
PAGE_SIZE = 50


class NotFound(LookupError):
    """No such object in the store (or the id is malformed)."""


class OriginalChanged(RuntimeError):
    """The original's bytes no longer match the hash recorded at ingest."""


@dataclass(frozen=True)
class QueueFilter:
    """What the queue page asks for."""

    flag: str | None = None  # poor | exemplary | None for both
    officer: str | None = None  # officer id (pseudonym in de-identified views)
    date_from: date | None = None  # recorded on or after, UTC day
    date_to: date | None = None  # recorded on or before, UTC day
    reviewed: bool | None = None  # True: has a decision; False: has none; None: either
    sort: str = "percentile"  # a key of QUEUE_SORTS
    page: int = 1  # from 1


@dataclass(frozen=True)
class EncounterView:
    """Everything the encounter page shows."""

    encounter_id: str  # as in the tables
    flags: list[dict[str, Any]]  # its rows of ``flags`` (spans parsed)
    score: dict[str, Any] | None  # its ``encounter_scores`` row
    utterances: list[dict[str, Any]]  # its ``utterance_scores`` rows in turn order, acts parsed
    recording: dict[str, Any] | None  # its ``recordings`` row (audio path only)
    clips: list[dict[str, Any]] = field(default_factory=list)  # its ``clips`` rows


class ReviewData:
    """Read access to one store for the review app.

    Parameters
    ----------
    store
        The store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._rendition_lock = threading.Lock()

    # -- tables ---------------------------------------------------------------------------------------------------
    def table(self, name: str, **equal: str) -> pd.DataFrame:
        """Rows of a store table (optionally where columns equal values), empty with the schema's columns if none."""
        folder = self.store.table_path(name)
        schema = SCHEMAS[name]
        if not any(folder.glob("part-*.parquet")):
            return schema.empty_table().to_pandas()
        filters = [(column, "==", value) for column, value in equal.items()] or None
        return pq.read_table(folder, schema=schema, filters=filters).to_pandas()

    def records(self, name: str, **equal: str) -> list[dict[str, Any]]:
        """Rows of a store table as dicts, with missing values as None (pandas reads null strings as NaN)."""
        frame = self.table(name, **equal)
        return [{key: _none_if_missing(value) for key, value in row.items()} for row in frame.to_dict("records")]

    def flags(self) -> pd.DataFrame:
        return self.table("flags")

    def queue(self, query: QueueFilter, reviewed_keys: set[tuple[str, str]]) -> tuple[list[dict[str, Any]], int]:
        """The page of flag rows matching ``query`` and the number of matching rows in all."""
        flags = self.flags()
        if flags.empty:
            return [], 0
        keep = pd.Series(True, index=flags.index)
        if query.flag:
            keep &= flags["flag"] == query.flag
        if query.officer:
            keep &= flags["officer_id"].fillna("") == query.officer
        recorded = pd.to_datetime(flags["recorded_at"], utc=True)
        if query.date_from:
            keep &= recorded >= pd.Timestamp(datetime.combine(query.date_from, time.min), tz="UTC")
        if query.date_to:
            keep &= recorded <= pd.Timestamp(datetime.combine(query.date_to, time.max), tz="UTC")
        if query.reviewed is not None:
            reviewed = pd.Series(
                [(e, f) in reviewed_keys for e, f in zip(flags["encounter_id"], flags["flag"], strict=True)],
                index=flags.index,
            )
            keep &= reviewed if query.reviewed else ~reviewed
        column, ascending = QUEUE_SORTS.get(query.sort, QUEUE_SORTS["percentile"])
        matched = flags[keep].sort_values([column, "encounter_id"], ascending=[ascending, True], na_position="last")
        start = (max(query.page, 1) - 1) * PAGE_SIZE
        page = matched.iloc[start : start + PAGE_SIZE].to_dict("records")
        return [{key: _none_if_missing(value) for key, value in row.items()} for row in page], len(matched)

    def encounter(self, encounter_id: str) -> EncounterView:
        """The encounter's flags, scores, transcript, recording and clips; raises :class:`NotFound`."""
        _check_id(encounter_id)
        flags = self.records("flags", encounter_id=encounter_id)
        scores = self.records("encounter_scores", encounter_id=encounter_id)
        if not flags and not scores:
            raise NotFound(f"no encounter {encounter_id}")
        for row in flags:
            row["spans"] = json.loads(row["spans"] or "[]")
        utterances = sorted(self.records("utterance_scores", encounter_id=encounter_id), key=lambda row: row["turn"])
        for row in utterances:
            row["acts"] = json.loads(row["acts_evidence"]) if row.get("acts_evidence") else {}
        recording_id = next((row["recording_id"] for row in flags + scores if row.get("recording_id")), None)
        recording = self.recording(recording_id) if recording_id else None
        clips = sorted(self.records("clips", encounter_id=encounter_id), key=lambda row: (row["start"], row["kind"]))
        return EncounterView(encounter_id, flags, scores[0] if scores else None, utterances, recording, clips)

    def recording(self, recording_id: str) -> dict[str, Any]:
        _check_id(recording_id)
        rows = self.records("recordings", recording_id=recording_id)
        if not rows:
            raise NotFound(f"no recording {recording_id}")
        return rows[0]

    def clip(self, clip_id: str) -> dict[str, Any]:
        _check_id(clip_id)
        rows = self.records("clips", clip_id=clip_id)
        if not rows:
            raise NotFound(f"no clip {clip_id}")
        return rows[0]

    # -- files ----------------------------------------------------------------------------------------------------
    def clip_file(self, clip: dict[str, Any]) -> Path:
        """The clip's file, which must lie inside the store's clip folder (the table is not trusted to say
        otherwise)."""
        try:
            path = clip_path(self.store, clip)
        except ValueError:
            raise NotFound(f"clip {clip['clip_id']} has no file") from None
        if not path.is_file():
            raise NotFound(f"clip {clip['clip_id']} has no file")
        return path

    def rendition(self, recording_id: str) -> Path:
        """A browser-playable Ogg Opus rendition of the recording, made once from the verified original.

        The original is hashed and compared with its ingest hash before anything is derived from it; a changed
        original raises :class:`OriginalChanged` and nothing is made.
        """
        recording = self.recording(recording_id)
        path = self.store.root / RENDITION_DIR / f"{recording['recording_id']}.ogg"
        with self._rendition_lock:  # two players opening the same recording must not encode it twice
            if path.is_file():
                return path
            original = Path(recording["path"])
            if not original.is_file():
                raise NotFound(f"the original of {recording_id} is missing: {original}")
            actual = sha256_file(original)
            if actual != recording["sha256"]:
                raise OriginalChanged(
                    f"the original of {recording_id} changed since ingest (sha256 {actual[:12]} ≠ recorded "
                    f"{recording['sha256'][:12]}): not played"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.tmp")
            command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(original)]
            completed = subprocess.run(
                [*command, *RENDITION_ARGS, "-f", "ogg", str(temporary)], capture_output=True, text=True
            )
            if completed.returncode != 0:
                temporary.unlink(missing_ok=True)
                last = (completed.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
                raise RuntimeError(f"cannot make a playable copy of {recording_id}: {last}")
            temporary.replace(path)
            return path


def _none_if_missing(value: Any) -> Any:
    return None if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)) else value


def _check_id(identifier: str) -> None:
    if not ID_PATTERN.fullmatch(identifier or ""):
        raise NotFound(f"not an id: {identifier!r}")
