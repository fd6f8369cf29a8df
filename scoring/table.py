"""Transcript tables a department already has, read into :class:`~bwc.records.Encounter` records.

Required columns: ``encounter_id, turn, role, text`` with role one of officer / civilian / other (case and
surrounding spaces ignored). Optional: ``start, end`` (seconds), ``officer_id``, ``recorded_at`` (ISO 8601; values
without an offset are taken as UTC), ``speaker``, ``recording_id`` (the store's id of the recording the transcript is
of: its flags then get clips, and reviewers hear the audio). CSV, TSV and Parquet are read by extension.

Example
-------
>>> encounters = read_transcripts(Path("stops.csv"))        # doctest: +SKIP
>>> encounters[0].lines[0].role                            # doctest: +SKIP
'officer'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bwc.records import TRANSCRIPT_ROLES, Encounter, TranscriptLine

REQUIRED_COLUMNS = ("encounter_id", "turn", "role", "text")
OPTIONAL_COLUMNS = ("start", "end", "officer_id", "recorded_at", "speaker", "recording_id")
ID_COLUMNS = ("encounter_id", "officer_id", "speaker", "recording_id")  # read as text, whatever they look like


class TranscriptTableError(ValueError):
    """The table cannot be scored as it is; the message says what to change."""


def read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet" or path.is_dir():
        return pd.read_parquet(path)
    # Identifiers stay text: badge "007" must not become 7 (a roster naming "007" would then match nobody).
    ids = {column: str for column in ID_COLUMNS}
    if suffix in (".tsv", ".tab"):
        return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], dtype=ids)
    if suffix in (".csv", ".txt"):
        return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=ids)
    raise TranscriptTableError(f"{path}: expected a .csv, .tsv or .parquet transcript table")


def read_transcripts(path: Path) -> list[Encounter]:
    """Encounters of a transcript table, lines in turn order; raises :class:`TranscriptTableError`."""
    try:
        table = read_table(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise TranscriptTableError(f"{path}: cannot read the table: {error}") from error
    table.columns = [str(column).strip().lower() for column in table.columns]
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise TranscriptTableError(
            f"{path}: missing column(s) {', '.join(missing)}; a transcript table needs "
            f"{', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)})"
        )
    table = table.dropna(subset=["encounter_id", "text"]).copy()
    table["role"] = table["role"].astype(str).str.strip().str.lower()
    bad_roles = sorted(set(table["role"]) - set(TRANSCRIPT_ROLES))
    if bad_roles:
        raise TranscriptTableError(f"{path}: role must be one of {', '.join(TRANSCRIPT_ROLES)}; found {bad_roles}")
    table["turn"] = pd.to_numeric(table["turn"], errors="coerce")
    if table["turn"].isna().any():
        raise TranscriptTableError(f"{path}: turn must be a number on every row")
    if "recorded_at" in table.columns:
        table["recorded_at"] = pd.to_datetime(table["recorded_at"], utc=True, errors="coerce", format="ISO8601")
    table["encounter_id"] = table["encounter_id"].astype(str)
    encounters = []
    for encounter_id, rows in table.sort_values(["encounter_id", "turn"]).groupby("encounter_id", sort=False):
        lines = tuple(
            TranscriptLine(
                encounter_id=str(encounter_id),
                turn=int(row["turn"]),
                role=row["role"],
                text=str(row["text"]),
                speaker=_optional(row, "speaker", str),
                start=_optional(row, "start", float),
                end=_optional(row, "end", float),
            )
            for row in rows.to_dict("records")
        )
        first = rows.iloc[0].to_dict()
        encounters.append(
            Encounter(
                encounter_id=str(encounter_id),
                lines=lines,
                officer_id=_optional(first, "officer_id", str),
                recorded_at=_optional(first, "recorded_at", lambda value: value.to_pydatetime()),
                recording_id=_optional(first, "recording_id", str),
            )
        )
    return encounters


def _optional(row: dict[str, Any], column: str, convert: Any) -> Any:
    value = row.get(column)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return convert(value)
