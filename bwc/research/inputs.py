"""Inputs of training-effect research: scored encounters (from a store or a table) and a training roster.

Encounters come from a bwc store (``STORE/encounter_scores``, written by ``bwc run`` and ``bwc score``) or from any
CSV, TSV or Parquet table with at least ``officer_id, recorded_at`` and outcome columns (``encounter_id`` optional).
``recorded_at`` is parsed to UTC (values without an offset are taken as UTC). Rows without an officer or a readable
time are dropped, and the count is kept in ``frame.attrs["dropped"]`` (with the reasons in
``frame.attrs["dropped_detail"]``) so the caller can report it. ``all_five`` (1 when all five trained behaviours
occurred) is derived when the behaviour columns exist.

The roster is a CSV (or Parquet) of ``officer_id, program, trained_on``: one training date per officer per program.

Example
-------
>>> encounters = load_encounters(store=Path("/data/bwc-store"))          # doctest: +SKIP
>>> encounters.attrs["dropped"]                                          # doctest: +SKIP
3
>>> roster = load_roster(Path("roster.csv"))                             # doctest: +SKIP
>>> roster.columns.tolist()                                              # doctest: +SKIP
['officer_id', 'program', 'trained_on']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bwc.store import Store

ENCOUNTER_TABLE = "encounter_scores"  # the store table read
REQUIRED_ENCOUNTER_COLUMNS = ("officer_id", "recorded_at")
ID_COLUMNS = ("encounter_id", "recording_id", "officer_id")  # read as text, so badge "007" stays "007"
BEHAVIOUR_COLUMNS = (
    "pj_greeting_introduction", "pj_reason_early", "pj_safety_concern", "pj_reassurance", "pj_formal_title",
)  # fmt: skip
ALL_BEHAVIOURS = len(BEHAVIOUR_COLUMNS)  # behaviours_present of an encounter with all five
TRUE_WORDS, FALSE_WORDS = {"true", "1", "yes"}, {"false", "0", "no"}  # booleans as CSV files spell them
ROSTER_COLUMNS = ("officer_id", "program", "trained_on")
REQUIRED_ROSTER_COLUMNS = ("officer_id", "trained_on")  # without program, the roster is one unnamed program


def load_encounters(store: Path | None = None, encounters_file: Path | None = None) -> pd.DataFrame:
    """Scored encounters from a store or a table, with UTC ``recorded_at`` and ``all_five`` derived.

    Parameters
    ----------
    store
        A bwc store: its ``encounter_scores`` parts are read oldest first, and when two parts score the same
        ``encounter_id`` the newest wins (as the flags do).
    encounters_file
        A CSV, TSV or Parquet table instead (exactly one of the two).

    Returns
    -------
    pandas.DataFrame
        One row per encounter; ``attrs["dropped"]`` rows were left out (``attrs["dropped_detail"]`` says why) and
        ``attrs["source"]`` names where they came from.

    Raises
    ------
    ValueError
        When the source is missing, unreadable or lacks ``officer_id`` / ``recorded_at``.
    """
    if (store is None) == (encounters_file is None):
        raise ValueError("give either a store or an encounters file, not both or neither")
    if store is not None:
        source = Path(store) / ENCOUNTER_TABLE
        table = _read_store_table(Path(store))
    else:
        source = Path(encounters_file)
        table = _read_table(source)
    table.columns = [str(column).strip() for column in table.columns]
    missing = [column for column in REQUIRED_ENCOUNTER_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)}; encounters need "
            f"{', '.join(REQUIRED_ENCOUNTER_COLUMNS)} and outcome columns (e.g. respect)"
        )
    frame = table.copy()
    frame["officer_id"] = frame["officer_id"].astype("string").str.strip().replace("", pd.NA)
    frame["recorded_at"] = _utc(frame["recorded_at"])
    no_officer = frame["officer_id"].isna()
    no_time = frame["recorded_at"].isna() & ~no_officer
    frame = frame[~no_officer & ~no_time].reset_index(drop=True)
    frame["officer_id"] = frame["officer_id"].astype(str)
    for column in BEHAVIOUR_COLUMNS:
        if column in frame.columns:
            frame[column] = _boolean(frame[column], source)
    if "all_five" not in frame.columns:
        if "behaviours_present" in frame.columns:
            present = pd.to_numeric(frame["behaviours_present"], errors="coerce")
            frame["all_five"] = (present == ALL_BEHAVIOURS).astype("Int64").mask(present.isna())
        elif all(column in frame.columns for column in BEHAVIOUR_COLUMNS):
            frame["all_five"] = frame[list(BEHAVIOUR_COLUMNS)].all(axis=1, skipna=False).astype("Int64")
    frame.attrs["source"] = str(source)
    frame.attrs["dropped"] = int(no_officer.sum() + no_time.sum())
    frame.attrs["dropped_detail"] = (
        f"{int(no_officer.sum())} without officer_id, {int(no_time.sum())} without a readable recorded_at"
    )
    return frame


def load_roster(path: Path) -> pd.DataFrame:
    """The training roster: ``officer_id, program, trained_on`` (a date), one date per officer and program.

    Raises
    ------
    ValueError
        When a column is missing, a row lacks an officer or a readable date, or an officer has two dates for one
        program (the message names the officer and the line).
    """
    path = Path(path)
    table = _read_table(path)
    table.columns = [str(column).strip().lower() for column in table.columns]
    missing = [column for column in REQUIRED_ROSTER_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; a roster needs {', '.join(ROSTER_COLUMNS)}")
    if table.empty:
        raise ValueError(f"{path}: the roster has no rows")
    roster = pd.DataFrame({"officer_id": table["officer_id"].astype("string").str.strip()})
    roster["program"] = table["program"].astype("string").str.strip() if "program" in table.columns else pd.NA
    trained_on = pd.to_datetime(table["trained_on"], errors="coerce", utc=True, format="mixed")
    # A data row's line in the file, for messages: line 1 is the header.
    lines = pd.Series(np.arange(len(table)) + 2, index=table.index)
    for problem, bad in (
        ("no officer_id", roster["officer_id"].isna() | (roster["officer_id"] == "")),
        ("no readable trained_on date", trained_on.isna()),
    ):
        if bad.any():
            first = bad.idxmax()
            raise ValueError(
                f"{path}: {int(bad.sum())} row(s) with {problem}, first on line {lines[first]} "
                f"({table.loc[first].to_dict()})"
            )
    roster["trained_on"] = trained_on.dt.tz_convert(None).dt.normalize()
    keys = ["officer_id", "program"]
    duplicated = roster.duplicated(keys, keep=False)
    if duplicated.any():
        first = roster[duplicated].iloc[0]
        in_program = "" if pd.isna(first["program"]) else f" in program {first['program']!r}"
        where = ", ".join(str(line) for line in lines[duplicated & (roster["officer_id"] == first["officer_id"])])
        raise ValueError(
            f"{path}: officer {first['officer_id']!r} is listed more than once{in_program} (lines {where}); "
            "give one training date per officer per program"
        )
    roster["officer_id"] = roster["officer_id"].astype(str)
    return roster[list(ROSTER_COLUMNS)]


def _read_store_table(store: Path) -> pd.DataFrame:
    """Every part of ``STORE/encounter_scores``, oldest first, the newest scoring of an encounter kept."""
    if not store.is_dir():
        raise ValueError(f"{store}: no such store")
    table = Store(store).read_parts(ENCOUNTER_TABLE).drop(columns="part")
    if table.empty:
        raise ValueError(
            f"{store / ENCOUNTER_TABLE}: no scored encounters in this store (run `bwc run` or `bwc score` first)"
        )
    return table.drop_duplicates("encounter_id", keep="last").reset_index(drop=True)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet" or path.is_dir():
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv", ".tab", ".txt"):
            separator = "\t" if suffix in (".tsv", ".tab") else ","
            header = pd.read_csv(path, sep=separator, nrows=0).columns
            text = {column: "string" for column in header if str(column).strip().lower() in ID_COLUMNS}
            return pd.read_csv(path, sep=separator, dtype=text, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ValueError(f"{path}: cannot read the table: {error}") from error
    raise ValueError(f"{path}: expected a .csv, .tsv or .parquet file")


def _utc(values: pd.Series) -> pd.Series:
    """Timestamps as UTC; values without an offset are taken as UTC, unreadable ones become NaT."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values):
        return values.dt.tz_localize("UTC")
    text = values.astype("string").str.strip()
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    retry = parsed.isna() & text.notna() & (text != "")
    if retry.any():  # e.g. "03/01/2026 10:15 PM" from a spreadsheet (month first, as dateutil reads it)
        parsed[retry] = pd.to_datetime(text[retry], errors="coerce", utc=True, format="mixed")
    return parsed


def _boolean(values: pd.Series, source: Path) -> pd.Series:
    """A behaviour column as nullable booleans (CSV files spell them True/False, 1/0, yes/no)."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean")
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("Float64").astype("boolean")
    words = values.astype("string").str.strip().str.lower()
    unknown = words.notna() & ~words.isin(TRUE_WORDS | FALSE_WORDS)
    if unknown.any():
        raise ValueError(f"{source}: {values.name} must be true/false, found {words[unknown].iloc[0]!r}")
    return words.isin(TRUE_WORDS).astype("boolean").mask(words.isna())
