"""Ingest: find footage, identify each original by its SHA-256, describe it, join the evidence metadata.

Example
-------
>>> paths = discover(["/intake"])                                    # doctest: +SKIP
>>> table = MetadataTable.from_csv("/intake/export.csv", MetadataConfig())  # doctest: +SKIP
>>> recording = ingest_file(paths[0], table)                         # doctest: +SKIP
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bwc.audio import probe, sha256_file
from bwc.config import MetadataConfig
from bwc.records import Metadata, Recording

MEDIA_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".mp4", ".mov", ".mkv", ".avi"}
)  # what discovery picks up in folders; a file named explicitly is always tried
RECORDING_ID_HEX = 16  # recording ids are this many leading hex digits of the SHA-256
METADATA_FIELDS = ("evidence_id", "officer_id", "recorded_at", "incident_id", "category")


class IngestError(RuntimeError):
    """An original could not be ingested; the message says why in one line.

    ``sha256`` is the file's hash when it could be read before the problem was found (so that the custody log of
    that content records the rejection), else None.
    """

    def __init__(self, reason: str, sha256: str | None = None) -> None:
        super().__init__(reason)
        self.sha256 = sha256


def discover(inputs: Iterable[str | Path]) -> list[Path]:
    """Media files among ``inputs``: files as given, folders searched recursively, sorted, without repeats.

    Symbolic links are followed for files but not for folders, so a link loop cannot make discovery run forever.
    """
    found: dict[Path, None] = {}
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    candidate = Path(root) / name
                    if candidate.suffix.lower() in MEDIA_EXTENSIONS and not name.startswith("."):
                        found.setdefault(candidate.absolute(), None)
        elif path.exists() or path.is_symlink():
            found.setdefault(path.absolute(), None)
        else:
            raise FileNotFoundError(f"input not found: {path}")
    return sorted(found)


class MetadataTable:
    """The evidence system's export, indexed for matching by file name and by evidence id.

    Parameters
    ----------
    frame
        One row per original, already renamed to bwc's field names.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self._by_file_name: dict[str, Metadata] = {}
        self._by_evidence_id: dict[str, Metadata] = {}
        for row in frame.to_dict("records"):
            metadata = Metadata(**{name: _present(row.get(name)) for name in METADATA_FIELDS})
            if file_name := _present(row.get("file_name")):
                self._by_file_name[Path(str(file_name)).name.casefold()] = metadata
            if metadata.evidence_id:
                self._by_evidence_id[metadata.evidence_id.casefold()] = metadata

    @classmethod
    def empty(cls) -> MetadataTable:
        return cls(pd.DataFrame(columns=["file_name", *METADATA_FIELDS]))

    @classmethod
    def from_csv(cls, path: str | Path, config: MetadataConfig) -> MetadataTable:
        """Read the export, mapping its columns through ``config.columns``.

        ``recorded_at`` values without an offset are taken to be in ``config.timezone`` and converted to UTC.
        """
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        unknown = [column for column in config.columns.values() if column not in raw.columns]
        if len(unknown) == len(config.columns):
            raise IngestError(
                f"{path}: none of the configured metadata columns {sorted(config.columns.values())} are present; "
                f"the file has {list(raw.columns)}. Set metadata.columns in the config to map them."
            )
        if config.columns.get("file_name") not in raw.columns and config.columns.get("evidence_id") not in raw.columns:
            raise IngestError(f"{path}: needs a file name or an evidence id column to match recordings")
        frame = pd.DataFrame(
            {field: raw[column] if column in raw.columns else None for field, column in config.columns.items()}
        )
        frame["recorded_at"] = _parse_times(frame["recorded_at"], config.timezone, path)
        return cls(frame)

    def match(self, path: Path) -> Metadata:
        """Metadata for an original: by exact file name first, then by its stem as an evidence id."""
        return (
            self._by_file_name.get(path.name.casefold()) or self._by_evidence_id.get(path.stem.casefold()) or Metadata()
        )


def ingest_file(
    path: str | Path,
    metadata: MetadataTable,
    max_duration_s: float | None = None,
    max_size_bytes: int | None = None,
) -> Recording:
    """Hash, probe and describe one original. The file is only ever opened read-only.

    Raises
    ------
    IngestError
        With a one-line reason when the file cannot be read, is not usable audio, or is over a configured limit.
    """
    path = Path(path)
    sha256: str | None = None
    try:
        _require_regular_file(path)
        size = path.stat().st_size
        if size == 0:
            raise IngestError("empty file (0 bytes)")
        if max_size_bytes is not None and size > max_size_bytes:
            raise IngestError(
                f"size {_bytes(size)} is over the configured maximum {_bytes(max_size_bytes)} (run.max_file_size)"
            )
        sha256 = sha256_file(path)
        info = probe(path)
    except PermissionError as error:
        raise IngestError(f"permission denied: cannot read {path.name} ({error.strerror})", sha256) from error
    except FileNotFoundError as error:
        raise IngestError("file disappeared during ingest (deleted or moved)", sha256) from error
    except IsADirectoryError as error:
        raise IngestError("a folder, not a media file", sha256) from error
    except OSError as error:
        raise IngestError(f"could not read file: {error.strerror or error}", sha256) from error
    except IngestError as error:
        raise IngestError(str(error), sha256) from None
    except RuntimeError as error:  # AudioError
        raise IngestError(str(error), sha256) from error
    if info.duration_s <= 0:
        raise IngestError("audio stream is empty (duration 0)", sha256)
    if max_duration_s is not None and info.duration_s > max_duration_s:
        raise IngestError(
            f"duration {info.duration_s:.0f} s is over the configured maximum {max_duration_s:.0f} s "
            "(run.max_duration_s)",
            sha256,
        )
    return Recording(
        recording_id=sha256[:RECORDING_ID_HEX],
        path=str(path.absolute()),
        sha256=sha256,
        size_bytes=size,
        audio=info,
        metadata=metadata.match(path),
    )


def _require_regular_file(path: Path) -> None:
    """Refuse what is not a regular file, naming what it is: a link loop, a dangling link, a folder, a device."""
    try:
        mode = path.stat().st_mode  # follows links
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise IngestError(f"symbolic link loop: {path.name} -> {os.readlink(path)} never reaches a file") from None
        if path.is_symlink():
            raise IngestError(f"broken symbolic link: {path.name} -> {os.readlink(path)} does not exist") from None
        raise
    if stat.S_ISDIR(mode):
        raise IngestError("a folder, not a media file")
    if not stat.S_ISREG(mode):
        kind = "named pipe" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
        raise IngestError(f"not a regular file (a {kind}): not read, since reading it could block forever")


def _bytes(size: int) -> str:
    """A size as people read it: 4.2 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _parse_times(values: pd.Series, timezone: str, source: str | Path) -> list[datetime | None]:
    parsed: list[datetime | None] = []
    for value in values:
        if _present(value) is None:
            parsed.append(None)
            continue
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError) as error:
            raise IngestError(f"{source}: recorded_at value {value!r} is not a date/time") from error
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize(timezone)
        parsed.append(stamp.tz_convert(UTC).to_pydatetime())
    return parsed


def _present(value: object) -> object:
    """``value`` unless it is an empty cell (None, NaN/NA, or blank text), then None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return None if pd.isna(value) else value  # type: ignore[call-overload]
