"""Public tables: what analysed encounters show, per period and group, before disclosure control.

Every analysed encounter (one with officer language to judge, as the flags count them) becomes one row of
:func:`encounter_frame` with its period, its groups and the binary measures the tables publish; :func:`build_cells`
turns those rows into one cell per table, period and group. A cell keeps, besides the published measures, what the
suppression rules need (its officers) and what the changelog needs (a digest of its encounters and the model
versions behind them). Nothing in a cell names an encounter or an officer.

The tables:

- ``overall``: one row per period (group ``all``), the period's total;
- ``by_<field>``: one row per period and value of ``field`` (district, stop reason, time of day, civilian race,
  gender, age group, outcome, evidence category). Every value appears in every period (a value new to a series of
  releases from the first new period on), so a table's rows add up to the period's total, and a missing value is
  counted as ``unknown``. A value with fewer than ``min_cell`` encounters over all periods is counted as ``other``,
  so a rare free-text label never reaches the public.

Example
-------
>>> frame = encounter_frame(Store("/data/bwc-store"), PublishSettings())            # doctest: +SKIP
>>> cells = build_cells(frame, ("district", "time_of_day"), min_cell=11)           # doctest: +SKIP
>>> sorted(cells.table.unique())                                                   # doctest: +SKIP
['by_district', 'by_time_of_day', 'overall']
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from bwc.config import BwcConfig, FlagsConfig
from bwc.records import TIMES_OF_DAY
from bwc.store import BEHAVIOUR_COLUMNS, Store
from scoring.flags import HOSTILE_ACTS, score_department

PERIODS = ("month", "quarter")
STOP_FIELDS = ("district", "stop_reason", "race", "gender", "age_group", "outcome")  # from a stop-data file
GROUP_FIELDS = (*STOP_FIELDS, "time_of_day", "category")  # every field a table may be grouped by
DEFAULT_BY = ("district", "stop_reason", "time_of_day")  # those present are published when --by is not given
OVERALL, ALL = "overall", "all"  # the total table and its one group
UNKNOWN, OTHER = "unknown", "other"  # a missing value; a value too rare to publish on its own
LABEL_CHARACTERS = re.compile(r"[^a-z0-9 _./&+-]+")  # a published group label keeps only these
LABEL_MAX_CHARS = 40
# Binary measures: (column, what the data dictionary says); each table publishes the share of encounters with it.
BINARY_MEASURES: tuple[tuple[str, str], ...] = (
    ("greeting_introduction", "the officer greeted the person or introduced themselves"),
    ("reason_early", "the officer gave the reason for the stop within their first 45 words"),
    ("safety_concern", "the officer expressed concern for the person's safety"),
    ("reassurance", "the officer reassured the person (e.g. that they are free to go, that it will be quick)"),
    ("formal_title", "the officer addressed the person with a formal title (sir, ma'am, Mr./Ms.)"),
    ("all_five", "all five of the behaviours above occurred"),
    ("threat", "an officer utterance was scored as a threat"),
    ("insult", "an officer utterance was scored as an insult"),
    ("profanity", "an officer utterance contained profanity"),
    ("command_before_reason", "the officer gave a command before giving any reason for the stop"),
    ("flagged_poor", "the encounter was flagged as going particularly poorly relative to the department"),
    ("flagged_exemplary", "the encounter was flagged as exemplary relative to the department"),
)
MEASURES = tuple(name for name, _ in BINARY_MEASURES)
RESPECT_QUANTILES = ((0.25, "respect_p25"), (0.5, "respect_median"), (0.75, "respect_p75"))


class PublishInputError(ValueError):
    """The store, stop data or settings cannot be published as asked; the message says what and where."""


@dataclass(frozen=True)
class PublishSettings:
    """What to publish and how to protect it (``publish:`` in the configuration, overridable per command)."""

    period: str = "month"  # month | quarter, in the department's time zone
    by: tuple[str, ...] = ()  # group fields; empty = DEFAULT_BY, those available
    timezone: str = "UTC"  # department time zone: periods and times of day are local
    through: date | None = None  # last day published; None = the last day of the last complete period
    min_cell: int = 11  # a cell with fewer encounters is suppressed (and so is anything that would reveal it)
    min_officers: int = 3  # a cell whose encounters involve fewer officers is suppressed
    max_officer_share: float = 0.5  # a cell where one officer made more than this share of encounters is suppressed
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)  # field -> values allowed; others are `other`
    flags: FlagsConfig = field(default_factory=FlagsConfig)  # shrinkage used for encounter respect

    @classmethod
    def from_config(cls, config: BwcConfig, **overrides: object) -> PublishSettings:
        """The ``publish:`` section (time zone defaulting to ``metadata.timezone``), with command-line overrides
        (``None`` values are not overrides)."""
        section = config.publish
        values: dict[str, object] = {
            "period": section.period,
            "by": tuple(section.by),
            "timezone": section.timezone or config.metadata.timezone,
            "min_cell": section.min_cell,
            "min_officers": section.min_officers,
            "max_officer_share": section.max_officer_share,
            "flags": config.flags,
            "labels": {name: tuple(values) for name, values in section.labels.items()},
        }
        values |= {key: value for key, value in overrides.items() if value is not None}
        return cls(**values)  # type: ignore[arg-type]


def encounter_frame(store: Store, settings: PublishSettings, stops: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per analysed encounter in complete periods: period, groups and measures.

    Encounters are read as the flags read them (the newest scoring of an encounter, with its own utterances);
    those without officer language to judge or without a recording time are left out, and counted in
    ``attrs["left_out"]``. ``attrs["model_versions"]`` names the scores' model versions and ``attrs["fields"]``
    the group fields available (stop fields only when ``stops`` is given).
    """
    zone = _zone(settings.timezone)
    encounters = store.read_parts("encounter_scores").drop_duplicates("encounter_id", keep="last")
    utterances = store.read_parts("utterance_scores")
    if not utterances.empty:
        utterances = utterances.merge(encounters[["encounter_id", "part"]], on=["encounter_id", "part"], how="inner")
    scored = score_department(encounters.drop(columns="part"), utterances.drop(columns="part"), settings.flags)
    table = scored.table
    left_out = scored.excluded
    if table.empty:
        frame = pd.DataFrame(columns=["encounter_id", "officer_id", "period", *MEASURES, "respect_shrunk"])
        frame.attrs |= {"left_out": left_out, "model_versions": (), "fields": (), "periods": ()}
        return frame
    recorded_at = pd.to_datetime(table["recorded_at"], utc=True, errors="coerce")
    officer_id = table["officer_id"].astype("string").str.strip().replace("", pd.NA)
    usable = recorded_at.notna() & officer_id.notna()
    left_out += int((~usable).sum())
    local = recorded_at[usable].dt.tz_convert(zone)
    frame = pd.DataFrame(
        {
            "encounter_id": table.loc[usable, "encounter_id"].astype(str),
            "officer_id": officer_id[usable].astype(str),
            "recorded_local": local,
            "respect_shrunk": table.loc[usable, "respect_shrunk"].astype(float),
            "model_version": table.loc[usable, "model_version"].fillna("").astype(str),
        }
    ).reset_index(drop=True)
    chosen = table[usable.to_numpy()].reset_index(drop=True)
    for name in BEHAVIOUR_COLUMNS:
        frame[name] = chosen[f"pj_{name}"].astype("boolean").fillna(False).astype(bool).to_numpy()
    frame["all_five"] = frame[list(BEHAVIOUR_COLUMNS)].all(axis=1)
    for act in HOSTILE_ACTS:
        frame[act] = chosen[act].astype(float).to_numpy() > 0
    frame["command_before_reason"] = chosen["command_before_reason"].astype(float).to_numpy() > 0
    flags = store.read_parts("flags")
    flagged = flags.groupby("flag")["encounter_id"].agg(set) if not flags.empty else pd.Series(dtype=object)
    frame["flagged_poor"] = frame["encounter_id"].isin(flagged.get("poor", set()))
    frame["flagged_exemplary"] = frame["encounter_id"].isin(flagged.get("exemplary", set()))
    hours = frame["recorded_local"].dt.hour
    frame["time_of_day"] = np.select(
        [hours.between(lo, hi - 1) for lo, hi, _ in TIMES_OF_DAY],
        [name for _, _, name in TIMES_OF_DAY],
        default=UNKNOWN,
    )
    fields = ["time_of_day"]
    category = _categories(store, chosen)
    if category is not None:
        frame["category"] = category
        fields.append("category")
    if stops is not None:
        joined = frame[["encounter_id"]].merge(stops, on="encounter_id", how="left")
        for name in STOP_FIELDS:
            if name in stops.columns:
                frame[name] = joined[name].to_numpy()
                fields.append(name)
    frame = _in_complete_periods(frame, settings, zone)
    frame.attrs |= {
        "left_out": left_out,
        "model_versions": tuple(sorted(set(frame["model_version"]) - {""})),
        "fields": tuple(fields),
    }
    return frame


def load_stops(path: Path) -> pd.DataFrame:
    """Stop data (CSV or Parquet) keyed by ``encounter_id`` with any of :data:`STOP_FIELDS`.

    Raises
    ------
    PublishInputError
        One line naming the file and the problem: unreadable, no ``encounter_id``, none of the fields, or an
        ``encounter_id`` twice (with the row).
    """
    try:
        parquet = path.suffix.lower() == ".parquet"
        table = pd.read_parquet(path) if parquet else pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise PublishInputError(f"{path}: cannot read the stop data ({error})") from None
    table.columns = [str(column).strip().lstrip("\ufeff").lower() for column in table.columns]
    if "encounter_id" not in table.columns:
        raise PublishInputError(f"{path}: stop data needs an encounter_id column (it has {', '.join(table.columns)})")
    present = [column for column in STOP_FIELDS if column in table.columns]
    if not present:
        raise PublishInputError(f"{path}: stop data needs at least one of {', '.join(STOP_FIELDS)}")
    table["encounter_id"] = table["encounter_id"].astype("string").str.strip()
    blank = table["encounter_id"].isna() | (table["encounter_id"] == "")
    if blank.any():
        row = int(np.flatnonzero(blank.to_numpy())[0]) + 2
        raise PublishInputError(f"{path}: row {row}: encounter_id is empty")
    duplicated = table["encounter_id"].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0]) + 2  # 1-based, after the header line
        raise PublishInputError(
            f"{path}: row {row}: encounter_id {table.loc[duplicated, 'encounter_id'].iloc[0]!r} appears twice"
        )
    return table[["encounter_id", *present]].assign(encounter_id=lambda t: t["encounter_id"].astype(str))


def resolve_fields(requested: tuple[str, ...], available: tuple[str, ...]) -> tuple[str, ...]:
    """The group fields to publish: ``requested`` (each must be known and available), or the defaults available.

    >>> resolve_fields((), ("time_of_day", "district"))
    ('district', 'time_of_day')
    >>> resolve_fields(("officer_id",), ("time_of_day",))
    Traceback (most recent call last):
    ...
    bwc.publish.tables.PublishInputError: --by officer_id: not a publishable field; choose from district, \
stop_reason, race, gender, age_group, outcome, time_of_day, category
    """
    if not requested:
        return tuple(name for name in DEFAULT_BY if name in available)
    for name in requested:
        if name not in GROUP_FIELDS:
            raise PublishInputError(f"--by {name}: not a publishable field; choose from {', '.join(GROUP_FIELDS)}")
        if name not in available:
            where = "the stop data (--stops) has no such column" if name in STOP_FIELDS else "not in the store"
            raise PublishInputError(f"--by {name}: {where}")
    return tuple(dict.fromkeys(requested))


def build_cells(
    frame: pd.DataFrame,
    fields: tuple[str, ...],
    min_cell: int,
    previous_domains: dict[str, set[str]] | None = None,
    previous_periods: set[str] | None = None,
    codebook: dict[str, tuple[str, ...]] | None = None,
) -> pd.DataFrame:
    """One row per table, period and group: counts, officers, measures and the changelog's digest.

    Columns: ``table, field, period, period_start, period_end, group, encounters, officers, top_officer_share``,
    one ``n_<measure>`` (encounters with it) per binary measure, the respect quantiles, ``digest`` (SHA-256 of the
    cell's sorted encounter ids: equal digests = the same encounters), ``encounter_ids`` (internal, never published)
    and ``model_versions``.

    ``codebook`` (field → the values a department allows) sends every other value to ``other``.
    ``previous_domains`` (table → its groups in the series' last release) and ``previous_periods`` keep the groups
    stable across releases: a group published before stays a group (suppressed if it became small), and a value
    that the last release counted under ``other`` stays there, since taking it out of ``other`` for periods already
    published would let a reader difference it out of the two releases' ``other`` cells. A group new to the series
    gets rows from the first period not published before (it had no encounters in those), so no release has to
    hide a zero a reader could infer from the last.
    """
    periods = period_table(frame)
    tables = [(OVERALL, None, pd.Series(ALL, index=frame.index))]
    for name in fields:
        labels = public_labels(frame[name], min_cell, keep=(previous_domains or {}).get(f"by_{name}", set()))
        if codebook and name in codebook:  # the department's list of values fit to publish: anything else is other
            allowed = {public_labels(pd.Series([value]), 1).iloc[0] for value in codebook[name]} | {UNKNOWN}
            labels = labels.where(labels.isin(allowed), OTHER)
        if previous_domains is not None and f"by_{name}" in previous_domains:
            labels = _stable_labels(labels, frame, previous_domains[f"by_{name}"], previous_periods or set())
        tables.append((f"by_{name}", name, labels))
    rows = []
    for table, field_name, labels in tables:
        domain = sorted(set(labels) | (previous_domains or {}).get(table, set())) if len(labels) else []
        before = (previous_domains or {}).get(table)
        for period in periods.itertuples():
            members = frame["period"] == period.period
            for group in domain:
                if before is not None and group not in before and period.period in (previous_periods or set()):
                    continue  # a group new to the series starts after the periods published without it
                cell = frame[members & (labels == group)]
                rows.append(
                    {
                        "table": table,
                        "field": field_name or "",
                        "period": period.period,
                        "period_start": period.period_start,
                        "period_end": period.period_end,
                        "group": group,
                        **_cell_values(cell),
                    }
                )
    return pd.DataFrame(rows)


def period_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The periods of ``frame`` (label, first and last day) that have encounters, in order."""
    if frame.empty:
        return pd.DataFrame(columns=["period", "period_start", "period_end"])
    spans = frame.drop_duplicates("period")[["period", "period_start", "period_end"]]
    return spans.sort_values("period_start").reset_index(drop=True)


def public_labels(values: pd.Series, min_cell: int, keep: set[str] | frozenset[str] = frozenset()) -> pd.Series:
    """Group labels fit to publish: lower case, plain characters, missing → ``unknown``, rare → ``other`` (except
    the labels in ``keep``, published before).

    >>> public_labels(pd.Series(["North", "north ", None, "J. Smith's house"] + ["South"] * 3), min_cell=2).tolist()
    ['north', 'north', 'unknown', 'other', 'south', 'south', 'south']
    """
    text = values.astype("string").str.strip().str.lower()
    text = text.str.replace(LABEL_CHARACTERS, " ", regex=True).str.replace(r"\s+", " ", regex=True).str.strip()
    text = text.str.slice(0, LABEL_MAX_CHARS).replace("", pd.NA).fillna(UNKNOWN)
    counts = text.value_counts()
    rare = set(counts[counts < min_cell].index) - {UNKNOWN, OTHER} - set(keep)
    return text.where(~text.isin(rare), OTHER).astype(str)


def _stable_labels(labels: pd.Series, frame: pd.DataFrame, domain: set[str], published: set[str]) -> pd.Series:
    """A label new to the series stays in ``other`` when it has encounters in a period published before."""
    new = set(labels) - domain - {OTHER, UNKNOWN}
    seen_before = set(labels[frame["period"].isin(published).to_numpy() & labels.isin(new).to_numpy()])
    return labels.where(~labels.isin(seen_before), OTHER)


def _cell_values(cell: pd.DataFrame) -> dict[str, object]:
    n = len(cell)
    per_officer = cell["officer_id"].str.strip().str.casefold().value_counts()  # "b1000" is B1000
    values: dict[str, object] = {
        "encounters": n,
        "officers": len(per_officer),
        "top_officer_share": float(per_officer.iloc[0] / n) if n else 0.0,
    }
    for name in MEASURES:
        values[f"n_{name}"] = int(cell[name].sum())
    respect = cell["respect_shrunk"].astype(float)
    for q, column in RESPECT_QUANTILES:
        values[column] = float(respect.quantile(q)) if n else float("nan")
    ids = sorted(cell["encounter_id"])
    values["digest"] = hashlib.sha256("\n".join(ids).encode()).hexdigest()
    values["encounter_ids"] = ids  # internal (the store's cells.parquet): what a later release is compared with
    values["model_versions"] = "|".join(sorted(set(cell["model_version"]) - {""}))
    return values


def _in_complete_periods(frame: pd.DataFrame, settings: PublishSettings, zone: ZoneInfo) -> pd.DataFrame:
    """Rows whose period has ended by ``settings.through`` (default: today, local), with the period columns."""
    if settings.period not in PERIODS:
        raise PublishInputError(f"--period {settings.period}: choose month or quarter")
    freq = "M" if settings.period == "month" else "Q"
    naive = frame["recorded_local"].dt.tz_localize(None)
    periods = naive.dt.to_period(freq)
    frame = frame.assign(
        period=[p.strftime("%Y-%m") if freq == "M" else f"{p.year}-Q{p.quarter}" for p in periods],
        period_start=[p.start_time.date() for p in periods],
        period_end=[p.end_time.date() for p in periods],
    )
    today = datetime.now(zone).date()
    if settings.through is not None and settings.through >= today:
        raise PublishInputError(f"--through {settings.through}: must be before today ({today}, {zone.key}): a period "
                                "still running would be published part-way")  # fmt: skip
    through = settings.through or (today - timedelta(days=1))
    return frame[frame["period_end"] <= through].reset_index(drop=True)


def _categories(store: Store, table: pd.DataFrame) -> pd.Series | None:
    """Evidence category of each encounter (from ``recordings``), or None when the store records none."""
    recordings = store.read_parts("recordings")
    if recordings.empty or recordings["category"].isna().all() or table["recording_id"].isna().all():
        return None
    category = recordings.drop_duplicates("recording_id", keep="last").set_index("recording_id")["category"]
    return table["recording_id"].map(category).to_numpy()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PublishInputError(f"publish.timezone {name!r}: not a time zone (e.g. America/Chicago)") from None
