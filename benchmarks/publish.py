"""What does disclosure control cost, and what does primary suppression alone leak? ``bwc publish`` on simulated
departments, against the primary-only suppression an output checker such as ACRO applies.

Each department is simulated by ``bwc.research.simulate_department`` (officers, Poisson encounters, the five
behaviours, hostile acts, flags: a real store), with simulated stop data (districts patrolled mostly by one unit,
stop reasons, civilian race, gender and age group, outcomes). Both sides publish the same tables (overall and by
district, stop reason, time of day, race, gender and age group, monthly) from the same cells with the same primary
rules (fewer than 11 encounters, fewer than 3 officers, one officer above half); they differ only in complementary
suppression. The attacker knows only the published CSVs: each table adds up to the period's total, counts are not
negative; the linear programme gives each suppressed count's interval. A cell is *recovered* when its interval is
narrower than the threshold (the attacker can tell it is small, and often its exact value).

    .venv/bin/python benchmarks/publish.py                   # three department sizes; appends to RESULTS.md
    .venv/bin/python benchmarks/publish.py --no-record       # prints only
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so that `python benchmarks/publish.py` works from the repository root

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SIZES = {  # name: (officers, months, encounters per officer-month, units)
    "small (30 officers)": (30, 12, 5.0, 3),
    "medium (150 officers)": (150, 12, 6.0, 5),
    "large (400 officers)": (400, 12, 6.0, 8),
}
BY = ("district", "stop_reason", "time_of_day", "race", "gender", "age_group")
THROUGH = date(2025, 12, 31)


def attacked(cells: pd.DataFrame, suppressed: pd.Series, min_cell: int) -> tuple[int, int]:
    """(suppressed cells recovered to an interval narrower than min_cell, of them pinned exactly)."""
    from bwc.publish.suppression import count_intervals

    narrow = exact = 0
    for _, period in cells.groupby("period"):
        hidden = suppressed.loc[period.index]
        intervals = count_intervals(period["table"], period["group"], period["encounters"], hidden)
        widths = [high - low for low, high in intervals.values()]
        narrow += sum(width < min_cell for width in widths)
        exact += sum(width == 0 for width in widths)
    return narrow, exact


def one(name: str, seed: int) -> dict[str, object]:
    from bwc.publish.release import prepare
    from bwc.publish.suppression import primary_reason
    from bwc.publish.tables import PublishSettings
    from bwc.research.simulate_department import simulate_department, simulate_stop_data, write_department_store

    officers, months, per_month, units = SIZES[name]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        department = simulate_department(n_officers=officers, n_months=months, encounters_per_month=per_month,
                                         n_units=units, seed=seed)  # fmt: skip
        store = write_department_store(department, root / "store")
        simulate_stop_data(department, seed=seed).to_csv(root / "stops.csv", index=False)
        settings = PublishSettings(by=BY, through=THROUGH)
        started = time.perf_counter()
        draft = prepare(store, root / "portal", settings, root / "stops.csv")
        seconds = time.perf_counter() - started
        cells = pd.read_parquet(draft.folder / "cells.parquet")
    primary = cells.apply(lambda row: primary_reason(row, settings.min_cell, settings.min_officers,
                                                     settings.max_officer_share) != "", axis=1)  # fmt: skip
    primary_narrow, primary_exact = attacked(cells, primary, settings.min_cell)
    bwc_narrow, bwc_exact = attacked(cells, cells["suppressed"], settings.min_cell)
    by_table = cells[cells["table"] != "overall"]
    from bwc.publish.suppression import small_share
    from bwc.publish.tables import MEASURES

    def implied_small(rows: pd.DataFrame, withheld: bool) -> int:
        """Published shares that give away a count from 1 to 10 (with or without the behaviour)."""
        total = 0
        for measure in MEASURES:
            shown = rows if not withheld else rows[rows[f"withheld_{measure}"] == ""]
            total += sum(
                small_share(n, k, settings.min_cell)
                for n, k in zip(shown["encounters"], shown[f"n_{measure}"], strict=True)
            )
        return total

    naive_rows = cells[~primary]
    bwc_rows = cells[~cells["suppressed"]]
    shares = len(bwc_rows) * len(MEASURES)
    return {
        "department": name,
        "encounters": int(cells.loc[cells["table"] == "overall", "encounters"].sum()),
        "cells": len(cells),
        "primary": int(primary.sum()),
        "primary_recovered": primary_narrow,
        "primary_exact": primary_exact,
        "bwc": int(cells["suppressed"].sum()),
        "bwc_recovered": bwc_narrow,
        "bwc_exact": bwc_exact,
        "primary_small_shares": implied_small(naive_rows, withheld=False),
        "naive_shares": len(naive_rows) * len(MEASURES),
        "bwc_small_shares": implied_small(bwc_rows, withheld=True),
        "withheld_shares": float(sum((bwc_rows[f"withheld_{m}"] != "").sum() for m in MEASURES) / max(shares, 1)),
        "hidden_encounters": float(
            by_table.loc[by_table["suppressed"], "encounters"].sum() / by_table["encounters"].sum()
        ),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-record", action="store_true", help="print only, append nothing to RESULTS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = pd.DataFrame([one(name, args.seed) for name in SIZES])
    report = _report(rows, time.perf_counter() - started, args)
    print(report)
    if not args.no_record:
        with RESULTS.open("a", encoding="utf-8") as handle:
            handle.write("\n" + report)


def _report(rows: pd.DataFrame, seconds: float, args: argparse.Namespace) -> str:
    command = "python benchmarks/publish.py" + (f" --seed {args.seed}" if args.seed != 11 else "")
    lines = [
        f"## Open data: disclosure control against a margin-solving attacker — {datetime.now(UTC):%Y-%m-%d}",
        "",
        f"`{command}` ({seconds:.0f} s, {platform.machine()}, 2 cores). Simulated departments (seed {args.seed}), "
        f"12 months, tables overall and by {', '.join(BY)}; thresholds 11 encounters, 3 officers, one officer "
        "≤ 50%. *Recovered*: a suppressed count the attacker (linear programme over the published margins) "
        "bounds to an interval narrower than 11; *exact*: pinned to one value. Primary only = the same cells "
        "with the primary rules alone (what an output checker without complementary suppression publishes).",
        "",
        "| department | encounters | cells | primary only: suppressed | recovered | exact | shares showing a count "
        "of 1-10 | bwc: suppressed | recovered | exact | shares showing a count of 1-10 | shares withheld | "
        "encounters in suppressed cells | prepare (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows.itertuples():
        lines.append(
            f"| {row.department} | {row.encounters} | {row.cells} | {row.primary} | {row.primary_recovered} | "
            f"{row.primary_exact} | {row.primary_small_shares} of {row.naive_shares} | {row.bwc} | "
            f"{row.bwc_recovered} | {row.bwc_exact} | {row.bwc_small_shares} | {row.withheld_shares:.0%} | "
            f"{row.hidden_encounters:.1%} | {row.seconds:.1f} |"
        )
    lines += [
        "",
        "Shares are of the 12 binary measures in every published row. *Shares showing a count of 1-10*: a share "
        "from which share × encounters gives 1 to 10 encounters with the behaviour or without it (the rule of 11 "
        "covers derived counts); bwc withholds those and protects them as it protects counts.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
