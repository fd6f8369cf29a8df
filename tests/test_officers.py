"""Officer measures over time (``STORE/officer_periods``) and their alerts: shrinkage, intervals, peers, changes,
and the end of a real run writing them (flags first, then officer periods)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bwc.config import BwcConfig, EarlyWarningConfig
from bwc.research.simulate_department import simulate_department, write_department_store
from bwc.store import BEHAVIOUR_COLUMNS, SCHEMAS, Store
from pipelines.flagging import flag_and_clip
from scoring.officers import current_periods, encounter_measures, officer_periods, read_roster

START = pd.Timestamp("2026-01-01", tz="UTC")


def department(
    n_officers: int = 20,
    days: int = 120,
    per_officer: int = 40,
    low: dict[str, float] | None = None,
    seed: int = 0,
    sd: float = 0.5,
) -> pd.DataFrame:
    """Encounter measures: officers with equal true respect (0) except those in ``low`` (officer -> offset)."""
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(n_officers):
        officer = f"B{number:02d}"
        for index in range(per_officer):
            at = START + pd.Timedelta(days=float(rng.uniform(0, days)))
            rows.append({"encounter_id": f"{officer}-{index}", "officer_id": officer, "recorded_at": at,
                         "respect": rng.normal((low or {}).get(officer, 0.0), sd), "escalation": 0.2})  # fmt: skip
    frame = pd.DataFrame(rows)
    for share in ("poor_share", "exemplary_share", "hostile_share"):
        frame[share] = 0.0
    for name in BEHAVIOUR_COLUMNS:
        frame[f"rate_{name}"] = (rng.random(len(frame)) < 0.5).astype(float)
    return frame


def table(measures: pd.DataFrame, config: EarlyWarningConfig | None = None, roster=None) -> pd.DataFrame:
    return pd.DataFrame(officer_periods(measures, config or EarlyWarningConfig(), roster))


def test_rows_follow_the_schema_and_both_windows() -> None:
    rows = table(department())
    assert list(rows.columns) == SCHEMAS["officer_periods"].names
    assert set(rows["window"]) == {"month", "90d"}
    months = rows[rows["window"] == "month"]
    assert sorted(months["period"].unique()) == ["2026-01", "2026-02", "2026-03", "2026-04"]
    # every encounter counted once per month
    assert months["encounters"].sum() == len(department())
    rolling = rows[rows["window"] == "90d"]
    assert (rolling["period_end"] - rolling["period_start"]).dt.days.eq(90).all()


def test_no_alert_in_a_department_of_equals() -> None:
    for seed in range(3):
        rows = table(department(n_officers=40, seed=seed))
        assert not rows["alert"].any(), rows.loc[rows["alert"], ["officer_id", "period", "alert_reasons"]]


def test_a_low_officer_alerts_with_reasons_and_the_encounters_behind_it() -> None:
    measures = department(low={"B03": -0.8})
    rows = table(measures)
    current = current_periods(rows, "90d")
    alerted = current[current["alert"]]
    assert alerted["officer_id"].tolist() == ["B03"]
    row = alerted.iloc[0]
    assert row["alert_kinds"] == "respect_below_peers"
    assert row["p_respect_below"] >= 0.975 and "probability" in row["alert_reasons"]
    assert row["respect_low"] < row["respect_shrunk"] < row["respect_high"] < row["peer_respect"]
    drivers = json.loads(row["alert_encounters"])
    mine = measures[(measures["officer_id"] == "B03") & (measures["recorded_at"] >= row["period_start"])]
    assert drivers == mine.nsmallest(5, "respect")["encounter_id"].tolist()


def test_shrinkage_pulls_small_samples_and_never_alerts_on_a_handful() -> None:
    measures = department(low={"B03": -2.0})
    few = measures[(measures["officer_id"] != "B03") | (measures.groupby("officer_id").cumcount() < 6)]
    rows = table(few.reset_index(drop=True))
    b03 = rows[(rows["officer_id"] == "B03") & (rows["window"] == "90d")]
    assert (b03["encounters"] < 10).all() and not b03["alert"].any()
    # shrunk lies between the officer's own mean and the peers', closer to the peers with fewer encounters
    assert ((b03["respect_shrunk"] > b03["respect_mean"]) & (b03["respect_shrunk"] < b03["peer_respect"])).all()


def test_intervals_cover_true_officer_means() -> None:
    rng = np.random.default_rng(5)
    truth = {f"B{n:02d}": float(rng.normal(0, 0.3)) for n in range(60)}
    measures = department(n_officers=60, per_officer=30, seed=5)
    measures["respect"] += measures["officer_id"].map(truth)
    rows = table(measures)
    rolling = rows[rows["window"] == "90d"]
    covered = (rolling["respect_low"] <= rolling["officer_id"].map(truth)) & (
        rolling["officer_id"].map(truth) <= rolling["respect_high"]
    )
    assert 0.88 <= covered.mean() <= 1.0, covered.mean()
    shares = rows[[c for c in rows.columns if c.startswith("rate_") and not c.endswith(("_low", "_high"))]]
    for column in shares.columns:
        assert (rows[f"{column}_low"] <= rows[column]).all() and (rows[column] <= rows[f"{column}_high"]).all()


def test_a_falling_officer_alerts_but_a_department_wide_shift_does_not() -> None:
    measures = department(n_officers=20, days=180, per_officer=80, seed=2)
    late = measures["recorded_at"] >= START + pd.Timedelta(days=90)
    falling = measures.copy()
    falling.loc[late & (falling["officer_id"] == "B07"), "respect"] -= 1.0
    current = current_periods(table(falling), "90d")
    b07 = current[current["officer_id"] == "B07"].iloc[0]
    assert "respect_falling" in b07["alert_kinds"] and b07["respect_change_high"] < 0
    shifted = measures.copy()
    shifted.loc[late, "respect"] -= 1.0  # everyone: a new model version or a season, nobody's change
    rows = table(shifted)
    assert not rows["alert_kinds"].str.contains("respect_falling").any()
    assert rows["respect_change"].dropna().abs().max() < 0.6


def test_peer_groups_from_a_roster(tmp_path: Path) -> None:
    measures = department(n_officers=12, seed=4)
    north = [f"B{n:02d}" for n in range(6)]
    measures.loc[measures["officer_id"].isin(north), "respect"] += 1.0  # a unit that talks differently
    roster_file = tmp_path / "roster.csv"
    units = ["North"] * 6 + ["South"] * 4 + ["East"] * 2  # East has too few officers to be its own peer group
    pd.DataFrame({"officer_id": [f"B{n:02d}" for n in range(12)], "unit": units}).to_csv(roster_file, index=False)
    roster = read_roster(roster_file, "unit")
    rows = table(measures, roster=roster)
    months = rows[rows["window"] == "month"]
    assert set(months.loc[months["unit"] == "North", "peer_group"]) == {"unit North"}
    assert set(months.loc[months["unit"] == "East", "peer_group"]) == {"department"}
    north_peer = months.loc[months["unit"] == "North", "peer_respect"]
    south_peer = months.loc[months["unit"] == "South", "peer_respect"]
    assert north_peer.mean() - south_peer.mean() > 0.8
    # compared with their own unit, the South officers are not "below peers"; against the department they would be
    assert not rows.loc[rows["unit"] == "South", "alert"].any()


def test_a_partial_roster_compares_unrostered_officers_with_the_whole_department(tmp_path: Path) -> None:
    measures = department(n_officers=20, days=180, per_officer=60, low={"B00": -0.9, "B01": 0.6}, seed=8)
    roster_file = tmp_path / "roster.csv"
    rostered = [f"B{n:02d}" for n in range(2, 20)]
    pd.DataFrame({"officer_id": rostered, "unit": ["North", "South"] * 9}).to_csv(roster_file, index=False)
    rows = table(measures, roster=read_roster(roster_file, "unit"))
    b00 = rows[rows["officer_id"] == "B00"]
    assert set(b00["peer_group"]) == {"department"} and (b00["peer_officers"] == 19).all()
    # the peers are the other 19 officers, not B00 and B01 alone
    assert (b00["peer_respect"] - b00["respect_mean"] > 0.5).all()
    current = current_periods(rows, "90d").set_index("officer_id")
    assert current.loc["B00", "alert_kinds"] == "respect_below_peers"
    assert not current.loc["B01", "alert"]  # steadily above everyone: neither below nor falling
    assert not rows.loc[rows["officer_id"] == "B01", "alert_kinds"].str.contains("falling").any()


def test_roster_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "roster.csv"
    bad.write_text("badge,unit\nB01,North\n")
    with pytest.raises(ValueError, match=r"roster.csv: the officer roster needs an officer_id column"):
        read_roster(bad, "unit")
    bad.write_text("officer_id,unit\nB01,North\nB01,South\n")
    with pytest.raises(ValueError, match=r"officer 'B01' is listed more than once"):
        read_roster(bad, "unit")
    bad.write_text("officer_id,shift\nB01,night\n")
    with pytest.raises(ValueError, match=r"no column 'unit' \(early_warning.peer_group\).*it has officer_id, shift"):
        read_roster(bad, "unit")
    bad.write_bytes("\ufeffofficer_id,unit\nB01,North\n".encode())  # a spreadsheet's byte-order mark
    assert read_roster(bad, "unit").to_dict() == {"B01": "North"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    simulated = simulate_department(n_officers=16, n_months=6, encounters_per_month=5, seed=7)
    return write_department_store(simulated, tmp_path_factory.mktemp("officers") / "store")


def test_the_end_of_a_run_writes_officer_periods_from_scores_and_flags(store: Path) -> None:
    s = Store(store)
    periods = s.read_parts("officer_periods")
    flags = s.read_parts("flags")
    encounters = s.read_parts("encounter_scores")
    assert set(periods["officer_id"]) == set(encounters["officer_id"])
    months = periods[periods["window"] == "month"]
    assert months["encounters"].sum() == len(encounters)
    # the poor share is the flags table's, per officer and month
    poor = flags[flags["flag"] == "poor"].merge(encounters[["encounter_id", "recorded_at"]], on="encounter_id")
    poor["period"] = poor["recorded_at_y"].dt.strftime("%Y-%m")
    counts = poor.groupby(["officer_id", "period"]).size()
    joined = months.set_index(["officer_id", "period"])
    recovered = (joined["poor_share"] * joined["encounters"]).round().astype(int)
    assert recovered[recovered > 0].sort_index().equals(counts.sort_index().astype(int))
    assert periods["model_version"].str.startswith("officers-1").all()
    assert periods["model_version"].str.contains("simulated-department-1").all()


def test_flag_recomputes_them_and_a_bad_roster_does_not_stop_it(store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "roster.csv"
    bad.write_text("badge\nB1000\n")
    config = BwcConfig().merged({"early_warning": {"roster": str(bad)}})
    summary = flag_and_clip(store, config, cut=False)
    assert summary.officers.officers == 16 and summary.officers.roster_problem
    assert "officer roster not used" in summary.describe() and "officer_id column" in summary.describe()
    assert set(Store(store).read_parts("officer_periods")["peer_group"]) == {"department"}
    report = summary.as_report()
    assert report["officers"] == 16 and report["officer_alert_period"]


def test_encounters_without_an_officer_or_time_are_counted_not_guessed() -> None:
    encounters = pd.DataFrame(
        {
            "encounter_id": ["a", "b", "c", "d"],
            "officer_id": ["B1", None, "B2", " "],
            "recorded_at": [START, START, None, START],
            "respect": [0.1, 0.2, 0.3, 0.4],
            "escalation": [0.1, 0.1, 0.1, 0.1],
        }
    )
    measures = encounter_measures(encounters, pd.DataFrame(), pd.DataFrame())
    assert measures["encounter_id"].tolist() == ["a"] and measures.attrs["skipped"] == 3
