"""Does the training-effect estimator recover a planted effect with honest confidence intervals? (Monte Carlo.)

Simulates staggered-training panels (``bwc.research.simulate.simulate_panel``: 4 training cohorts between months 6
and 18, Poisson(4) encounters per officer-month, respect noise SD 1 in corpus SD units, officer and month effects and
a department-wide drift), estimates each with ``estimate_training_effect`` and reports, per design: bias (mean
estimate - true ATT), RMSE, mean standard error, coverage of the 95% CI of the overall ATT with its exact binomial
95% CI, and how often the pre-trend test rejects at 5% (no pre-trend is planted, so that is its false-alarm rate).
A naive two-way fixed-effects estimate (post-training dummy, officer and month fixed effects) is reported beside it.

Designs (each its own seeds: design i uses seeds 10000*i .. 10000*i + panels - 1):
- constant: 80 officers x 24 months (about 7,700 encounters), 30% never trained, effect 0.5 SD;
- dynamic, heterogeneous: same size, effect ramps up over 6 months, earlier cohorts gain 3x more than the last;
- few officers: 30 officers x 24 months, constant effect 0.5 SD (small-cluster check).

    python benchmarks/training_effect.py              # 200 panels per design; appends to benchmarks/RESULTS.md
    python benchmarks/training_effect.py --quick      # 30 panels per design
    python benchmarks/training_effect.py --panels 1000 --design constant    # one design, more panels
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

RESULTS = Path(__file__).parent / "RESULTS.md"
DEFAULT_PANELS, QUICK_PANELS = 200, 30
ALPHA = 0.05  # pre-trend test level
COVERAGE_GOAL = (0.93, 0.97)  # of nominal 95% intervals
BIAS_GOAL = 0.05  # |mean estimate - truth| in outcome SD units
MONTHS = 24
SEED_STRIDE = 10_000  # design i simulates seeds SEED_STRIDE * i + 0, 1, ...
DESIGNS: dict[str, dict[str, Any]] = {
    "constant": {"n_officers": 80, "n_months": MONTHS, "effect": 0.5},
    "dynamic, heterogeneous": {
        "n_officers": 80, "n_months": MONTHS, "effect": 0.5, "dynamic": True, "heterogeneous": True,
    },
    "few officers": {"n_officers": 30, "n_months": MONTHS, "effect": 0.5},
}  # fmt: skip
DESCRIPTIONS = {
    "constant": "80 officers, constant effect 0.5 SD",
    "dynamic, heterogeneous": "80 officers, effect ramping up to 0.5 SD over 6 months x cohort factor 1.5..0.5",
    "few officers": "30 officers, constant effect 0.5 SD",
}


@dataclass(frozen=True)
class Panel:
    """One simulated panel's estimates."""

    design: str  # key of DESIGNS
    truth: float  # true ATT of the panel
    estimate: float  # two-stage overall ATT
    std_error: float  # its officer-clustered standard error
    covered: bool  # the 95% CI contains the truth
    pretrend_p: float  # p-value of the joint pre-trend test
    twfe: float  # naive two-way fixed-effects estimate
    seconds: float  # estimation time (estimate_training_effect only)


def run_panel(design: str, seed: int) -> Panel:
    """Simulate one panel of ``design`` and estimate it (in a worker process)."""
    import pyfixest as pf

    from bwc.research.simulate import simulate_panel
    from bwc.research.training import estimate_training_effect

    encounters, roster, truth = simulate_panel(seed=seed, **DESIGNS[design])
    started = time.perf_counter()
    result = estimate_training_effect(encounters, roster, ["respect"])
    seconds = time.perf_counter() - started
    row = result.effects.iloc[0]
    trained = encounters["officer_id"].map(pd.to_datetime(roster.set_index("officer_id")["trained_on"], utc=True))
    naive = encounters.assign(post=(encounters["recorded_at"].dt.floor("D") >= trained).astype(int))
    naive["month"] = naive["recorded_at"].dt.strftime("%Y-%m")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        twfe = pf.feols("respect ~ post | officer_id + month", naive, vcov={"CRV1": "officer_id"})
    return Panel(
        design=design,
        truth=truth,
        estimate=float(row.estimate),
        std_error=float(row.std_error),
        covered=bool(row.ci_low <= truth <= row.ci_high),
        pretrend_p=float(result.pretrend["p_value"].iloc[0]),
        twfe=float(twfe.coef()["post"]),
        seconds=seconds,
    )


def summarize(panels: list[Panel]) -> dict[str, Any]:
    """Bias, RMSE, coverage (with an exact binomial CI) and pre-trend false-alarm rate of one design."""
    errors = np.array([p.estimate - p.truth for p in panels])
    covered = sum(p.covered for p in panels)
    rejected = sum(p.pretrend_p < ALPHA for p in panels)
    coverage_ci = stats.binomtest(covered, len(panels)).proportion_ci(confidence_level=0.95, method="exact")
    rejection_ci = stats.binomtest(rejected, len(panels)).proportion_ci(confidence_level=0.95, method="exact")
    return {
        "panels": len(panels),
        "truth": float(np.mean([p.truth for p in panels])),
        "bias": float(errors.mean()),
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "sd": float(errors.std(ddof=1)),
        "mean_se": float(np.mean([p.std_error for p in panels])),
        "coverage": covered / len(panels),
        "coverage_ci": (coverage_ci.low, coverage_ci.high),
        "pretrend_rejection": rejected / len(panels),
        "pretrend_ci": (rejection_ci.low, rejection_ci.high),
        "twfe_bias": float(np.mean([p.twfe - p.truth for p in panels])),
        "seconds": float(np.mean([p.seconds for p in panels])),
    }


def table(summaries: dict[str, dict[str, Any]]) -> str:
    header = (
        "| design | panels | mean true ATT | bias | RMSE | SD of estimates | mean SE | 95% CI coverage (exact 95% CI) "
        "| pre-trend rejections at 5% (95% CI) | naive TWFE bias |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| {name}: {DESCRIPTIONS[name]} | {s['panels']} | {s['truth']:.3f} | {s['bias']:+.4f} | {s['rmse']:.4f} "
        f"| {s['sd']:.4f} "
        f"| {s['mean_se']:.4f} | {s['coverage']:.1%} ({s['coverage_ci'][0]:.1%}–{s['coverage_ci'][1]:.1%}) "
        f"| {s['pretrend_rejection']:.1%} ({s['pretrend_ci'][0]:.1%}–{s['pretrend_ci'][1]:.1%}) "
        f"| {s['twfe_bias']:+.4f} |"
        for name, s in summaries.items()
    ]
    return header + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", type=int, default=DEFAULT_PANELS, help="panels per design")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PANELS} panels per design")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--design", action="append", choices=list(DESIGNS), help="only this design (repeatable)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    panels = QUICK_PANELS if args.quick else args.panels
    designs = args.design or list(DESIGNS)
    command = "python benchmarks/training_effect.py" + (" --quick" if args.quick else f" --panels {panels}")
    command += "".join(f" --design '{design}'" for design in args.design or [])
    started = time.perf_counter()
    # Distinct seeds per design: the same seed would give every design the same noise, hence the same errors.
    seeds = {design: SEED_STRIDE * i for i, design in enumerate(DESIGNS)}
    jobs = [(design, seeds[design] + k) for design in designs for k in range(panels)]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(run_panel, *zip(*jobs, strict=True), chunksize=4))
    elapsed = time.perf_counter() - started
    summaries = {design: summarize([r for r in results if r.design == design]) for design in designs}

    lines = []
    for name, s in summaries.items():
        low, high = COVERAGE_GOAL
        coverage_ok = low <= s["coverage"] <= high
        lines.append(
            f"- {name}: coverage {s['coverage']:.1%} {'within' if coverage_ok else 'OUTSIDE'} the {low:.0%}–{high:.0%} "
            f"goal; |bias| {abs(s['bias']):.4f} {'<' if abs(s['bias']) < BIAS_GOAL else '>='} {BIAS_GOAL} SD; "
            f"{s['seconds']:.2f} s per estimate (overall ATT + event study)"
        )
    section = (
        f"\n## Training effects: staggered DiD in simulation — {datetime.now(UTC):%Y-%m-%d}\n\n"
        f"`{command}` on {platform.machine()}, {os.cpu_count()} cores, {args.workers} processes: "
        f"{len(jobs)} panels in {elapsed:.0f} s wall. Estimator: Gardner's two-stage DiD (`pyfixest.did2s`), "
        "officer and calendar-month fixed effects fitted on never- and not-yet-trained encounters, officer-clustered "
        "CRV1 standard errors with t(G-1) intervals; event-study window -6..6 months, pre-trend test on months -6..-2 "
        "(Hotelling-scaled F). Panels (about 7,700 encounters with 80 officers): 4 training cohorts between months 6 "
        "and 18, 30% of officers never trained, "
        f"Poisson(4) encounters per officer-month over {MONTHS} months, officer effects SD 0.5, month effects SD 0.2 "
        "plus a drift of 0.02 SD per month, encounter noise SD 1. Effects and errors are in respect units (corpus "
        "SD). True ATT: the mean planted effect over the panel's treated encounters. No pre-trend is planted.\n\n"
        + table(summaries)
        + "\n"
        + "\n".join(lines)
        + "\n"
    )
    print(section)
    if not args.no_record:
        with RESULTS.open("a", encoding="utf-8") as handle:
            handle.write(section)


if __name__ == "__main__":
    sys.exit(main())
