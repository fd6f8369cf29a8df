"""``bwc research early-warning``: time-split validation of officer indicators against later outcomes, on simulated
departments written as real stores (real flags and officer periods), through the real command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bwc.research.early_warning import (
    LANGUAGE_INDICATORS,
    LANGUAGE_JOINT,
    EarlyWarningOptions,
    early_warning,
    load_outcomes,
)
from bwc.research.simulate_department import simulate_department, write_department_store

SIZE = {"n_officers": 100, "n_months": 24, "encounters_per_month": 4}


def _department(tmp_path_factory: pytest.TempPathFactory, link: float, seed: int) -> tuple[Path, Path]:
    simulated = simulate_department(link=link, seed=seed, **SIZE)
    root = tmp_path_factory.mktemp(f"link{link}")
    outcomes = root / "outcomes.csv"
    simulated.outcomes.to_csv(outcomes, index=False)
    return write_department_store(simulated, root / "store"), outcomes


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _department(tmp_path_factory, link=1.0, seed=11)


@pytest.fixture(scope="module")
def unlinked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _department(tmp_path_factory, link=0.0, seed=12)


def bwc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bwc.cli", *args], capture_output=True, text=True, timeout=600)


def test_the_command_writes_the_evaluation_indicators_and_report(linked: tuple[Path, Path], tmp_path: Path) -> None:
    store, outcomes = linked
    done = bwc("research", "early-warning", "--store", str(store), "--outcomes", str(outcomes), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    evaluation = pd.read_csv(tmp_path / "evaluation.csv")
    assert list(evaluation.columns[:4]) == ["method", "k", "precision", "recall"]
    assert {"bwc", "threshold_baseline", "language_only", "threshold_rule"} <= set(evaluation["method"])
    assert evaluation[["precision", "recall"]].apply(lambda c: c.between(0, 1)).all().all()
    indicators = pd.read_csv(tmp_path / "indicators.csv")
    assert list(indicators.columns[:5]) == ["indicator", "estimate", "ci_low", "ci_high", "p_value"]
    single = indicators.dropna(subset=["estimate"])  # the joint test has no single estimate
    assert ((single["ci_low"] <= single["estimate"]) & (single["estimate"] <= single["ci_high"])).all()
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert set(metrics["method"]) == {"bwc", "language_only", "threshold_baseline"}
    report = (tmp_path / "report.html").read_text()
    assert report.count("<img") == 3 and "threshold rule" in report
    # aggregates only: no officer id in anything written
    officers = set(pd.read_csv(outcomes, dtype=str)["officer_id"])
    for path in tmp_path.iterdir():
        text = path.read_text()
        assert not any(officer in text for officer in officers), path


def test_a_planted_link_is_found_and_ranks_above_the_threshold_rule(linked: tuple[Path, Path]) -> None:
    store, outcomes = linked
    result = early_warning(store, load_outcomes(outcomes), EarlyWarningOptions())
    indicators = result.indicators.set_index("indicator")
    assert indicators.loc[LANGUAGE_JOINT, "claimed"], result.indicators
    assert indicators.loc["respect", "estimate"] < 1.0  # worse language, more outcomes
    # one department is a noisy judge of small k (the benchmark averages many): on average over k, and in AUC
    precision = result.evaluation.pivot_table(index="k", columns="method", values="precision")
    assert precision["bwc"].mean() > precision["threshold_baseline"].mean(), precision
    auc = result.metrics.set_index("method")["auc"]
    assert auc["bwc"] > auc["threshold_baseline"]
    # every test cut's model saw only cuts whose outcomes were known by then
    assert len(result.test_cuts) >= 3 and min(result.test_cuts) >= min(result.cuts) + pd.DateOffset(months=6)


def test_no_language_indicator_is_claimed_without_a_link(unlinked: tuple[Path, Path]) -> None:
    store, outcomes = unlinked
    result = early_warning(store, load_outcomes(outcomes), EarlyWarningOptions())
    claimed = result.indicators.set_index("indicator")["claimed"]
    assert not claimed[[*LANGUAGE_INDICATORS, LANGUAGE_JOINT]].any(), result.indicators
    # the intervals are simultaneous: wider than the unadjusted 95% ones
    assert (result.indicators["p_value"] >= result.indicators["p_value_unadjusted"]).all()


def test_kinds_filter_and_unknown_officers_are_reported(linked: tuple[Path, Path], tmp_path: Path) -> None:
    store, outcomes = linked
    table = pd.read_csv(outcomes, dtype=str)
    extra = pd.DataFrame([{"officer_id": "NOT-IN-STORE", "date": "2025-06-01", "kind": "complaint"}])
    pd.concat([table, extra]).to_csv(tmp_path / "outcomes.csv", index=False)
    everything = early_warning(store, load_outcomes(tmp_path / "outcomes.csv"), EarlyWarningOptions())
    complaints = early_warning(store, load_outcomes(outcomes), EarlyWarningOptions(kinds=("complaint",)))
    assert everything.dropped_outcomes == 1
    assert complaints.panel["outcomes_after"].sum() < everything.panel["outcomes_after"].sum()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("officer_id,when,kind\nB1000,2025-01-03,complaint\n", r"missing column\(s\) date"),
        ("officer_id,date,kind\nB1000,2025-01-03,complaint\nB1001,not a date,complaint\n", r"line 3: no readable date"),
        ("officer_id,date,kind\n,2025-01-03,complaint\n", r"line 2: no officer_id"),
    ],
)
def test_bad_outcomes_get_one_line_naming_the_file_and_line(
    linked: tuple[Path, Path], tmp_path: Path, text: str, message: str
) -> None:
    bad = tmp_path / "outcomes.csv"
    bad.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_outcomes(bad)
    done = bwc("research", "early-warning", "--store", str(linked[0]), "--outcomes", str(bad), "--out", str(tmp_path))
    assert done.returncode != 0 and "outcomes.csv" in done.stderr and "Traceback" not in done.stderr


def test_too_little_time_is_a_clear_error(linked: tuple[Path, Path]) -> None:
    store, outcomes = linked
    with pytest.raises(ValueError, match=r"too little for time-split validation"):
        early_warning(store, load_outcomes(outcomes), EarlyWarningOptions(lookback_days=540, horizon_months=6))


def test_an_empty_store_is_a_clear_error(tmp_path: Path, linked: tuple[Path, Path]) -> None:
    empty = tmp_path / "store"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no scored encounters \(run `bwc run` or `bwc score` first\)"):
        early_warning(empty, load_outcomes(linked[1]), EarlyWarningOptions())
