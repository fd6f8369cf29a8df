"""Officer measures over time, for supervisors' early intervention: per officer and period, how their encounters went
compared with their peers and with their own recent past, with intervals, and advisory alerts where the evidence of
a concern is strong.

Each encounter with officer language counts once, for the officer the metadata names. Per officer and period
(calendar months, and the 90 days before each month's end) the mean encounter respect and escalation are shrunk
toward the peer group's mean in that period by empirical Bayes (a normal-normal model: encounter values scatter
with variance σ² around the officer's true mean, true means scatter with variance τ² around the peers'; σ² and τ²
estimated from the whole store per window), so an officer with four encounters cannot look extreme by chance. Shares
(flagged poor or exemplary, each trained behaviour, any hostile act) carry Wilson intervals. The change compares the
officer's distance from their peers now with the same distance in the baseline before (three months for a month,
the 90 days before for a 90-day window), so a department-wide shift (a new model version, a season) is nobody's
change.

An alert says that the evidence is strong, not that an officer did wrong: the posterior probability that the
officer's true respect is more than ``respect_margin`` below peers (or escalation above), or the probability that
their respect relative to peers fell by more than that (a normal approximation with a flat prior: the change is not
shrunk), reaches ``alert_probability``, with at least ``min_encounters`` encounters (in the baseline too). Peer
means leave the officer out.
Alerts are advisory, for a supervisor's conversation: not discipline and not a performance rating.

Example
-------
>>> from bwc.config import EarlyWarningConfig
>>> summary = officer_store(Store("/data/bwc-store"), EarlyWarningConfig())   # doctest: +SKIP
>>> summary.describe()                                                       # doctest: +SKIP
'officers: 41 over 14 months; 2 alerts in the 90 days to 2026-03-31'
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from bwc.config import EarlyWarningConfig
from bwc.store import BEHAVIOUR_COLUMNS, OFFICER_SHARES, SCHEMAS, Store

OFFICER_PERIODS_VERSION = "officers-1"  # bump when the method changes
OFFICER_ROLE = "officer"
HOSTILE_ACTS = ("threat", "insult", "profanity")
WINDOWS = ("month", "90d")
ROLLING_DAYS = 90  # length of the rolling window
DEPARTMENT = "department"
# Smallest between-officer variance (SD 0.1 corpus SD of respect, 0.01 of escalation). Plug-in empirical Bayes
# treats τ² as known; when its estimate is near 0 (a department of equals, or too few officers to tell), a floor of
# 0 would make every interval a point. At this floor an interval still reaches about ±0.2 respect.
TAU2_FLOOR = {"respect": 1e-2, "escalation": 1e-4}
MIN_WITHIN_VARIANCE = {"respect": 1e-3, "escalation": 1e-5}  # σ² never below this (constant test data)
ALERT_KINDS = ("respect_below_peers", "respect_falling", "escalation_above_peers")


@dataclass(frozen=True)
class OfficerSummary:
    """What one recomputation of ``STORE/officer_periods`` found."""

    officers: int  # officers with at least one analysed encounter
    months: int  # calendar months covered
    rows: int  # officer-period rows written (both windows)
    alerts: int  # officers whose latest period of ``alert_window`` carries an alert
    latest_period: str | None  # that latest period, e.g. "2026-01-01/2026-03-31"
    skipped: int  # scored encounters left out: no officer id, no time or no officer language
    roster_problem: str | None = None  # why the configured roster was not used (peers were the department)

    def describe(self) -> str:
        """One line for a person (and one more when the roster could not be used)."""
        problem = f"\nofficer roster not used: {self.roster_problem}" if self.roster_problem else ""
        if not self.officers:
            return f"officers: none with analysed encounters ({self.skipped} without officer or time){problem}"
        skipped = f" ({self.skipped} encounters without officer, time or officer language)" if self.skipped else ""
        return (
            f"officers: {self.officers} over {self.months} months; {self.alerts} with an alert in {self.latest_period}"
            f"{skipped}{problem}"
        )


def encounter_measures(encounters: pd.DataFrame, utterances: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """One row per analysed encounter: officer, time, respect, escalation, behaviours, hostility and flags.

    Parameters
    ----------
    encounters
        ``encounter_scores`` rows (the last row of a repeated encounter id is kept).
    utterances
        ``utterance_scores`` rows: officer lines give the hostile acts.
    flags
        ``flags`` rows.

    Returns
    -------
    pandas.DataFrame
        Columns ``encounter_id, officer_id, recorded_at, respect, escalation, poor_share, exemplary_share``, the
        five ``rate_<behaviour>`` and ``hostile_share`` (0 or 1 per encounter); ``attrs["skipped"]`` counts the
        encounters left out (no officer id, no time, no officer respect).
    """
    encounters = encounters.drop_duplicates("encounter_id", keep="last")
    officer_id = encounters["officer_id"].astype("string").str.strip().replace("", pd.NA)
    recorded_at = pd.to_datetime(encounters["recorded_at"], utc=True, errors="coerce")
    respect = pd.to_numeric(encounters["respect"], errors="coerce")
    keep = officer_id.notna() & recorded_at.notna() & respect.notna()
    frame = pd.DataFrame(
        {
            "encounter_id": encounters["encounter_id"].astype(str),
            "officer_id": officer_id.astype(object),
            "recorded_at": recorded_at,
            "respect": respect,
            "escalation": pd.to_numeric(encounters["escalation"], errors="coerce").fillna(0.0),
        }
    )[keep.to_numpy()].reset_index(drop=True)
    flagged = flags.groupby("flag")["encounter_id"].agg(set) if not flags.empty else pd.Series(dtype=object)
    frame["poor_share"] = frame["encounter_id"].isin(flagged.get("poor", set())).astype(float)
    frame["exemplary_share"] = frame["encounter_id"].isin(flagged.get("exemplary", set())).astype(float)
    chosen = encounters.set_index("encounter_id").reindex(frame["encounter_id"])
    for name in BEHAVIOUR_COLUMNS:
        column = f"pj_{name}"
        values = chosen[column] if column in chosen.columns else pd.Series(False, index=chosen.index)
        frame[f"rate_{name}"] = values.astype("boolean").fillna(False).astype(float).to_numpy()
    officer_lines = utterances[utterances["role"] == OFFICER_ROLE] if "role" in utterances.columns else utterances[:0]
    hostile_columns = [f"act_{act}" for act in HOSTILE_ACTS if f"act_{act}" in officer_lines.columns]
    if hostile_columns and not officer_lines.empty:
        any_hostile = officer_lines[hostile_columns].fillna(False).astype(bool).any(axis=1)
        hostile = set(officer_lines.loc[any_hostile, "encounter_id"].astype(str))
    else:
        hostile = set()
    frame["hostile_share"] = frame["encounter_id"].isin(hostile).astype(float)
    frame.attrs["skipped"] = int((~keep).sum())
    return frame


def read_roster(path: str | Path, peer_group: str) -> pd.Series:
    """officer_id → peer-group value from a roster CSV (officers with an empty value are compared with the department).

    Raises
    ------
    ValueError
        When the file cannot be read, lacks ``officer_id`` or the ``peer_group`` column, or lists an officer twice
        (the message names the file and the officer or the columns it has).
    """
    path = Path(path)
    try:
        # utf-8-sig: spreadsheet exports often begin with a byte-order mark, which would otherwise rename officer_id
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ValueError(f"{path}: cannot read the officer roster: {error}") from error
    table.columns = [str(column).strip() for column in table.columns]
    if "officer_id" not in table.columns:
        raise ValueError(f"{path}: the officer roster needs an officer_id column (found {', '.join(table.columns)})")
    ids = table["officer_id"].str.strip()
    duplicated = ids[ids.duplicated() & (ids != "")]
    if not duplicated.empty:
        raise ValueError(f"{path}: officer {duplicated.iloc[0]!r} is listed more than once; give one row per officer")
    if peer_group not in table.columns:
        raise ValueError(
            f"{path}: no column {peer_group!r} (early_warning.peer_group) in the officer roster; it has "
            f"{', '.join(table.columns)}"
        )
    groups = table[peer_group].str.strip()
    return pd.Series(groups.to_numpy(), index=ids.to_numpy())[(ids != "").to_numpy() & (groups != "").to_numpy()]


def officer_periods(
    measures: pd.DataFrame,
    config: EarlyWarningConfig,
    roster: pd.Series | None = None,
    now: datetime | None = None,
    scores_version: str = "",
) -> list[dict[str, Any]]:
    """``officer_periods`` rows for both windows from :func:`encounter_measures`.

    Parameters
    ----------
    measures
        One row per encounter (see :func:`encounter_measures`).
    config
        Peer groups, interval, margins and alert rules.
    roster
        officer_id → peer-group value (e.g. unit); officers not in it, and every officer when None, are compared
        with the department.
    now
        ``computed_at``; the current time when None.
    scores_version
        The scores' model versions, recorded with the method's.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> days = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 90, 600), unit="D")
    >>> measures = pd.DataFrame({"encounter_id": [f"e{i}" for i in range(600)],
    ...     "officer_id": [f"B{i % 20}" for i in range(600)], "recorded_at": days,
    ...     "respect": rng.normal(0, 0.5, 600) - 0.9 * (np.arange(600) % 20 == 0), "escalation": 0.2,
    ...     **{share: 0.0 for share in ("poor_share", "exemplary_share", "hostile_share")},
    ...     **{f"rate_{name}": 1.0 for name in BEHAVIOUR_COLUMNS}})
    >>> rows = pd.DataFrame(officer_periods(measures, EarlyWarningConfig()))
    >>> latest = current_periods(rows, "90d")
    >>> latest.period.iloc[0], sorted(latest.loc[latest.alert, "officer_id"]), latest.alert_kinds[latest.alert].tolist()
    ('2026-01-01/2026-03-31', ['B0'], ['respect_below_peers'])
    """
    computed_at = datetime.now(UTC) if now is None else now
    if measures.empty:
        return []
    measures = _with_units(measures, roster)
    version = _version(config, scores_version)
    z = float(norm.ppf(0.5 + config.interval / 2))
    rows: list[dict[str, Any]] = []
    for window in WINDOWS:
        cells = _cells(measures, _periods(measures, window))
        if cells.empty:
            continue
        cells = _add_peers(cells, measures, config)
        variances = {m: _variances(cells, measures[m].to_numpy(dtype=float), m) for m in ("respect", "escalation")}
        for measure in ("respect", "escalation"):
            _shrink(cells, measure, z, *variances[measure])
        _shares(cells, config.interval)
        _changes(cells, measures, config, window, z, {m: within for m, (within, _) in variances.items()})
        _alerts(cells, measures, config)
        for row in cells.to_dict("records"):
            rows.append(_row(row, window, computed_at, version))
    return rows


def officer_store(store: Store, config: EarlyWarningConfig, now: datetime | None = None) -> OfficerSummary:
    """Recompute ``STORE/officer_periods/part-current.parquet`` from every scored encounter and the current flags.

    A configured roster that cannot be read does not stop the run that called this: officers are compared with the
    department, and the summary says why (``roster_problem``).
    """
    roster, roster_problem = None, None
    if config.roster:
        try:
            roster = read_roster(config.roster, config.peer_group)
        except ValueError as error:
            roster_problem = str(error)
    measures = store_measures(store)
    rows = officer_periods(measures, config, roster, now, scores_version=measures.attrs["scores_version"])
    store.write_rows("officer_periods", "part-current", rows)
    table = pd.DataFrame(rows)
    if table.empty:
        return OfficerSummary(0, 0, 0, 0, None, int(measures.attrs.get("skipped", 0)), roster_problem)
    current = current_periods(table, config.alert_window)
    return OfficerSummary(
        officers=int(table["officer_id"].nunique()),
        months=int(table.loc[table["window"] == "month", "period"].nunique()),
        rows=len(table),
        alerts=int(current["alert"].sum()),
        latest_period=str(current["period"].max()),
        skipped=int(measures.attrs.get("skipped", 0)),
        roster_problem=roster_problem,
    )


def store_measures(store: Store) -> pd.DataFrame:
    """:func:`encounter_measures` of every scored encounter in ``store`` (the newest scoring of an encounter, with its
    own utterances, as the flags read them) and the current flags; ``attrs["scores_version"]`` names the scores'
    model versions and ``attrs["skipped"]`` the encounters left out."""
    encounters = store.read_parts("encounter_scores")
    if encounters.empty:
        measures = pd.DataFrame(columns=["encounter_id", "officer_id", "recorded_at", "respect"])
        measures.attrs |= {"skipped": 0, "scores_version": ""}
        return measures
    encounters = encounters.drop_duplicates("encounter_id", keep="last")
    utterances = store.read_parts("utterance_scores")
    if not utterances.empty:
        utterances = utterances.merge(encounters[["encounter_id", "part"]], on=["encounter_id", "part"], how="inner")
    measures = encounter_measures(encounters, utterances, store.read_parts("flags"))
    measures.attrs["scores_version"] = "|".join(sorted(set(encounters["model_version"].dropna().astype(str))))
    return measures


def current_periods(table: pd.DataFrame, window: str) -> pd.DataFrame:
    """Each officer's row of the department's latest period of ``window`` (officers without encounters in it are
    absent: a supervisor sees who is active now)."""
    rows = table[table["window"] == window]
    if rows.empty:
        return rows
    latest = rows["period_end"].max()
    return rows[rows["period_end"] == latest].reset_index(drop=True)


def _periods(measures: pd.DataFrame, window: str) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    """``(label, start, end)`` of every period of ``window`` from the first month with encounters to the last."""
    months = measures["recorded_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("M")
    periods = []
    for month in pd.period_range(months.min(), months.max(), freq="M"):
        end = pd.Timestamp(month.end_time.normalize() + pd.Timedelta(days=1), tz="UTC")
        if window == "month":
            periods.append((str(month), pd.Timestamp(month.start_time, tz="UTC"), end))
        else:
            start = end - pd.Timedelta(days=ROLLING_DAYS)
            periods.append((f"{start.date()}/{(end - pd.Timedelta(days=1)).date()}", start, end))
    return periods


def _cells(measures: pd.DataFrame, periods: list[tuple[str, pd.Timestamp, pd.Timestamp]]) -> pd.DataFrame:
    """Encounters assigned to (officer, period) cells: ``period_start, period_end``, the encounters' row numbers
    (``index``), counts, means and shares' counts."""
    times = measures["recorded_at"]
    records = []
    for label, start, end in periods:
        inside = measures.index[(times >= start) & (times < end)]
        for officer, index in measures.loc[inside].groupby("officer_id").groups.items():
            records.append({"officer_id": officer, "period": label, "period_start": start, "period_end": end,
                            "index": list(index)})  # fmt: skip
    cells = pd.DataFrame(records)
    if cells.empty:
        return cells
    cells["unit"] = [measures.at[index[0], "unit"] for index in cells["index"]]
    cells["encounters"] = cells["index"].map(len)
    for measure in ("respect", "escalation", *OFFICER_SHARES):
        values = measures[measure].to_numpy(dtype=float)
        cells[f"{measure}_mean" if measure in ("respect", "escalation") else f"{measure}_count"] = [
            values[index].mean() if measure in ("respect", "escalation") else values[index].sum()
            for index in cells["index"]
        ]
    return cells


def window_measures(
    measures: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    config: EarlyWarningConfig,
    roster: pd.Series | None = None,
) -> pd.DataFrame:
    """Each officer's measures over encounters in ``[start, end)``: shrunk respect and escalation with intervals
    and the shares, exactly as ``officer_periods`` computes a period (without changes or alerts). Research uses it
    for indicators up to a cut date.

    Returns
    -------
    pandas.DataFrame
        One row per officer with encounters in the window; empty when there are none.
    """
    measures = _with_units(measures, roster)
    cells = _cells(measures, [(f"{start.date()}/{end.date()}", start, end)])
    if cells.empty:
        return cells
    cells = _add_peers(cells, measures, config)
    z = float(norm.ppf(0.5 + config.interval / 2))
    for measure in ("respect", "escalation"):
        _shrink(cells, measure, z, *_variances(cells, measures[measure].to_numpy(dtype=float), measure))
    _shares(cells, config.interval)
    return cells.drop(columns="index")


def _with_units(measures: pd.DataFrame, roster: pd.Series | None) -> pd.DataFrame:
    measures = measures.reset_index(drop=True).copy()
    roster = roster if roster is not None else pd.Series(dtype=object)
    measures["unit"] = measures["officer_id"].map(roster).astype(object).where(lambda s: s.notna(), None)
    return measures


def _add_peers(cells: pd.DataFrame, measures: pd.DataFrame, config: EarlyWarningConfig) -> pd.DataFrame:
    """Peer group and peer means per cell: the officer's unit in that period when it has enough officers, else the
    whole department (every officer, rostered or not). Peer means are over the other officers' encounters (each
    encounter once): leaving the officer out keeps a small unit's mean from moving with the officer it judges."""
    cells = cells.copy()
    unit_officers = cells.groupby(["period", "unit"], dropna=True)["officer_id"].nunique()
    department_officers = cells.groupby("period")["officer_id"].nunique()
    use_unit = [
        unit is not None and not pd.isna(unit) and unit_officers.get((period, unit), 0) >= config.min_peer_officers
        for period, unit in zip(cells["period"], cells["unit"], strict=True)
    ]
    cells["peer_group"] = [f"{config.peer_group} {unit}" if use else DEPARTMENT
                           for use, unit in zip(use_unit, cells["unit"], strict=True)]  # fmt: skip
    columns = ["_respect_sum", "_escalation_sum", "encounters"]
    for measure in ("respect", "escalation"):
        cells[f"_{measure}_sum"] = cells[f"{measure}_mean"] * cells["encounters"]
    # The department's totals come from every cell of the period; a unit's from its own cells only.
    department = cells.groupby("period")[columns].transform("sum")
    unit = cells.assign(_unit=cells["unit"].fillna("\0")).groupby(["period", "_unit"])[columns].transform("sum")
    in_unit = (cells["peer_group"] != DEPARTMENT).to_numpy()[:, None]
    totals = pd.DataFrame(np.where(in_unit, unit.to_numpy(), department.to_numpy()), columns=columns, index=cells.index)
    others = totals["encounters"] - cells["encounters"]
    for measure in ("respect", "escalation"):
        leave_one_out = (totals[f"_{measure}_sum"] - cells[f"_{measure}_sum"]) / others.where(others > 0)
        # an officer alone in the period is compared with themself (nothing else to compare with): no alert can follow
        cells[f"peer_{measure}"] = leave_one_out.fillna(totals[f"_{measure}_sum"] / totals["encounters"])
    unit_count = cells.groupby(["period", "unit"])["officer_id"].transform("nunique")
    group_size = np.where(in_unit[:, 0], unit_count, cells["period"].map(department_officers))
    cells["peer_officers"] = np.maximum(group_size - 1, 0).astype(int)  # the others
    return cells.drop(columns=["_respect_sum", "_escalation_sum"])


def _variances(cells: pd.DataFrame, values: np.ndarray, measure: str) -> tuple[float, float]:
    """σ² (pooled within officer-period variance of encounter values) and τ² (variance of true officer means around
    their peers), by the method of moments over every cell of the window."""
    squares, degrees = 0.0, 0
    for index in cells["index"]:
        if len(index) > 1:
            part = values[index]
            squares += float(((part - part.mean()) ** 2).sum())
            degrees += len(index) - 1
    if degrees:
        within = max(squares / degrees, MIN_WITHIN_VARIANCE[measure])
    else:  # one encounter per cell: the total spread is the honest (wide) stand-in for the within-officer spread
        every = np.concatenate([values[index] for index in cells["index"]])
        within = max(float(np.var(every, ddof=1)) if every.size > 1 else 0.0, MIN_WITHIN_VARIANCE[measure])
    deviation = (cells[f"{measure}_mean"] - cells[f"peer_{measure}"]).to_numpy()
    n = cells["encounters"].to_numpy(dtype=float)
    between = float(np.mean(deviation**2) - np.mean(within / n)) if len(cells) > 1 else 0.0
    return within, max(between, TAU2_FLOOR[measure])


def _shrink(cells: pd.DataFrame, measure: str, z: float, within: float, between: float) -> None:
    """Posterior mean, standard deviation and interval of each officer's true mean (σ² ``within``, τ² ``between``)."""
    raw = cells[f"{measure}_mean"].to_numpy()
    peer = cells[f"peer_{measure}"].to_numpy()
    n = cells["encounters"].to_numpy(dtype=float)
    weight = between / (between + within / n)  # reliability: share of the officer's own deviation kept
    posterior = peer + weight * (raw - peer)
    sd = np.sqrt(weight * within / n)
    cells[f"{measure}_shrunk"] = posterior
    cells[f"{measure}_low"] = posterior - z * sd
    cells[f"{measure}_high"] = posterior + z * sd
    cells[f"_{measure}_sd"] = sd


def _shares(cells: pd.DataFrame, interval: float) -> None:
    n = cells["encounters"].to_numpy()
    for measure in OFFICER_SHARES:
        count = cells[f"{measure}_count"].to_numpy()
        low, high = proportion_confint(count, n, alpha=1 - interval, method="wilson")
        share = count / n
        # np.minimum/maximum: at 0 or n the Wilson bound equals the share up to rounding, and must not cross it
        cells[measure], cells[f"{measure}_low"], cells[f"{measure}_high"] = (
            share,
            np.minimum(low, share),
            np.maximum(high, share),
        )


def _changes(
    cells: pd.DataFrame,
    measures: pd.DataFrame,
    config: EarlyWarningConfig,
    window: str,
    z: float,
    within: dict[str, float],
) -> None:
    """The officer's distance from peers now minus the same distance in the baseline just before, with an interval
    from σ² (normal approximation); null without baseline encounters."""
    times = measures["recorded_at"]
    by_officer = measures.groupby("officer_id").groups
    officer_codes = measures["officer_id"].to_numpy()
    department = {"respect": measures["respect"].to_numpy(), "escalation": measures["escalation"].to_numpy()}
    span = pd.DateOffset(months=config.baseline_periods) if window == "month" else pd.Timedelta(days=ROLLING_DAYS)
    baselines: dict[pd.Timestamp, np.ndarray] = {}  # period start -> encounters in the baseline before it
    peer_masks: dict[str, np.ndarray] = {}
    baseline_n, results = [], {m: ([], [], []) for m in ("respect", "escalation")}
    for row in cells.itertuples():
        if row.period_start not in baselines:
            baselines[row.period_start] = ((times >= row.period_start - span) & (times < row.period_start)).to_numpy()
        if row.peer_group not in peer_masks:
            peer_masks[row.peer_group] = _peer_mask(measures, row.peer_group, config).to_numpy()
        in_baseline = baselines[row.period_start]
        mine = [i for i in by_officer[row.officer_id] if in_baseline[i]]
        peers = np.flatnonzero(in_baseline & peer_masks[row.peer_group] & (officer_codes != row.officer_id))
        baseline_n.append(len(mine))
        for measure in ("respect", "escalation"):
            change, low, high = results[measure]
            if not mine or not peers.size:
                change.append(None), low.append(None), high.append(None)
                continue
            values = department[measure]
            now_gap = getattr(row, f"{measure}_mean") - getattr(row, f"peer_{measure}")
            before_gap = values[mine].mean() - values[peers].mean()
            se = float(np.sqrt(within[measure] * (1 / row.encounters + 1 / len(mine))))
            change.append(now_gap - before_gap), low.append(now_gap - before_gap - z * se)
            high.append(now_gap - before_gap + z * se)
    cells["baseline_encounters"] = baseline_n
    for measure in ("respect", "escalation"):
        change, low, high = results[measure]
        cells[f"{measure}_change"], cells[f"{measure}_change_low"], cells[f"{measure}_change_high"] = change, low, high


def _peer_mask(measures: pd.DataFrame, peer_group: str, config: EarlyWarningConfig) -> pd.Series:
    if peer_group == DEPARTMENT:
        return pd.Series(True, index=measures.index)
    return measures["unit"] == peer_group.removeprefix(f"{config.peer_group} ")


def _alerts(cells: pd.DataFrame, measures: pd.DataFrame, config: EarlyWarningConfig) -> None:
    """Posterior probabilities past the margins, and the alert, its reasons and the encounters that drove it."""
    respect_sd, escalation_sd = cells["_respect_sd"].to_numpy(), cells["_escalation_sd"].to_numpy()
    cells["p_respect_below"] = norm.cdf(
        (cells["peer_respect"] - config.respect_margin - cells["respect_shrunk"]) / respect_sd
    )
    cells["p_escalation_above"] = norm.sf(
        (cells["peer_escalation"] + config.escalation_margin - cells["escalation_shrunk"]) / escalation_sd
    )
    change = pd.to_numeric(cells["respect_change"], errors="coerce").to_numpy(dtype=float)
    change_sd = (change - pd.to_numeric(cells["respect_change_low"], errors="coerce").to_numpy(dtype=float)) / float(
        norm.ppf(0.5 + config.interval / 2)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        falling = norm.cdf((-config.respect_margin - change) / change_sd)
    cells["p_respect_falling"] = np.where(np.isnan(change), np.nan, falling)
    enough = cells["encounters"] >= config.min_encounters
    kinds_per_cell, reasons_per_cell, drivers_per_cell = [], [], []
    for i, row in enumerate(cells.itertuples()):
        kinds, reasons, drivers = [], [], []
        index = list(row.index)
        if enough.iat[i] and row.p_respect_below >= config.alert_probability:
            kinds.append("respect_below_peers")
            reasons.append(
                f"respect {row.respect_shrunk:+.2f} (interval {row.respect_low:+.2f} to {row.respect_high:+.2f}) "
                f"against {row.peer_group} {row.peer_respect:+.2f} over {row.encounters} encounters: probability "
                f"{_probability(row.p_respect_below)} that it is more than {config.respect_margin:.2f} below"
            )
            drivers += _extremes(measures, index, "respect", config.drivers, lowest=True)
        if (
            enough.iat[i]
            and row.baseline_encounters >= config.min_encounters
            and row.p_respect_falling >= config.alert_probability
        ):
            kinds.append("respect_falling")
            reasons.append(
                f"respect relative to {row.peer_group} changed by {row.respect_change:+.2f} (interval "
                f"{row.respect_change_low:+.2f} to {row.respect_change_high:+.2f}) from the {row.baseline_encounters} "
                f"encounters before: probability {_probability(row.p_respect_falling)} that it fell by more than "
                f"{config.respect_margin:.2f}"
            )
            drivers += _extremes(measures, index, "respect", config.drivers, lowest=True)
        if enough.iat[i] and row.p_escalation_above >= config.alert_probability:
            kinds.append("escalation_above_peers")
            reasons.append(
                f"escalation {row.escalation_shrunk:.2f} (interval {row.escalation_low:.2f} to "
                f"{row.escalation_high:.2f}) against {row.peer_group} {row.peer_escalation:.2f} over "
                f"{row.encounters} encounters: probability {_probability(row.p_escalation_above)} that it is more than "
                f"{config.escalation_margin:.2f} above"
            )
            drivers += _extremes(measures, index, "escalation", config.drivers, lowest=False)
        kinds_per_cell.append("; ".join(kinds))
        reasons_per_cell.append("; ".join(reasons))
        drivers_per_cell.append(json.dumps(list(dict.fromkeys(drivers))[: config.drivers]))
    cells["alert_kinds"], cells["alert_reasons"], cells["alert_encounters"] = (
        kinds_per_cell,
        reasons_per_cell,
        drivers_per_cell,
    )
    cells["alert"] = cells["alert_kinds"] != ""


def _probability(value: float) -> str:
    """A posterior probability as a person reads it: "0.98", or "> 0.99" rather than a rounded "1.00"."""
    return "> 0.99" if value > 0.99 else f"{value:.2f}"


def _extremes(measures: pd.DataFrame, index: list[int], measure: str, count: int, lowest: bool) -> list[str]:
    """The encounters of a cell with the lowest (or highest) values: what drove its alert."""
    part = measures.loc[index].sort_values([measure, "recorded_at"], ascending=[lowest, True])
    return part["encounter_id"].head(count).astype(str).tolist()


def _row(row: dict[str, Any], window: str, computed_at: datetime, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SCHEMAS["officer_periods"].names:
        value = row.get(name)
        out[name] = None if value is None or (isinstance(value, float) and np.isnan(value)) else value
    out["window"] = window
    out["unit"] = row.get("unit") if isinstance(row.get("unit"), str) else None
    out["period_start"], out["period_end"] = row["period_start"].to_pydatetime(), row["period_end"].to_pydatetime()
    out["encounters"], out["peer_officers"] = int(row["encounters"]), int(row["peer_officers"])
    out["baseline_encounters"] = int(row["baseline_encounters"])
    out["alert"] = bool(row["alert"])
    out["computed_at"], out["model_version"] = computed_at, version
    return out


def _version(config: EarlyWarningConfig, scores_version: str) -> str:
    settings = json.dumps(config.model_dump(exclude={"roster"}), sort_keys=True)
    digest = hashlib.sha256(settings.encode()).hexdigest()[:8]
    return (
        f"{OFFICER_PERIODS_VERSION} {digest} | {scores_version}"
        if scores_version
        else f"{OFFICER_PERIODS_VERSION} {digest}"
    )
