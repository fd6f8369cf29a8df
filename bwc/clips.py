"""Clips: short audio (and video) excerpts cut from originals around the spans that drove a flag.

For every flag in ``STORE/flags`` (poor or exemplary), the flagged utterances of each recording are padded
(:class:`~bwc.config.ClipsConfig`), clamped to the recording, and merged when they overlap or nearly touch; each
merged span becomes one Ogg Opus clip, plus an H.264/AAC MP4 clip when the original has video. Clips are written to
``STORE/clips/_files/<clip_id>.ogg|.mp4`` and described in ``STORE/clips/part-current.parquet``, each row linked to
its original by path and SHA-256.

Originals are evidence. They are read only by ffmpeg (and hashed read-only by :func:`~bwc.audio.sha256_file`), and
before anything is cut from one its SHA-256 is computed again and compared with the one recorded at ingest: an
original that changed or went missing is a :class:`~bwc.records.Failure` for that recording, nothing is cut from it,
and the other recordings go on.

Clip ids depend only on the recording, the clip's span and its kind, so recomputing flags and clips finds the same
ids: a clip whose file is still there with the hash the table recorded is reused, not cut again.

Example
-------
>>> summary = cut_clips(Store("/data/bwc-store"), ClipsConfig(pad_before_s=3.0))   # doctest: +SKIP
>>> summary.written, summary.reused, [f.reason for f in summary.failures]            # doctest: +SKIP
(12, 40, [])
>>> clip_path(store, row)                                                             # doctest: +SKIP
PosixPath('/data/bwc-store/clips/_files/3f9c0a1b2c3d4e5f.ogg')
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bwc.audio import AudioError, _last_line, require_ffmpeg, sha256_file
from bwc.config import ClipsConfig
from bwc.records import Failure
from bwc.store import Store, write_atomically

CLIPS_TABLE = "clips"
CLIPS_PART = "part-current"  # the clips table is rewritten whole on every call
# Inside the store, and inside the clips table's folder, so it needs the leading underscore: Parquet dataset readers
# (pyarrow, and pandas.read_parquet through it) recurse into a table's sub-folders and skip only names starting with
# "_" or "."; with a plain "files" folder every reader of STORE/clips would try to read the clips as Parquet.
FILES_FOLDER = Path("clips") / "_files"
STAGE = "clips"  # Failure.stage
AUDIO, VIDEO = "audio", "video"  # clip kinds
EXTENSIONS = {AUDIO: ".ogg", VIDEO: ".mp4"}
CLIP_ID_HEX = 16  # clip ids are this many hex digits of a SHA-256
CLIP_FILE_NAME = re.compile(rf"^[0-9a-f]{{{CLIP_ID_HEX}}}\.(ogg|mp4)$")  # what cleanup may delete
TIME_DECIMALS = 3  # clip bounds are kept to the millisecond, so ids and table values agree exactly
CUT_TIMEOUT_BASE_S = 120.0  # an ffmpeg cut may take this long plus CUT_TIMEOUT_PER_S per second of clip
CUT_TIMEOUT_PER_S = 10.0  # generous: a 1080p video clip re-encodes at several times real time with veryfast

# -nostdin: ffmpeg must never wait on a terminal; -bitexact: no encoder version string and fixed Ogg stream serials,
# so cutting the same span from the same original again gives the same bytes.
FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
BITEXACT = ["-fflags", "+bitexact", "-flags:a", "+bitexact"]
# Opus is resampled to 48 kHz (the rate it codes at; ffmpeg would otherwise pick one) and down-mixed to mono, which
# is what a reviewer listens to. Chromium plays Ogg Opus natively.
AUDIO_OUTPUT = ["-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", "48000", "-c:a", "libopus", "-b:a", "48k"]
AUDIO_OUTPUT += [*BITEXACT, "-f", "ogg"]
# 0:V is the first real video stream (not cover art). yuv420p needs even dimensions, hence the scale to even sizes;
# +faststart puts the index first so a browser can start playing before the whole file has arrived.
VIDEO_OUTPUT = ["-map", "0:V:0", "-map", "0:a:0", "-sn", "-dn", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2"]
VIDEO_OUTPUT += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"]
VIDEO_OUTPUT += [*BITEXACT, "-movflags", "+faststart", "-f", "mp4"]


@dataclass(frozen=True, slots=True)
class ClipSpan:
    """A stretch of one recording to cut: flagged spans padded, clamped and merged."""

    start: float  # seconds from the recording's start, padding included, rounded to the millisecond
    end: float  # seconds from the recording's start, padding included, rounded to the millisecond
    utterance_ids: tuple[str, ...]  # the flagged utterances it covers, in time order


@dataclass(frozen=True, slots=True)
class PlannedClip:
    """One clip file the current flags call for, with the flag it belongs to."""

    clip_id: str  # see :func:`clip_id`
    encounter_id: str  # the flagged encounter
    flag: str  # poor | exemplary
    recording_id: str  # the original it is cut from
    span: ClipSpan  # what to cut
    kind: str  # audio | video

    @property
    def file(self) -> str:
        """Path inside the store, as the table records it."""
        return (FILES_FOLDER / f"{self.clip_id}{EXTENSIONS[self.kind]}").as_posix()


@dataclass(frozen=True, slots=True)
class ClipSummary:
    """What one :func:`cut_clips` call did."""

    written: int  # clip files cut now
    reused: int  # clip files already there with the hash the table recorded
    removed: int  # clip files deleted because no current flag calls for them any more
    verified: int  # originals whose SHA-256 was checked against ingest (each once), whether it matched or not
    rows: int  # rows in the clips table now
    failures: tuple[Failure, ...]  # originals that changed or are missing, and cuts ffmpeg could not make


def clip_id(recording_id: str, start: float, end: float, kind: str) -> str:
    """The id of the ``kind`` clip of ``recording_id`` from ``start`` to ``end`` seconds.

    >>> clip_id("0123456789abcdef", 1.0, 4.5, "audio") == clip_id("0123456789abcdef", 1.0004, 4.5, "audio")
    True
    """
    key = f"{recording_id}:{start:.3f}:{end:.3f}:{kind}"
    return hashlib.sha256(key.encode()).hexdigest()[:CLIP_ID_HEX]


def merge_spans(
    spans: Iterable[tuple[float, float, str]], duration_s: float | None, config: ClipsConfig
) -> list[ClipSpan]:
    """Pad ``(start, end, utterance_id)`` spans, clamp them to ``[0, duration_s]``, and merge those that overlap or
    are closer than ``config.merge_gap_s``.

    >>> config = ClipsConfig(pad_before_s=1.0, pad_after_s=0.5, merge_gap_s=1.0)
    >>> [(s.start, s.end, s.utterance_ids) for s in merge_spans([(0.2, 1.0, "a"), (2.0, 2.5, "b")], 20.0, config)]
    [(0.0, 3.0, ('a', 'b'))]
    >>> [(s.start, s.end) for s in merge_spans([(5.0, 6.0, "a"), (9.0, 19.8, "b")], 20.0, config)]
    [(4.0, 6.5), (8.0, 20.0)]
    """
    padded = []
    for start, end, utterance_id in spans:
        low = max(0.0, start - config.pad_before_s)
        high = end + config.pad_after_s if duration_s is None else min(duration_s, end + config.pad_after_s)
        if high > low:  # a span wholly past the recording's end (a stale flag) has nothing to cut
            padded.append((low, high, utterance_id))
    merged: list[tuple[float, float, list[str]]] = []
    for low, high, utterance_id in sorted(padded):
        if merged and (low <= merged[-1][1] or low - merged[-1][1] < config.merge_gap_s):
            previous_low, previous_high, ids = merged[-1]
            merged[-1] = (previous_low, max(previous_high, high), ids)
        else:
            merged.append((low, high, []))
        if utterance_id and utterance_id not in merged[-1][2]:
            merged[-1][2].append(utterance_id)
    return [
        ClipSpan(round(low, TIME_DECIMALS), round(high, TIME_DECIMALS), tuple(ids))
        for low, high, ids in merged
        if round(high, TIME_DECIMALS) > round(low, TIME_DECIMALS)
    ]


def plan_clips(
    flags: Sequence[dict[str, Any]], recordings: dict[str, dict[str, Any]], config: ClipsConfig
) -> tuple[list[PlannedClip], list[Failure]]:
    """The clips that ``flags`` rows call for, per (encounter, flag, recording); and flags that point at nothing.

    Spans without times (encounters scored from transcript tables) get no clips and are no failure.
    """
    grouped: dict[tuple[str, str, str], list[tuple[float, float, str]]] = {}
    failures: list[Failure] = []
    for row in flags:
        try:
            spans = json.loads(row["spans"] or "[]")
        except (TypeError, ValueError) as error:
            reason = f"flag {row['flag']} of encounter {row['encounter_id']} has unreadable spans: {error}"
            failures.append(Failure(path=str(row.get("recording_id") or ""), sha256=None, stage=STAGE, reason=reason))
            continue
        for span in spans:
            recording_id = span.get("recording_id") or row.get("recording_id")
            if recording_id is None or span.get("start") is None or span.get("end") is None:
                continue
            key = (row["encounter_id"], row["flag"], recording_id)
            utterance_id = str(span.get("utterance_id") or "")
            grouped.setdefault(key, []).append((float(span["start"]), float(span["end"]), utterance_id))
    planned: list[PlannedClip] = []
    unknown: set[str] = set()
    for (encounter_id, flag, recording_id), spans in sorted(grouped.items()):
        recording = recordings.get(recording_id)
        if recording is None:
            unknown.add(recording_id)
            continue
        kinds = [AUDIO, VIDEO] if config.video and recording.get("has_video") else [AUDIO]
        for span in merge_spans(spans, recording.get("duration_s"), config):
            for kind in kinds:
                identifier = clip_id(recording_id, span.start, span.end, kind)
                planned.append(PlannedClip(identifier, encounter_id, flag, recording_id, span, kind))
    for recording_id in sorted(unknown):
        reason = f"flagged spans point at recording {recording_id}, which the recordings table does not have"
        failures.append(Failure(path=recording_id, sha256=None, stage=STAGE, reason=reason))
    return planned, failures


def cut_clips(
    store: Store,
    config: ClipsConfig,
    on_cut: Callable[[PlannedClip, dict[str, Any], dict[str, Any]], None] | None = None,
) -> ClipSummary:
    """Cut the clips the store's current flags call for, and rewrite ``clips/part-current.parquet``.

    ``on_cut(clip, recording row, file facts)`` is called for each clip file cut now (the custody log records it).

    Never raises for one recording: a changed or missing original, or a cut ffmpeg cannot make, is a
    :class:`~bwc.records.Failure` in the summary and the rest go on.

    Raises
    ------
    AudioError
        When ffmpeg is not installed at all.
    """
    require_ffmpeg()
    recordings = {row["recording_id"]: row for row in store.read_rows("recordings")}
    planned, failures = plan_clips(store.read_rows("flags"), recordings, config)
    previous = {row["clip_id"]: row for row in store.read_rows(CLIPS_TABLE)}
    files_folder = store.root / FILES_FOLDER
    files_folder.mkdir(parents=True, exist_ok=True)

    verdicts: dict[str, Failure | None] = {}  # recording id -> None when its original verified, else why not
    files: dict[str, dict[str, Any] | None] = {}  # clip id -> file facts, None when it could not be cut
    written = reused = 0
    rows = []
    for clip in planned:
        recording = recordings[clip.recording_id]
        if clip.clip_id not in files:  # the same file may serve several flags; cut (or fail) it once
            files[clip.clip_id] = _reusable(store, previous.get(clip.clip_id), recording)
            if files[clip.clip_id] is not None:
                reused += 1
            else:
                if clip.recording_id not in verdicts:
                    verdicts[clip.recording_id] = verdict = _verify_original(recording)
                    if verdict is not None:
                        failures.append(verdict)
                if verdicts[clip.recording_id] is None:
                    try:
                        files[clip.clip_id] = _cut(store, clip, recording)
                        written += 1
                        if on_cut is not None:
                            on_cut(clip, recording, files[clip.clip_id])
                    except AudioError as error:
                        path, sha256 = recording["path"], recording["sha256"]
                        failures.append(Failure(path=path, sha256=sha256, stage=STAGE, reason=str(error)))
        facts = files[clip.clip_id]
        if facts is None:
            continue
        rows.append(
            {
                "clip_id": clip.clip_id,
                "encounter_id": clip.encounter_id,
                "flag": clip.flag,
                "recording_id": clip.recording_id,
                "utterance_ids": json.dumps(list(clip.span.utterance_ids)),
                "start": clip.span.start,
                "end": clip.span.end,
                "kind": clip.kind,
                "file": clip.file,
                "original_path": recording["path"],
                "original_sha256": recording["sha256"],
            }
            | facts
        )
    # The table first, then the files no row references: a crash in between leaves only unreferenced files, which
    # the next call deletes.
    store.write_rows(CLIPS_TABLE, CLIPS_PART, rows)
    for stale in store.table_path(CLIPS_TABLE).glob("part-*.parquet"):
        if stale.name != f"{CLIPS_PART}.parquet":
            stale.unlink(missing_ok=True)
    referenced = {Path(row["file"]).name for row in rows}
    removed = 0
    for path in files_folder.iterdir():
        if CLIP_FILE_NAME.match(path.name) and path.name not in referenced and path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return ClipSummary(
        written=written,
        reused=reused,
        removed=removed,
        verified=len(verdicts),
        rows=len(rows),
        failures=tuple(failures),
    )


def clip_path(store: Store, clip_row: dict[str, Any]) -> Path:
    """The file of a ``clips`` row, resolved inside ``STORE/clips/_files``.

    Raises
    ------
    ValueError
        When the row's ``file`` is absolute or resolves (through ``..`` or links) anywhere but directly inside
        ``STORE/clips/_files``: the review app serves clips by id and must never be led to another file.
    """
    file = str(clip_row.get("file") or "")
    folder = (store.root / FILES_FOLDER).resolve()
    if not file or Path(file).is_absolute():
        raise ValueError(f"clip file {file!r} is not a path inside the store")
    path = (store.root / file).resolve()
    if path.parent != folder or not CLIP_FILE_NAME.match(path.name):
        raise ValueError(f"clip file {file!r} is outside {FILES_FOLDER.as_posix()}")
    return path


def _reusable(store: Store, row: dict[str, Any] | None, recording: dict[str, Any]) -> dict[str, Any] | None:
    """The file facts of a clip already cut, when its file is still there with the recorded hash, from this
    original."""
    if row is None or row["original_sha256"] != recording["sha256"]:
        return None
    try:
        path = clip_path(store, row)
        if sha256_file(path) != row["sha256"]:
            return None
    except (ValueError, OSError):
        return None
    return {"sha256": row["sha256"], "size_bytes": row["size_bytes"], "created_at": row["created_at"]}


def _verify_original(recording: dict[str, Any]) -> Failure | None:
    """None when the original still has the SHA-256 recorded at ingest, else the failure that says why not."""
    path, recorded = recording["path"], recording["sha256"]
    if not os.path.isfile(path):
        return Failure(path=path, sha256=None, stage=STAGE, reason=f"the original is missing: {path}")
    try:
        actual = sha256_file(path)
    except OSError as error:
        reason = f"the original cannot be read ({error.strerror or error}): no clips cut from it"
        return Failure(path=path, sha256=None, stage=STAGE, reason=reason)
    if actual != recorded:
        change = f"sha256 {actual[:12]} ≠ recorded {recorded[:12]}"
        reason = f"the original changed since ingest ({change}): no clips cut from it"
        return Failure(path=path, sha256=actual, stage=STAGE, reason=reason)
    return None


def _cut(store: Store, clip: PlannedClip, recording: dict[str, Any]) -> dict[str, Any]:
    """Cut one clip with ffmpeg into a hidden temporary name, rename it into place, and return its file facts.

    Raises
    ------
    AudioError
        With ffmpeg's last error line when the cut fails.
    """
    duration = clip.span.end - clip.span.start
    output = AUDIO_OUTPUT if clip.kind == AUDIO else VIDEO_OUTPUT
    # -ss before -i seeks the input; with re-encoding, ffmpeg decodes from the previous key frame and discards up to
    # the exact time. "file:" keeps ffmpeg from reading a path as some other protocol; it opens inputs read-only.
    arguments = ["-ss", f"{clip.span.start:.3f}", "-i", f"file:{recording['path']}", "-t", f"{duration:.3f}", *output]
    timeout = CUT_TIMEOUT_BASE_S + CUT_TIMEOUT_PER_S * duration
    label = f"{clip.kind} clip {clip.span.start:.3f}–{clip.span.end:.3f} s"

    def run_ffmpeg(temporary: str) -> None:
        try:
            completed = subprocess.run(
                [*FFMPEG, *arguments, f"file:{temporary}"], capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise AudioError(f"ffmpeg did not cut the {label} within {timeout:.0f} s") from error
        if completed.returncode != 0:
            detail = _last_line(completed.stderr) or f"exit status {completed.returncode}"
            raise AudioError(f"ffmpeg could not cut the {label}: {detail}")

    path = store.root / clip.file
    write_atomically(path, run_ffmpeg)
    return {"sha256": sha256_file(path), "size_bytes": path.stat().st_size, "created_at": datetime.now(UTC)}
