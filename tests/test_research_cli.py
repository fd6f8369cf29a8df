"""`bwc research` end to end: the commands a researcher runs, on a simulated panel with a planted effect, simulated
stop data, and a scored store; the HTML report opened in Debian's Chromium to see that its plots show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bwc.research.disparities import simulate_stops
from bwc.research.simulate import simulate_panel
from tests.test_review_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.slow


def bwc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bwc.cli", *args], capture_output=True, text=True, timeout=600)


def test_training_effect_covers_a_planted_effect_and_its_report_shows_the_plots(tmp_path: Path) -> None:
    encounters, roster, truth = simulate_panel(n_officers=80, n_months=24, effect=0.4, seed=11)
    encounters.drop(columns=["true_effect"]).to_csv(tmp_path / "encounters.csv", index=False)
    roster.to_csv(tmp_path / "roster.csv", index=False)
    out = tmp_path / "effect"
    completed = bwc("research", "training-effect", "--roster", str(tmp_path / "roster.csv"), "--encounters",
                    str(tmp_path / "encounters.csv"), "--outcome", "respect", "--out", str(out))  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    effects = pd.read_csv(out / "effects.csv")
    assert list(effects.columns) == [
        "outcome", "estimate", "std_error", "ci_low", "ci_high", "n_officers", "n_encounters", "method",
    ]  # fmt: skip
    row = effects.set_index("outcome").loc["respect"]
    assert row.ci_low <= truth <= row.ci_high and row.ci_low > 0
    study = pd.read_csv(out / "event_study.csv")
    assert list(study.columns) == ["outcome", "relative_period", "estimate", "ci_low", "ci_high"]
    before = study[(study.relative_period < -1) & study.estimate.notna()]
    assert len(before) >= 3
    assert ((before.ci_low <= 0) & (before.ci_high >= 0)).mean() >= 0.8  # no pre-trend (95% intervals, a few periods)
    after = study[study.relative_period >= 0]
    assert ((after.ci_low <= truth) & (truth <= after.ci_high)).mean() >= 0.8

    if not Path(CHROMIUM).exists():
        pytest.skip(f"opening the report needs Debian's chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto((out / "report.html").as_uri())
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
        text = page.inner_text("body")
        browser.close()
    assert images and all(complete and width > 200 for complete, width, _ in images)
    assert f"{row.estimate:.2f}" in text or f"{row.estimate:+.2f}" in text


def test_disparities_command_joins_stop_data_and_recovers_a_gap(tmp_path: Path) -> None:
    stops = simulate_stops(n_officers=40, encounters_per_officer=25, gap=-0.3, seed=4)
    stops[["encounter_id", "officer_id", "recorded_at", "respect"]].to_csv(tmp_path / "encounters.csv", index=False)
    stops[["encounter_id", "race", "gender", "stop_reason"]].to_csv(tmp_path / "stops.csv", index=False)
    out = tmp_path / "disparities"
    completed = bwc("research", "disparities", "--encounters", str(tmp_path / "encounters.csv"), "--stops",
                    str(tmp_path / "stops.csv"), "--reference", "race=white", "--out", str(out))  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    effects = pd.read_csv(out / "disparities.csv")
    black = effects[(effects.group_variable == "race") & (effects.group == "black")].iloc[0]
    assert black.reference == "white" and black.ci_low < -0.3 < black.ci_high
    assert (out / "disparities.png").stat().st_size > 5_000
    missing = bwc("research", "disparities", "--store", str(tmp_path), "--encounters", str(tmp_path / "encounters.csv"),
                  "--stops", str(tmp_path / "stops.csv"), "--out", str(out))  # fmt: skip
    assert missing.returncode == 2 and "exactly one of --store and --encounters" in missing.stderr


def test_export_command_on_a_scored_store(tmp_path: Path) -> None:
    table = tmp_path / "stops.csv"
    table.write_text(
        "encounter_id,turn,role,text,officer_id,recorded_at\n"
        's1,1,officer,"Good evening, Mr. Lopez. I\'m Officer Daniels.",B4711,2026-05-01T20:00:00Z\n'
        's1,2,civilian,"My number is 510-555-0199.",B4711,2026-05-01T20:00:00Z\n'
        's2,1,officer,"License and registration. Now.",B4712,2026-05-02T21:00:00Z\n'
    )
    store = tmp_path / "store"
    scored = bwc("score", str(table), "--store", str(store))
    assert scored.returncode == 0, scored.stderr[-3000:]
    out = tmp_path / "export"
    completed = bwc("research", "export", "--store", str(store), "--out", str(out))
    assert completed.returncode == 0, completed.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest
    everything = b"".join(path.read_bytes() for path in out.rglob("*") if path.is_file())
    for secret in (b"B4711", b"Lopez", b"Daniels", b"510-555-0199"):
        assert secret not in everything, secret
    again = bwc("research", "export", "--store", str(store), "--out", str(out))
    assert again.returncode == 1 and "error:" in again.stderr
