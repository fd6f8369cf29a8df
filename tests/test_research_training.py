"""Training effects: the two-stage DiD recovers planted effects (constant, null, dynamic, heterogeneous by cohort, where
naive two-way fixed effects fails), outputs are complete and readable, inputs load from a real store and from files,
and bad inputs are refused with messages that say what to fix. Real pyfixest throughout, no mocks."""

from __future__ import annotations

import base64
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest

from bwc.demo import load_scripts
from bwc.research.inputs import load_encounters, load_roster
from bwc.research.report import write_outputs
from bwc.research.simulate import simulate_panel
from bwc.research.training import (
    EFFECT_COLUMNS,
    EVENT_COLUMNS,
    REFERENCE_PERIOD,
    TrainingEffect,
    TrainingEffectError,
    estimate_training_effect,
    relative_periods,
)
from bwc.store import Store
from scoring.stage import ScoringStage
from scoring.table import read_transcripts

SEED = 5  # one fixed panel draw for the single-panel checks (deterministic; see benchmarks/ for coverage rates)
EFFECT = 0.5  # planted effect, respect SD units
Panel = tuple[pd.DataFrame, pd.DataFrame, float]  # encounters, roster, true ATT


@pytest.fixture(scope="module")
def planted() -> Panel:
    return simulate_panel(seed=SEED, effect=EFFECT, binary_effect=0.1)


@pytest.fixture(scope="module")
def result(planted: Panel) -> TrainingEffect:
    encounters, roster, _ = planted
    return estimate_training_effect(encounters, roster, ["respect", "all_five"])


def training_dates(encounters: pd.DataFrame, roster: pd.DataFrame) -> pd.Series:
    return encounters["officer_id"].map(pd.to_datetime(roster.set_index("officer_id")["trained_on"], utc=True))


def test_planted_effect_is_covered_and_excludes_zero(result: TrainingEffect, planted: Panel, tmp_path: Path) -> None:
    _, _, truth = planted
    paths = write_outputs(result, tmp_path, "planted", "simulated panel")
    effects = pd.read_csv(paths["effects"]).set_index("outcome")
    respect = effects.loc["respect"]
    assert truth == EFFECT
    assert respect.ci_low < truth < respect.ci_high and respect.ci_low > 0
    assert abs(respect.estimate - truth) < 2.5 * respect.std_error
    binary = effects.loc["all_five"]  # a 0/1 outcome: a linear probability model, +10 points planted
    assert binary.ci_low < 0.1 < binary.ci_high and binary.ci_low > 0
    assert respect.n_officers == 80 and respect.n_encounters == len(planted[0])
    assert "did2s" in respect.method


def test_no_effect_gives_an_estimate_near_zero() -> None:
    encounters, roster, truth = simulate_panel(seed=SEED, effect=0.0)
    row = estimate_training_effect(encounters, roster, ["respect"]).effects.iloc[0]
    assert truth == 0.0
    assert row.ci_low < 0 < row.ci_high
    assert abs(row.estimate) < 1.5 * row.std_error


def test_event_study_shows_no_pretrend_and_post_periods_near_the_truth(result: TrainingEffect) -> None:
    study = result.event_study[result.event_study.outcome == "respect"].set_index("relative_period")
    assert list(study.index) == list(range(-6, 7))
    reference = study.loc[REFERENCE_PERIOD]
    assert reference.estimate == 0 and np.isnan(reference.ci_low) and np.isnan(reference.ci_high)
    before = study.loc[-6:-2]
    assert ((before.ci_low < 0) & (before.ci_high > 0)).all()
    pretrend = result.pretrend.set_index("outcome").loc["respect"]
    assert pretrend.df == 5 and pretrend.p_value > 0.05
    after = study.loc[0:6]
    assert ((after.ci_low < EFFECT) & (after.ci_high > EFFECT)).all()
    assert abs(after.estimate.mean() - EFFECT) < 0.1


def test_dynamic_effects_are_recovered_period_by_period() -> None:
    encounters, roster, truth = simulate_panel(seed=SEED, effect=EFFECT, dynamic=True)
    study = estimate_training_effect(encounters, roster, ["respect"]).event_study.set_index("relative_period")
    relative = relative_periods(encounters["recorded_at"], training_dates(encounters, roster), "month")
    planted = encounters.groupby(relative)["true_effect"].mean()  # the ramp: EFFECT/6, 2*EFFECT/6, ... EFFECT
    after = study.loc[0:6]
    assert planted.loc[0] == pytest.approx(EFFECT / 6) and planted.loc[6] == pytest.approx(EFFECT)
    assert ((after.ci_low < planted.loc[0:6]) & (planted.loc[0:6] < after.ci_high)).all()
    assert after.estimate.loc[5:6].mean() - after.estimate.loc[0:1].mean() > 0.2  # it grows, as planted
    assert truth < EFFECT  # the overall ATT averages the ramp with the plateau


def test_heterogeneous_growing_effects_bias_naive_twfe_but_not_two_stage() -> None:
    """Earlier cohorts gain more and effects grow with time: TWFE uses the already trained as controls and is off."""
    encounters, roster, truth = simulate_panel(
        seed=SEED, effect=EFFECT, dynamic=True, heterogeneous=True, share_never_trained=0.1
    )
    row = estimate_training_effect(encounters, roster, ["respect"]).effects.iloc[0]
    naive = encounters.assign(
        post=(encounters["recorded_at"].dt.floor("D") >= training_dates(encounters, roster)).astype(int),
        month=encounters["recorded_at"].dt.strftime("%Y-%m"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        twfe = pf.feols("respect ~ post | officer_id + month", naive, vcov={"CRV1": "officer_id"})
    twfe_low, twfe_high = twfe.confint().loc["post"]
    assert row.ci_low < truth < row.ci_high and abs(row.estimate - truth) < 0.05
    assert twfe.coef()["post"] < truth - 0.15 and not twfe_low < truth < twfe_high


class Page(HTMLParser):
    """Images, table cells and text of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.text: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag in ("link", "script") and (values.get("href") or values.get("src")):
            self.external.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_outputs_have_exact_columns_and_a_self_contained_report(result: TrainingEffect, tmp_path: Path) -> None:
    paths = write_outputs(result, tmp_path / "out", "PJ training <2024>", "simulated & checked")
    assert list(pd.read_csv(paths["effects"]).columns) == list(EFFECT_COLUMNS)
    study = pd.read_csv(paths["event_study"])
    assert list(study.columns) == list(EVENT_COLUMNS) and len(study) == 2 * 13
    for outcome in ("respect", "all_five"):
        assert paths[f"plot:{outcome}"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = paths["report"].read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    page.close()
    assert len(page.images) == 2 and not page.external
    for source in page.images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    text = " ".join(page.text)
    for row in result.effects.itertuples():
        assert f"{row.estimate:.3f}" in text and f"{row.ci_low:.3f} to {row.ci_high:.3f}" in text
    assert "PJ training <2024>" in text and "<2024>" not in html  # escaped
    assert "did2s" in text and "parallel trends" in text and "clustered by officer" in text


def test_bad_inputs_are_refused_with_clear_messages(planted: Panel, tmp_path: Path) -> None:
    encounters, roster, _ = planted
    twice = pd.concat([roster, roster.iloc[[3]].assign(trained_on=pd.Timestamp("2024-09-01").date())])
    (tmp_path / "roster.csv").write_text(twice.to_csv(index=False))
    officer = roster.officer_id.iloc[3]
    with pytest.raises(ValueError, match=f"officer '{officer}' is listed more than once in program"):
        load_roster(tmp_path / "roster.csv")
    roster.drop(columns="trained_on").to_csv(tmp_path / "no_dates.csv", index=False)
    with pytest.raises(ValueError, match=r"no_dates\.csv: missing column.*trained_on"):
        load_roster(tmp_path / "no_dates.csv")
    encounters.drop(columns="recorded_at").to_csv(tmp_path / "untimed.csv", index=False)
    with pytest.raises(ValueError, match=r"untimed\.csv: missing column.*recorded_at"):
        load_encounters(encounters_file=tmp_path / "untimed.csv")
    with pytest.raises(TrainingEffectError, match=r"outcome column\(s\) \['courtesy'\] not in the encounters"):
        estimate_training_effect(encounters, roster, ["courtesy"])

    # Everyone trained on the same day and nobody left untrained: nothing shows what would have happened otherwise.
    everyone = pd.DataFrame({"officer_id": encounters.officer_id.unique(), "trained_on": pd.Timestamp("2025-01-10")})
    with pytest.raises(TrainingEffectError, match="no control group"):
        estimate_training_effect(encounters, everyone, ["respect"])
    with pytest.raises(TrainingEffectError, match="no officer of the roster"):
        estimate_training_effect(encounters, roster.assign(officer_id="X" + roster.officer_id), ["respect"])
    two = pd.concat([roster, roster.assign(program="de-escalation")])
    with pytest.raises(TrainingEffectError, match=r"several programs.*choose one"):
        estimate_training_effect(encounters, two, ["respect"])
    with pytest.raises(TrainingEffectError, match="program 'other' is not in the roster"):
        estimate_training_effect(encounters, two, ["respect"], program="other")


def test_left_out_encounters_are_noted(planted: Panel) -> None:
    """An officer trained before the data starts has no untrained encounter for its fixed effect: left out, noted;
    so are the rows that loading dropped."""
    encounters, roster, _ = planted
    early = roster.assign(trained_on=roster.trained_on.where(roster.index > 0, pd.Timestamp("2023-06-01").date()))
    loaded = encounters.copy()
    loaded.attrs.update(source="stops.csv", dropped=3, dropped_detail="3 without officer_id")  # as load_encounters
    result = estimate_training_effect(loaded, early, ["respect"])
    left_out = (encounters.officer_id == roster.officer_id.iloc[0]).sum()
    assert result.effects.iloc[0].n_encounters == len(encounters) - left_out
    assert any(f"respect: {left_out} encounters left out" in note for note in result.notes)
    assert "3 rows of stops.csv left out when loading (3 without officer_id)" in result.notes


def test_encounters_load_from_a_scored_store_and_from_a_csv(tmp_path: Path) -> None:
    scripts = load_scripts()
    ids = sorted(scripts.encounter_id.unique())
    officers = {encounter: f"B{i % 2 + 1}" for i, encounter in enumerate(ids)}
    times = {encounter: f"2026-03-0{i + 1}T22:15:00-05:00" for i, encounter in enumerate(ids)}
    table = scripts.assign(officer_id=scripts.encounter_id.map(officers), recorded_at=scripts.encounter_id.map(times))
    table.to_csv(tmp_path / "stops.csv", index=False)
    store = Store(tmp_path / "store")
    stage = ScoringStage.load()
    store.write_scores("stops", stage(read_transcripts(tmp_path / "stops.csv")))
    table[table.encounter_id == ids[0]].to_csv(tmp_path / "again.csv", index=False)
    store.write_scores("again", stage(read_transcripts(tmp_path / "again.csv")))  # the same encounter, scored again

    loaded = load_encounters(store=tmp_path / "store")
    assert sorted(loaded.encounter_id) == ids and loaded.attrs["dropped"] == 0
    assert str(loaded.recorded_at.dt.tz) == "UTC"
    first = loaded.set_index("encounter_id").loc[ids[0]]
    assert first.officer_id == "B1" and first.recorded_at == pd.Timestamp("2026-03-02T03:15:00Z")
    assert (loaded.all_five == (loaded.behaviours_present == 5).astype(int)).all()
    assert loaded.respect.notna().all() and loaded.pj_greeting_introduction.dtype == "boolean"

    exported = loaded.drop(columns="all_five")
    exported.loc[0, "officer_id"] = None
    exported["recorded_at"] = exported.recorded_at.dt.tz_localize(None).astype(str)  # no offset: taken as UTC
    exported.loc[1, "recorded_at"] = "not a time"
    exported.loc[2, "officer_id"] = "007"  # a badge number with leading zeros
    exported.to_csv(tmp_path / "encounters.csv", index=False)
    from_csv = load_encounters(encounters_file=tmp_path / "encounters.csv")
    assert len(from_csv) == len(ids) - 2 and from_csv.attrs["dropped"] == 2
    assert from_csv.attrs["dropped_detail"] == "1 without officer_id, 1 without a readable recorded_at"
    merged = from_csv.merge(loaded, on="encounter_id", suffixes=("", "_store"))
    assert (merged.recorded_at == merged.recorded_at_store).all() and (merged.all_five == merged.all_five_store).all()
    assert list(merged.officer_id) == ["007", *merged.officer_id_store[1:]]  # "007" stays "007"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty/encounter_scores: no scored encounters in this store"):
        load_encounters(store=tmp_path / "empty")
    with pytest.raises(ValueError, match="nowhere: no such store"):
        load_encounters(store=tmp_path / "nowhere")
