"""Disparities: a planted gap in officer respect is recovered by the mixed model, through confounding that fools raw
means; small groups, missing columns and bad stop data are reported, not guessed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bwc.research.disparities import (
    EFFECT_COLUMNS,
    DisparityError,
    estimate_disparities,
    load_stops,
    simulate_stops,
    write_disparities,
)


def black_vs_white(stops: pd.DataFrame) -> pd.Series:
    result = estimate_disparities(stops, by=["race"], reference={"race": "white"})
    return result.effects.query("group == 'black'").iloc[0]


def test_planted_gap_is_covered_at_about_the_nominal_rate_and_raw_means_are_confounded() -> None:
    gap, covered, raw_gaps, estimates = -0.25, 0, [], []
    for seed in range(20):
        stops = simulate_stops(n_officers=40, encounters_per_officer=25, gap=gap, seed=seed)
        row = black_vs_white(stops)
        covered += row.ci_low <= gap <= row.ci_high
        estimates.append(row.estimate)
        means = stops.groupby("race").respect.mean()
        raw_gaps.append(means["black"] - means["white"])
    assert covered >= 16  # 95% intervals: P(fewer than 16 of 20) < 0.3%
    assert abs(np.mean(estimates) - gap) < 0.05
    assert np.mean(raw_gaps) < gap - 0.2  # harsher officers stop more Black civilians: raw means overstate the gap


def test_no_gap_gives_an_interval_around_zero() -> None:
    row = black_vs_white(simulate_stops(n_officers=40, encounters_per_officer=25, gap=0.0, seed=5))
    assert row.ci_low < 0 < row.ci_high and row.p_value > 0.05


def test_outputs_and_notes(tmp_path: Path) -> None:
    stops = simulate_stops(n_officers=30, encounters_per_officer=20, seed=2)
    stops.loc[stops.index[:4], "race"] = "asian"  # too few to estimate
    result = estimate_disparities(stops, reference={"race": "white", "gender": "female"})
    assert list(result.effects.columns) == list(EFFECT_COLUMNS)
    assert set(result.effects.group_variable) == {"race", "gender"}
    assert "asian" not in set(result.effects.group) and any("asian (4)" in note for note in result.notes)
    paths = write_disparities(result, tmp_path)
    assert pd.read_csv(paths["effects"]).shape[0] == len(result.effects)
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "officers" in paths["notes"].read_text()


def test_bad_inputs_are_explained(tmp_path: Path) -> None:
    stops = simulate_stops(n_officers=10, encounters_per_officer=15, seed=1)
    with pytest.raises(DisparityError, match="officer_id"):
        estimate_disparities(stops.drop(columns="officer_id"))
    with pytest.raises(DisparityError, match="reference group 'purple'"):
        estimate_disparities(stops, by=["race"], reference={"race": "purple"})
    duplicated = tmp_path / "stops.csv"
    duplicated.write_text("encounter_id,race\ne1,black\ne1,white\n")
    with pytest.raises(DisparityError, match="appears twice"):
        load_stops(duplicated)
    no_groups = tmp_path / "reasons.csv"
    no_groups.write_text("encounter_id,stop_reason\ne1,equipment\n")
    with pytest.raises(DisparityError, match="at least one of race"):
        load_stops(no_groups)
    good = tmp_path / "good.csv"
    good.write_text("Encounter_ID,Race,Stop_Reason\ne1, Black ,Equipment\n")
    assert load_stops(good).iloc[0].to_dict() == {"encounter_id": "e1", "race": "black", "stop_reason": "equipment"}
