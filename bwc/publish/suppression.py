"""Disclosure control of the public tables: primary suppression, then complementary suppression checked against an
attacker who solves the published margins.

Why hand-written: no maintained Python library does complementary (secondary) suppression. sdcTable and the
GaussSuppression package are R, τ-ARGUS is a Java/C++ desktop program, and ACRO (the SACRO project's Python output
checker) applies primary rules and recomputes margins but does not choose complementary cells. The method here is
the textbook one (Hundepool et al., *Statistical Disclosure Control*, Wiley 2012, §4.4 and §5.4), small enough to
read in full:

1. **Primary**: a cell is suppressed when it has fewer than ``min_cell`` encounters (zero included), when its
   encounters involve fewer than ``min_officers`` officers, or when one officer made more than
   ``max_officer_share`` of them (a dominance rule: such a cell's measures are mostly one person's). A cell that a
   previous release of the same series suppressed stays suppressed, whatever its count now, so that two releases
   cannot be differenced to recover it.
2. **Complementary, counts**: within one period the tables are linked by their margins: every ``by_<field>`` table
   adds up to the ``overall`` count. An attacker who knows these equations and that counts are not negative can
   bound every suppressed count by two linear programmes (:func:`count_intervals`, SciPy's HiGHS). The matrix is
   totally unimodular (each cell is in one table's sum, the total in all of them), so the bounds of the linear
   programme are the integer ones. Each primary cell must keep an interval at least ``min_cell`` wide, so the
   attacker cannot tell a small count from a publishable one; while one does not, the smallest published cell
   that shares an equation with it is suppressed too, and the bounds are solved again. Suppressing more only
   widens intervals, so the loop ends.
3. **Complementary, measures**: the published shares of a table also add up: the encounters with a behaviour in the
   suppressed cells of a table are the period total's less the published cells'. When that sum is zero, or equals
   the suppressed cells' encounters, every suppressed cell's share is known (0 or 1); one more published cell of
   that table whose share is strictly between is suppressed. (When the period's own published share is 0 or 1, it
   says so for every part of the period: nothing can hide that, and the data dictionary says it.)

Respect quantiles do not add up across cells, so they give an attacker no equations.

Example
-------
>>> cells = pd.DataFrame({
...     "table": ["overall", "by_district", "by_district", "by_district"], "period": ["2026-01"] * 4,
...     "group": ["all", "north", "south", "west"], "encounters": [70, 8, 20, 42], "officers": [9, 3, 4, 6],
...     "top_officer_share": [0.2, 0.4, 0.3, 0.2]})
>>> protected = suppress(cells, min_cell=11, min_officers=3, max_officer_share=0.5)
>>> protected[["group", "suppressed", "reason"]].to_dict("records")[1:]  # doctest: +NORMALIZE_WHITESPACE
[{'group': 'north', 'suppressed': True, 'reason': 'primary: fewer than 11 encounters'},
 {'group': 'south', 'suppressed': True, 'reason': 'complementary: protects north (count)'},
 {'group': 'west', 'suppressed': False, 'reason': ''}]
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.optimize import linprog

OVERALL = "overall"  # the table every other table of a period adds up to
STICKY = "previous release"  # reason of a cell suppressed because an earlier release suppressed it
OVERALL_COST = 1e9  # the period total is suppressed only when nothing else can protect a cell


def suppress(
    cells: pd.DataFrame,
    min_cell: int,
    min_officers: int,
    max_officer_share: float,
    sticky: Iterable[tuple[str, str, str]] = (),
    measures: Iterable[str] = (),
) -> pd.DataFrame:
    """``cells`` with ``suppressed`` (bool) and ``reason`` (internal: never published, since telling primary from
    complementary cells would tell an attacker which ones are small).

    Parameters
    ----------
    cells
        One row per table, period and group: ``table, period, group, encounters, officers, top_officer_share`` and,
        for each name in ``measures``, ``n_<name>`` (encounters with it).
    min_cell, min_officers, max_officer_share
        The primary rules.
    sticky
        ``(table, period, group)`` of cells an earlier release suppressed.
    measures
        Binary measures whose shares are published (checked as in step 3 of the module docstring).
    """
    cells = cells.reset_index(drop=True).copy()
    reasons = [primary_reason(row, min_cell, min_officers, max_officer_share) for row in cells.itertuples()]
    sticky = set(sticky)
    for index, row in enumerate(cells.itertuples()):
        if not reasons[index] and (row.table, row.period, row.group) in sticky:
            reasons[index] = STICKY
    cells["reason"] = reasons
    measures = tuple(measures)
    for _, period in cells.groupby("period", sort=False):
        _protect_counts(cells, period.index.to_numpy(), min_cell)
        _protect_measures(cells, period.index.to_numpy(), measures)
    cells["suppressed"] = cells["reason"] != ""
    return cells


def primary_reason(row: object, min_cell: int, min_officers: int, max_officer_share: float) -> str:
    """Why ``row`` (a cell) must be suppressed on its own, or ``""``."""
    if row.encounters < min_cell:  # type: ignore[attr-defined]
        return f"primary: fewer than {min_cell} encounters"
    if row.officers < min_officers:  # type: ignore[attr-defined]
        return f"primary: fewer than {min_officers} officers"
    if row.top_officer_share > max_officer_share:  # type: ignore[attr-defined]
        return f"primary: one officer made more than {max_officer_share:.0%} of the encounters"
    return ""


def count_intervals(
    tables: pd.Series, groups: pd.Series, counts: pd.Series, suppressed: pd.Series
) -> dict[int, tuple[float, float]]:
    """The attacker's bounds on every suppressed count of one period, from the published counts and the margins.

    Parameters
    ----------
    tables, groups, counts, suppressed
        Aligned series over the period's cells (``counts`` of suppressed cells are not read).

    Returns
    -------
    dict
        Cell index → (lowest, highest) count consistent with what is published (``math.inf`` when unbounded).

    >>> tables = pd.Series(["overall", "by_x", "by_x", "by_x"])
    >>> count_intervals(tables, pd.Series(["all", "a", "b", "c"]), pd.Series([50, 5, 15, 30]),
    ...                 pd.Series([False, True, True, False]))
    {1: (0.0, 20.0), 2: (0.0, 20.0)}
    """
    unknown = [index for index in suppressed.index if suppressed[index]]
    if not unknown:
        return {}
    column = {index: position for position, index in enumerate(unknown)}
    total_index = next((index for index in tables.index if tables[index] == OVERALL), None)
    rows, rhs = [], []
    for table in sorted(set(tables) - {OVERALL}):
        members = tables.index[tables == table]
        row = np.zeros(len(unknown))
        value = 0.0
        for index in members:
            if suppressed[index]:
                row[column[index]] += 1.0
            else:
                value -= float(counts[index])
        if total_index is not None:
            if suppressed[total_index]:
                row[column[total_index]] -= 1.0
            else:
                value += float(counts[total_index])
        if np.any(row):
            rows.append(row)
            rhs.append(value)
    a_eq = np.array(rows) if rows else None
    b_eq = np.array(rhs) if rows else None
    intervals = {}
    for index, position in column.items():
        objective = np.zeros(len(unknown))
        objective[position] = 1.0
        low = linprog(objective, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        high = linprog(-objective, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        lowest = float(low.fun) if low.status == 0 else 0.0
        highest = math.inf if high.status == 3 else float(-high.fun) if high.status == 0 else math.inf
        intervals[index] = (round(lowest, 6), round(highest, 6))
    return intervals


def _protect_counts(cells: pd.DataFrame, members: np.ndarray, min_cell: int) -> None:
    """Add complementary suppressions in one period until every primary cell's interval is ``min_cell`` wide."""
    period = cells.loc[members]
    while True:
        suppressed = cells.loc[members, "reason"] != ""
        intervals = count_intervals(period["table"], period["group"], period["encounters"], suppressed)
        exposed = [
            index
            for index, (low, high) in intervals.items()
            if cells.at[index, "reason"].startswith("primary") and high - low < min_cell
        ]
        if not exposed:
            return
        cell = exposed[0]
        candidate = _cheapest_partner(cells, members, cell)
        if candidate is None:  # nothing left to suppress: the whole period already is
            return
        cells.at[candidate, "reason"] = f"complementary: protects {cells.at[cell, 'group']} (count)"


def _cheapest_partner(cells: pd.DataFrame, members: np.ndarray, cell: int) -> int | None:
    """The published cell sharing an equation with ``cell`` whose suppression loses least: the smallest count, the
    period total last."""
    period = cells.loc[members]
    published = period[period["reason"] == ""]
    if cells.at[cell, "table"] == OVERALL:
        candidates = published[published["table"] != OVERALL]
    else:
        candidates = published[published["table"].isin([cells.at[cell, "table"], OVERALL])]
    if candidates.empty:
        candidates = published  # no published cell shares an equation with it: widen through any other
    if candidates.empty:
        return None
    cost = candidates["encounters"].astype(float) + np.where(candidates["table"] == OVERALL, OVERALL_COST, 0.0)
    return int(cost.idxmin())


def _protect_measures(cells: pd.DataFrame, members: np.ndarray, measures: tuple[str, ...]) -> None:
    """Step 3: no table's suppressed cells may be all without, or all with, a measure the period total publishes."""
    period = cells.loc[members]
    overall = period[period["table"] == OVERALL]
    if overall.empty or overall["reason"].iloc[0] != "":
        return  # the total is hidden: the suppressed cells' sums are not known
    total = overall.iloc[0]
    for table in sorted(set(period["table"]) - {OVERALL}):
        for measure in measures:
            count = f"n_{measure}"
            if total[count] in (0, total["encounters"]):
                continue  # the published total already says it for every part of the period
            while True:
                rows = cells.loc[period.index[period["table"] == table]]
                hidden = rows[rows["reason"] != ""]
                with_measure, encounters = int(hidden[count].sum()), int(hidden["encounters"].sum())
                if hidden.empty or 0 < with_measure < encounters:
                    break
                shown = rows[rows["reason"] == ""]
                needed = shown[count] > 0 if with_measure == 0 else shown[count] < shown["encounters"]
                if not needed.any():
                    break
                partner = int(shown[needed]["encounters"].idxmin())
                cells.at[partner, "reason"] = f"complementary: protects {table} ({measure})"
