"""Simulated departments for early-intervention research: officers whose language may or may not carry a planted
link to later complaints and uses of force, written as a real bwc store.

Each officer has a latent language level θ (corpus SDs of respect) and an unobserved propensity ζ for outcomes that
has nothing to do with language (assignment, area). Each officer-month has a Poisson number of encounters; in each,
three officer utterances with respect around θ, escalation and the five trained behaviours around officer levels of
their own (correlated with θ at −0.5 and 0.4), and a hostile act (threat, insult, profanity) less likely with θ.
Outcomes are Poisson per officer-month with rate

    base × exp(link × (−θ / officer_sd) + propensity × ζ)

so ``link = 0`` is a department where language says nothing about outcomes, and the threshold rule (prior outcomes)
has real signal through ζ either way. The store gets ``encounter_scores`` and ``utterance_scores`` rows exactly as
``bwc score`` writes them, and then the real end of a run (flags and ``officer_periods``).

Example
-------
>>> department = simulate_department(n_officers=30, n_months=12, link=0.8, seed=1)
>>> sorted(department.outcomes.columns), department.outcomes.kind.isin(KINDS).all()
(['date', 'kind', 'officer_id'], np.True_)
>>> write_department_store(department, Path("/tmp/sim-store"))       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bwc.store import ACT_COLUMNS, BEHAVIOUR_COLUMNS, Store

START = "2025-01-01"  # first month simulated
KINDS = ("complaint", "use_of_force", "injury")  # outcome kinds, with these shares
KIND_SHARES = (0.7, 0.2, 0.1)
UTTERANCES_PER_ENCOUNTER = 3
UTTERANCE_SD = 0.8  # respect of one utterance around its encounter's
SCORES_VERSION = "simulated-department-1"
LINES = {
    "polite": "Good evening sir, I stopped you because your tail light is out. Drive safe.",
    "neutral": "License and registration please.",
    "hostile": "Shut up and get out of the car or I will drag you out.",
}


@dataclass(frozen=True)
class Department:
    """One simulated department."""

    encounters: pd.DataFrame  # encounter_id, officer_id, recorded_at, respect, escalation, pj_*, hostile
    outcomes: pd.DataFrame  # officer_id, date, kind: what OUTCOMES.csv holds
    officers: pd.DataFrame  # officer_id, theta (language level), zeta (other propensity), unit
    link: float  # the planted link: log rate ratio per SD of worse language


def simulate_department(
    n_officers: int = 150,
    n_months: int = 30,
    link: float = 0.8,
    propensity: float = 0.5,
    base_rate: float = 0.06,
    encounters_per_month: float = 6.0,
    officer_sd: float = 0.35,
    encounter_sd: float = 0.5,
    n_units: int = 4,
    seed: int = 0,
) -> Department:
    """A department's scored encounters and recorded outcomes (see the module docstring for the model).

    Parameters
    ----------
    n_officers, n_months
        Officers and calendar months from :data:`START`.
    link
        Log rate ratio of outcomes per officer-SD of worse language; 0 = no link.
    propensity
        Log rate ratio per SD of the officer's language-free propensity.
    base_rate
        Outcomes per officer-month at θ = ζ = 0.
    encounters_per_month
        Mean (Poisson) encounters per officer-month.
    officer_sd, encounter_sd
        SD of officers' language levels, and of encounter respect around them.
    n_units
        Units the officers are spread over (the roster's peer groups).
    seed
        The same seed gives the same department.
    """
    rng = np.random.default_rng(seed)
    officers = np.array([f"B{1000 + number}" for number in range(n_officers)])
    theta = rng.normal(0.0, officer_sd, n_officers)
    zeta = rng.normal(0.0, 1.0, n_officers)
    # Escalation and the trained behaviours have officer levels of their own, only partly tied to θ, so the
    # indicators are related as real ones are, not copies of one number.
    standard = theta / officer_sd
    escalation_level = 0.25 + 0.06 * (-0.5 * standard + np.sqrt(0.75) * rng.normal(size=n_officers))
    behaviour_level = 0.3 + 1.0 * (0.4 * standard + np.sqrt(0.84) * rng.normal(size=n_officers))
    months = pd.date_range(START, periods=n_months + 1, freq="MS", tz="UTC")
    month_seconds = (months[1:] - months[:-1]).total_seconds().to_numpy()

    counts = rng.poisson(encounters_per_month, size=(n_officers, n_months))
    officer_index = np.repeat(np.repeat(np.arange(n_officers), n_months), counts.ravel())
    month_index = np.repeat(np.tile(np.arange(n_months), n_officers), counts.ravel())
    offsets = np.floor(rng.random(len(month_index)) * month_seconds[month_index])
    n = len(officer_index)
    level = theta[officer_index]
    encounters = pd.DataFrame(
        {
            "encounter_id": [f"sim-{number:07d}" for number in range(n)],
            "officer_id": officers[officer_index],
            "recorded_at": months[month_index] + pd.to_timedelta(offsets, unit="s"),
            "respect": rng.normal(level, encounter_sd),
            "escalation": np.clip(rng.normal(escalation_level[officer_index], 0.1), 0.0, 1.0),
            "hostile": rng.random(n) < _sigmoid(-3.5 - 2.0 * level / officer_sd),
        }
    )
    for name in BEHAVIOUR_COLUMNS:
        encounters[f"pj_{name}"] = rng.random(n) < _sigmoid(behaviour_level[officer_index])

    rate = base_rate * np.exp(link * (-theta / officer_sd) + propensity * zeta)
    outcome_counts = rng.poisson(np.repeat(rate[:, None], n_months, axis=1))
    outcome_officer = np.repeat(np.repeat(np.arange(n_officers), n_months), outcome_counts.ravel())
    outcome_month = np.repeat(np.tile(np.arange(n_months), n_officers), outcome_counts.ravel())
    outcome_days = np.floor(rng.random(len(outcome_month)) * month_seconds[outcome_month] / 86_400)
    outcomes = pd.DataFrame(
        {
            "officer_id": officers[outcome_officer],
            "date": (months[outcome_month] + pd.to_timedelta(outcome_days, unit="D")).date,
            "kind": rng.choice(KINDS, size=len(outcome_month), p=KIND_SHARES),
        }
    ).sort_values(["date", "officer_id"], kind="stable")
    roster = pd.DataFrame(
        {
            "officer_id": officers,
            "theta": theta,
            "zeta": zeta,
            "unit": [f"unit-{i % n_units + 1}" for i in range(n_officers)],
        }
    )
    return Department(encounters.sort_values("recorded_at").reset_index(drop=True), outcomes.reset_index(drop=True),
                      roster, link)  # fmt: skip


def write_department_store(department: Department, store_dir: Path, seed: int = 0) -> Path:
    """Write the department's encounters into a bwc store as ``bwc score`` would (encounter and utterance scores),
    then run the end of a run (flags and officer periods, no clips). Returns the store directory."""
    from bwc.config import BwcConfig
    from pipelines.flagging import flag_and_clip

    rng = np.random.default_rng(seed)
    store = Store(store_dir)
    encounter_rows, utterance_rows = [], []
    for row in department.encounters.itertuples():
        respects = rng.normal(row.respect, UTTERANCE_SD, UTTERANCES_PER_ENCOUNTER)
        respects += row.respect - respects.mean()  # the encounter's mean is its respect
        behaviours = {name: bool(getattr(row, f"pj_{name}")) for name in BEHAVIOUR_COLUMNS}
        for turn, value in enumerate(respects, start=1):
            hostile = bool(row.hostile) and turn == UTTERANCES_PER_ENCOUNTER
            text = LINES["hostile"] if hostile else LINES["polite"] if value > 0.3 else LINES["neutral"]
            acts = {f"act_{name}": False for name in ACT_COLUMNS}
            acts |= {"act_threat": hostile, "act_insult": hostile, "act_command": hostile or value <= 0.3}
            acts |= {
                "act_greeting": behaviours["greeting_introduction"],
                "act_formal_title": behaviours["formal_title"],
            }
            utterance_rows.append({"encounter_id": row.encounter_id, "turn": turn, "speaker": "officer",
                                   "role": "officer", "text": text, "respect": float(value), **acts,
                                   "model_version": SCORES_VERSION})  # fmt: skip
        encounter_rows.append(
            {
                "encounter_id": row.encounter_id,
                "officer_id": row.officer_id,
                "recorded_at": row.recorded_at.to_pydatetime(),
                "n_officer_utterances": UTTERANCES_PER_ENCOUNTER,
                "respect": float(row.respect),
                "escalation": float(row.escalation),
                "behaviours_present": sum(behaviours.values()),
                **{f"pj_{name}": value for name, value in behaviours.items()},
                "model_version": SCORES_VERSION,
            }
        )
    store.write_rows("encounter_scores", "part-simulated", encounter_rows)
    store.write_rows("utterance_scores", "part-simulated", utterance_rows)
    flag_and_clip(store.root, BwcConfig(), cut=False, run_id="simulated-department")
    return store.root


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


DISTRICTS = ("north", "south", "east", "west", "central")  # a unit patrols one district, mostly
STOP_REASONS = (("traffic", 0.6), ("equipment", 0.15), ("suspicious person", 0.12), ("call for service", 0.1),
                ("warrant", 0.03))  # fmt: skip
RACES = (("white", 0.45), ("black", 0.3), ("hispanic", 0.18), ("asian", 0.07))
OUTCOMES = (("warning", 0.5), ("citation", 0.35), ("arrest", 0.05), ("no action", 0.1))


def simulate_stop_data(department: Department, seed: int = 0, home_district: float = 0.85) -> pd.DataFrame:
    """Stop data for the department's encounters, as a records system would export it (``--stops``): district,
    stop reason, civilian race, gender and age group, outcome. An officer's stops are in their unit's district
    ``home_district`` of the time, so districts have the few-officers-per-cell structure real beats have."""
    rng = np.random.default_rng(seed)
    unit = department.officers.set_index("officer_id")["unit"]
    units = sorted(set(unit))
    home = {name: DISTRICTS[index % len(DISTRICTS)] for index, name in enumerate(units)}
    n = len(department.encounters)
    officer_home = department.encounters["officer_id"].map(unit).map(home).to_numpy()
    elsewhere = rng.choice(DISTRICTS, size=n)
    district = np.where(rng.random(n) < home_district, officer_home, elsewhere)

    def draw(choices: tuple[tuple[str, float], ...]) -> np.ndarray:
        names, weights = zip(*choices, strict=True)
        return rng.choice(names, size=n, p=np.array(weights) / sum(weights))

    return pd.DataFrame(
        {
            "encounter_id": department.encounters["encounter_id"],
            "district": district,
            "stop_reason": draw(STOP_REASONS),
            "race": draw(RACES),
            "gender": draw((("male", 0.68), ("female", 0.31), ("nonbinary", 0.01))),
            "age_group": draw((("under 25", 0.3), ("25-44", 0.45), ("45-64", 0.2), ("65+", 0.05))),
            "outcome": draw(OUTCOMES),
        }
    )
