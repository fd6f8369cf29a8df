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
3. **Shares**: a published row's share is withheld (left empty) when it would let a reader derive a count from 1
   to ``min_cell - 1``: the encounters with the behaviour (3 of 40) or without it (37 of 40). The public-health
   "rule of 11" covers counts derived from percentages too. Withheld numerators are protected like counts: a
   linear programme over the numerators' margins (every table's numerators add up to the total's, each between 0
   and its cell's count, itself hidden in a suppressed row: :func:`numerator_intervals`) must leave each withheld
   one an interval at least ``min_cell`` wide, else another share of its table is withheld with it.
4. **Hidden rows together**: the numerators hidden in a table (suppressed rows and withheld shares) add up to a
   known number. When suppressed rows are among them and that number would be zero, all their encounters, or a
   count from 1 to ``min_cell - 1`` with or without the measure (2 threats among 37 encounters), one more share of
   that table is withheld, until it is none of these. (When the period's own published share is 0 or 1, it says
   so for every part of the period: nothing can hide that, and the data dictionary says it.)

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

from bwc.store import BEHAVIOUR_COLUMNS

OVERALL = "overall"  # the table every other table of a period adds up to
STICKY = "previous release"  # reason of a cell suppressed because an earlier release suppressed it
OVERALL_COST = 1e9  # the period total is suppressed only when nothing else can protect a cell
BEHAVIOURS = BEHAVIOUR_COLUMNS  # the five trained behaviours, as the store names them
BEHAVIOUR_FAMILY = (*BEHAVIOURS, "all_five")  # all_five <= each behaviour, >= their sum - 4 x: solved together


def suppress(
    cells: pd.DataFrame,
    min_cell: int,
    min_officers: int,
    max_officer_share: float,
    sticky: Iterable[tuple[str, str, str]] = (),
    measures: Iterable[str] = (),
    sticky_shares: Iterable[tuple[str, str, str, str]] = (),
) -> pd.DataFrame:
    """``cells`` with ``suppressed`` (bool), ``reason`` and one ``withheld_<measure>`` per measure (why that share is
    left empty in a published row, or ``""``). Reasons are internal: never published, since telling primary from
    complementary cells would tell an attacker which ones are small.

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
        Binary measures whose shares are published (steps 3 and 4 of the module docstring).
    sticky_shares
        ``(table, period, group, measure)`` of shares an earlier release withheld: withheld again.
    """
    cells = cells.reset_index(drop=True).copy()
    reasons = [primary_reason(row, min_cell, min_officers, max_officer_share) for row in cells.itertuples()]
    sticky = set(sticky)
    for index, row in enumerate(cells.itertuples()):
        if not reasons[index] and (row.table, row.period, row.group) in sticky:
            reasons[index] = STICKY
    cells["reason"] = reasons
    measures = tuple(measures)
    for measure in measures:
        cells[f"withheld_{measure}"] = ""
    for table, period_name, group, measure in set(sticky_shares):
        if measure in measures:
            match = (cells["table"] == table) & (cells["period"] == period_name) & (cells["group"] == group)
            cells.loc[match, f"withheld_{measure}"] = STICKY
    for _, period in cells.groupby("period", sort=False):
        members = period.index.to_numpy()
        _protect_counts(cells, members, min_cell)
        for measure in measures:
            _withhold_small_shares(cells, members, measure, min_cell)
        if set(BEHAVIOUR_FAMILY) <= set(measures):
            _protect_behaviour_family(cells, members, min_cell)
        _protect_measures(cells, members, measures, min_cell)
    cells["suppressed"] = cells["reason"] != ""
    for measure in measures:  # a suppressed row hides every share anyway
        cells.loc[cells["suppressed"], f"withheld_{measure}"] = ""
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


def numerator_intervals(period: pd.DataFrame, measure: str, wanted: list[int]) -> dict[int, tuple[float, float]]:
    """The attacker's bounds on the hidden numerators (encounters with ``measure``) of ``wanted`` cells of one period.

    What the attacker knows: published counts and shares (so published numerators), that every table adds up to the
    period's total in counts and in numerators, that a numerator lies between 0 and its cell's count (itself hidden
    in a suppressed row). ``period`` holds the cells with ``reason`` (row suppressed when not empty) and
    ``withheld_<measure>`` (share withheld when not empty).
    """
    rows = period.index.tolist()
    count_hidden = {i: period.at[i, "reason"] != "" for i in rows}
    share_hidden = {i: count_hidden[i] or period.at[i, f"withheld_{measure}"] != "" for i in rows}
    variables = [("x", i) for i in rows if count_hidden[i]] + [("y", i) for i in rows if share_hidden[i]]
    if not variables:
        return {}
    column = {variable: position for position, variable in enumerate(variables)}
    total = next((i for i in rows if period.at[i, "table"] == OVERALL), None)
    equations, rhs = [], []
    for table in sorted(set(period["table"]) - {OVERALL}):
        members = [i for i in rows if period.at[i, "table"] == table]
        for kind, value_of, hidden in (("x", "encounters", count_hidden), ("y", f"n_{measure}", share_hidden)):
            row, value = np.zeros(len(variables)), 0.0
            for i in members:
                if hidden[i]:
                    row[column[(kind, i)]] += 1.0
                else:
                    value -= float(period.at[i, value_of])
            if total is not None:
                if hidden[total]:
                    row[column[(kind, total)]] -= 1.0
                else:
                    value += float(period.at[total, value_of])
            if np.any(row):
                equations.append(row)
                rhs.append(value)
    inequalities = []  # y - x <= 0 where both are hidden
    bounds = [(0.0, None)] * len(variables)
    for i in rows:
        if share_hidden[i] and count_hidden[i]:
            row = np.zeros(len(variables))
            row[column[("y", i)]], row[column[("x", i)]] = 1.0, -1.0
            inequalities.append(row)
        elif share_hidden[i]:
            bounds[column[("y", i)]] = (0.0, float(period.at[i, "encounters"]))
    a_eq = np.array(equations) if equations else None
    b_eq = np.array(rhs) if equations else None
    a_ub = np.array(inequalities) if inequalities else None
    b_ub = np.zeros(len(inequalities)) if inequalities else None
    intervals = {}
    for i in wanted:
        objective = np.zeros(len(variables))
        objective[column[("y", i)]] = 1.0
        low = linprog(objective, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        high = linprog(-objective, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        lowest = float(low.fun) if low.status == 0 else 0.0
        highest = math.inf if high.status == 3 else float(-high.fun) if high.status == 0 else math.inf
        intervals[i] = (round(lowest, 6), round(highest, 6))
    return intervals


def family_intervals(period: pd.DataFrame, wanted: list[tuple[int, str]]) -> dict[tuple[int, str], tuple]:
    """:func:`numerator_intervals` for the five behaviours and ``all_five`` at once, with what ties them in every
    cell: ``all_five <= each behaviour`` and ``all_five >= (sum of the five) - 4 x`` (an encounter with all five has
    each; one without some lacks at least one)."""
    rows = period.index.tolist()
    count_hidden = {i: period.at[i, "reason"] != "" for i in rows}
    share_hidden = {(i, m): count_hidden[i] or period.at[i, f"withheld_{m}"] != "" for i in rows
                    for m in BEHAVIOUR_FAMILY}  # fmt: skip
    variables = [("x", i, "") for i in rows if count_hidden[i]]
    variables += [("y", i, m) for i in rows for m in BEHAVIOUR_FAMILY if share_hidden[(i, m)]]
    column = {variable: position for position, variable in enumerate(variables)}
    n = len(variables)
    total = next((i for i in rows if period.at[i, "table"] == OVERALL), None)

    def term(i: int, m: str) -> tuple[int | None, float]:
        """(variable column, 0) when hidden, else (None, its published value)."""
        if m == "":
            return (column[("x", i, "")], 0.0) if count_hidden[i] else (None, float(period.at[i, "encounters"]))
        return (column[("y", i, m)], 0.0) if share_hidden[(i, m)] else (None, float(period.at[i, f"n_{m}"]))

    def linear(terms: list[tuple[float, int, str]]) -> tuple[np.ndarray, float]:
        """Σ sign × term as (coefficients of the hidden ones, minus the sum of the published ones)."""
        row, value = np.zeros(n), 0.0
        for sign, i, m in terms:
            position, known = term(i, m)
            if position is None:
                value -= sign * known
            else:
                row[position] += sign
        return row, value

    equations, rhs = [], []  # every table adds up to the total, in counts and in each numerator
    for table in sorted(set(period["table"]) - {OVERALL}):
        members = [i for i in rows if period.at[i, "table"] == table]
        for m in ("", *BEHAVIOUR_FAMILY):
            terms = [(1.0, i, m) for i in members] + ([(-1.0, total, m)] if total is not None else [])
            row, value = linear(terms)
            if np.any(row):
                equations.append(row)
                rhs.append(value)
    inequalities, limits = [], []
    for i in rows:
        ties = [[(1.0, i, m), (-1.0, i, "")] for m in BEHAVIOUR_FAMILY]  # y <= x
        ties += [[(1.0, i, "all_five"), (-1.0, i, b)] for b in BEHAVIOURS]  # all_five <= each behaviour
        ties.append([(1.0, i, b) for b in BEHAVIOURS] + [(-4.0, i, ""), (-1.0, i, "all_five")])  # Σ - 4x <= all_five
        for terms in ties:
            row, value = linear(terms)
            if np.any(row):
                inequalities.append(row)
                limits.append(value)
    problem = {"A_eq": np.array(equations) if equations else None, "b_eq": np.array(rhs) if equations else None,
               "A_ub": np.array(inequalities) if inequalities else None,
               "b_ub": np.array(limits) if inequalities else None, "bounds": (0, None), "method": "highs"}  # fmt: skip
    intervals = {}
    for i, m in wanted:
        objective = np.zeros(n)
        objective[column[("y", i, m)]] = 1.0
        low, high = linprog(objective, **problem), linprog(-objective, **problem)
        lowest = float(low.fun) if low.status == 0 else 0.0
        highest = math.inf if high.status == 3 else float(-high.fun) if high.status == 0 else math.inf
        intervals[(i, m)] = (round(lowest, 6), round(highest, 6))
    return intervals


def _protect_behaviour_family(cells: pd.DataFrame, members: np.ndarray, min_cell: int) -> None:
    """Step 3 again for the behaviours and ``all_five`` solved together: their ties can narrow what each measure's
    own margins leave wide."""
    while True:
        period = cells.loc[members]
        wanted = [
            (i, m) for i in members for m in BEHAVIOUR_FAMILY if cells.at[i, f"withheld_{m}"].startswith("primary")
        ]
        if not wanted:
            return
        exposed = [key for key, (low, high) in family_intervals(period, wanted).items() if high - low < min_cell]
        if not exposed:
            return
        cell, measure = exposed[0]
        partner = _share_partner(period, cell, measure, min_cell)
        if partner is None:
            return
        cells.at[partner, f"withheld_{measure}"] = (
            f"complementary: protects {cells.at[cell, 'group']} ({measure}, jointly)"
        )


def small_share(encounters: int, with_measure: int, min_cell: int) -> bool:
    """Whether a share would let a reader derive a count from 1 to ``min_cell - 1`` (those with the measure, or
    those without it): the public-health "rule of 11" covers counts derived from percentages too.

    >>> small_share(40, 3, 11), small_share(40, 0, 11), small_share(40, 35, 11), small_share(40, 20, 11)
    (True, False, True, False)
    """
    without = encounters - with_measure
    return 0 < with_measure < min_cell or 0 < without < min_cell


def _withhold_small_shares(cells: pd.DataFrame, members: np.ndarray, measure: str, min_cell: int) -> None:
    """Step 3: withhold shares of published rows that give away a small count, and others with them until the
    margins bound each withheld numerator no tighter than ``min_cell``."""
    column, count = f"withheld_{measure}", f"n_{measure}"
    for i in members:
        if cells.at[i, "reason"] == "" and small_share(cells.at[i, "encounters"], cells.at[i, count], min_cell):
            cells.at[i, column] = "primary: small count"
    while True:
        period = cells.loc[members]
        primary = [i for i in members if cells.at[i, column].startswith("primary")]
        if not primary:
            return
        intervals = numerator_intervals(period, measure, primary)
        exposed = [i for i, (low, high) in intervals.items() if high - low < min_cell]
        if not exposed:
            return
        partner = _share_partner(period, exposed[0], measure, min_cell)
        if partner is None:
            return
        cells.at[partner, column] = f"complementary: protects {cells.at[exposed[0], 'group']} ({measure})"


def _share_partner(period: pd.DataFrame, cell: int, measure: str, min_cell: int) -> int | None:
    """The shown share to withhold with ``cell``'s: in its table (the period total last), preferring one whose count
    with and without the measure are both publishable (it widens the interval most), then the smallest cell."""
    column, count = f"withheld_{measure}", f"n_{measure}"
    shown = period[(period["reason"] == "") & (period[column] == "") & (period.index != cell)]
    table = period.at[cell, "table"]
    same = shown[shown["table"] == table] if table != OVERALL else shown[shown["table"] != OVERALL]
    candidates = same if not same.empty else shown[shown["table"] == OVERALL]
    if candidates.empty:
        candidates = shown
    if candidates.empty:
        return None
    room = np.minimum(candidates[count], candidates["encounters"] - candidates[count])
    cost = candidates["encounters"].astype(float) + np.where(room >= min_cell, 0.0, 1e6) - room.astype(float) * 1e-3
    cost = cost + np.where(candidates["table"] == OVERALL, OVERALL_COST, 0.0)
    return int(cost.idxmin())


def _protect_measures(cells: pd.DataFrame, members: np.ndarray, measures: tuple[str, ...], min_cell: int) -> None:
    """Step 4: where suppressed rows are among a table's hidden numerators, the hidden pool may not be known to
    hold none, all, or 1 to ``min_cell - 1`` encounters with (or without) a measure."""
    period = cells.loc[members]
    overall = period[period["table"] == OVERALL]
    if overall.empty or overall["reason"].iloc[0] != "":
        return  # the total is hidden: the suppressed cells' sums are not known
    total = overall.iloc[0]
    for measure in measures:
        count, column = f"n_{measure}", f"withheld_{measure}"
        if total[column] != "" or total[count] in (0, total["encounters"]):
            continue  # the total's share is withheld, or already says it for every part of the period
        for table in sorted(set(period["table"]) - {OVERALL}):
            while True:
                rows = cells.loc[period.index[period["table"] == table]]
                hidden = rows[(rows["reason"] != "") | (rows[column] != "")]
                with_measure, encounters = int(hidden[count].sum()), int(hidden["encounters"].sum())
                if not (hidden["reason"] != "").any():
                    break  # withheld shares alone: step 3 bounded each of them
                without = encounters - with_measure
                if 0 < with_measure < encounters and not small_share(encounters, with_measure, min_cell):
                    break
                # The hidden rows together would be known to hold none, all, or a few (1 to min_cell - 1) with, or
                # without, the measure: withhold a shown share that moves the pool out of that.
                shown = rows[(rows["reason"] == "") & (rows[column] == "")]
                lacking = with_measure < min_cell
                gives = shown[count] if lacking else shown["encounters"] - shown[count]
                if lacking and without < min_cell:
                    gives = np.minimum(shown[count], shown["encounters"] - shown[count])
                if not (gives > 0).any():
                    break
                enough = shown[gives >= min_cell]
                partner = int((enough if not enough.empty else shown[gives > 0])["encounters"].idxmin())
                cells.at[partner, column] = f"complementary: protects {table} ({measure}: hidden rows together)"
