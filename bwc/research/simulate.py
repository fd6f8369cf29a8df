"""Simulated staggered-training panels with a planted effect, to check that the training-effect estimator recovers it.

Officers are trained in a few cohorts (training months spread over the middle of the panel); some are never trained.
Each officer-month has a Poisson number of encounters at uniform random times. Encounter respect is, in corpus
standard-deviation units,

    respect = officer effect + month effect (a department-wide drift plus noise) + planted effect + noise (SD 1)

where the planted effect is 0 before the officer's training date and, from that date on, ``effect`` (constant), or a
ramp up to ``effect`` over the first periods after training (``dynamic``), times a cohort multiplier (``heterogeneous``:
earlier cohorts gain more). Relative periods are counted exactly as :func:`bwc.research.training.relative_periods`
counts them (whole 30.44-day months since the training date), so the planted effect per relative period is what the
event study estimates.

``true_att``, the third value returned, is the mean planted effect over all treated encounters of the panel (those on or
after their officer's training date): the encounter-weighted average effect on the treated that the two-stage
estimator's overall coefficient targets, conditional on the panel's design. With a constant effect it equals
``effect``. Each encounter's planted effect is in the ``true_effect`` column, so tests can compute the truth per
relative period or per cohort; the estimator never reads it.

Example
-------
>>> encounters, roster, true_att = simulate_panel(n_officers=20, n_months=12, effect=0.5, seed=3)
>>> sorted(roster.columns)
['officer_id', 'program', 'trained_on']
>>> true_att
0.5
>>> bool(encounters.officer_id.nunique() == 20 and len(roster) < 20)
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bwc.research.training import relative_periods

PROGRAM = "procedural-justice"  # roster program name of the simulated training
START = "2024-01-01"  # first calendar month of the panel
DYNAMIC_PERIODS = 6  # dynamic: the effect ramps up linearly over this many months after training, then stays
COHORT_MULTIPLIERS = (1.5, 0.5)  # heterogeneous: first cohort's and last cohort's share of ``effect`` (linear between)
FIRST_TRAINING, LAST_TRAINING = 0.25, 0.75  # cohorts are trained between these fractions of the panel's months
BINARY_BASE = 0.25  # binary outcome: probability before training, before officer differences
BINARY_OFFICER_SPREAD = 0.10  # binary outcome: officer differences, uniform in ± this
SECONDS_PER_DAY = 86_400


def simulate_panel(
    n_officers: int = 80,
    n_months: int = 24,
    effect: float = 0.5,
    share_never_trained: float = 0.3,
    seed: int = 0,
    dynamic: bool = False,
    heterogeneous: bool = False,
    n_cohorts: int = 4,
    encounters_per_month: float = 4.0,
    officer_sd: float = 0.5,
    month_sd: float = 0.2,
    trend: float = 0.02,
    noise_sd: float = 1.0,
    binary_effect: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """A staggered-training panel: encounters, the training roster and the true average effect on the treated.

    Parameters
    ----------
    n_officers, n_months
        Panel size: officers and calendar months (from :data:`START`).
    effect
        The planted effect on ``respect`` in outcome SD units (its plateau when ``dynamic``).
    share_never_trained
        Share of officers never trained (the never-treated controls); the others are spread evenly over the cohorts.
    seed
        Random seed: the same seed gives the same panel.
    dynamic
        The effect ramps up over :data:`DYNAMIC_PERIODS` months after training instead of starting in full.
    heterogeneous
        Cohorts differ: the effect is multiplied by :data:`COHORT_MULTIPLIERS`, from the first cohort to the last.
    n_cohorts
        Number of distinct training months.
    encounters_per_month
        Mean (Poisson) encounters per officer-month.
    officer_sd, month_sd, trend, noise_sd
        Officer effect SD, month effect SD, department-wide drift per month, and encounter noise SD.
    binary_effect
        When given, also an ``all_five`` 0/1 outcome whose probability rises by this much from the training date.

    Returns
    -------
    encounters
        ``encounter_id, officer_id, recorded_at`` (UTC), ``respect``, ``true_effect`` (the planted effect on respect)
        and ``all_five`` when ``binary_effect`` is given.
    roster
        ``officer_id, program, trained_on`` (a date) for the trained officers.
    true_att
        Mean ``true_effect`` over treated encounters (see the module docstring).
    """
    if not 0 <= share_never_trained < 1:
        raise ValueError("share_never_trained must be in [0, 1)")
    if n_months < 4 or n_officers < 2 or n_cohorts < 1:
        raise ValueError("a panel needs at least 4 months, 2 officers and 1 cohort")
    rng = np.random.default_rng(seed)
    officers = np.array([f"O{number:04d}" for number in range(n_officers)])
    months = pd.date_range(START, periods=n_months + 1, freq="MS", tz="UTC")

    # Cohorts: training months spread over the middle half, a random day within the month for each officer.
    n_never = round(share_never_trained * n_officers)
    trained = rng.permutation(n_officers)[: n_officers - n_never]
    cohort_months = np.unique(np.round(np.linspace(FIRST_TRAINING, LAST_TRAINING, n_cohorts) * n_months).astype(int))
    cohort_of = np.full(n_officers, -1)
    cohort_of[trained] = np.arange(len(trained)) % len(cohort_months)
    trained_on = pd.Series(pd.NaT, index=officers, dtype="datetime64[us, UTC]")
    for officer in trained:
        start = months[cohort_months[cohort_of[officer]]]
        trained_on.iloc[officer] = start + pd.Timedelta(days=int(rng.integers(0, 28)))

    # Encounters: Poisson per officer-month, uniform times within the month.
    counts = rng.poisson(encounters_per_month, size=(n_officers, n_months))
    officer_index = np.repeat(np.repeat(np.arange(n_officers), n_months), counts.ravel())
    month_index = np.repeat(np.tile(np.arange(n_months), n_officers), counts.ravel())
    month_seconds = ((months[1:] - months[:-1]).total_seconds()).to_numpy()
    offsets = rng.random(len(month_index)) * month_seconds[month_index]
    recorded_at = pd.Series(months[month_index] + pd.to_timedelta(np.floor(offsets), unit="s"))

    officer_effect = rng.normal(0.0, officer_sd, n_officers)
    month_effect = trend * np.arange(n_months) + rng.normal(0.0, month_sd, n_months)
    training = pd.Series(trained_on.to_numpy()[officer_index])
    relative = relative_periods(recorded_at, training, "month")
    treated = (relative >= 0).to_numpy()
    planted = np.where(treated, effect, 0.0)
    if dynamic:
        ramp = np.minimum(relative.fillna(-1).to_numpy() + 1, DYNAMIC_PERIODS) / DYNAMIC_PERIODS
        planted = planted * np.clip(ramp, 0.0, 1.0)
    if heterogeneous and len(cohort_months) > 1:
        first, last = COHORT_MULTIPLIERS
        multipliers = np.linspace(first, last, len(cohort_months))
        planted = planted * np.where(cohort_of[officer_index] >= 0, multipliers[cohort_of[officer_index]], 0.0)
    noise = rng.normal(0.0, noise_sd, len(month_index))
    encounters = pd.DataFrame(
        {
            "encounter_id": [f"E{number:07d}" for number in range(len(month_index))],
            "officer_id": officers[officer_index],
            "recorded_at": recorded_at,
            "respect": officer_effect[officer_index] + month_effect[month_index] + planted + noise,
            "true_effect": planted,
        }
    )
    if binary_effect is not None:
        spread = rng.uniform(-BINARY_OFFICER_SPREAD, BINARY_OFFICER_SPREAD, n_officers)[officer_index]
        probability = np.clip(BINARY_BASE + spread + binary_effect * treated, 0.0, 1.0)
        encounters["all_five"] = (rng.random(len(month_index)) < probability).astype(int)
    encounters = encounters.sort_values("recorded_at", kind="stable").reset_index(drop=True)

    roster = pd.DataFrame(
        {
            "officer_id": officers[np.sort(trained)],
            "program": PROGRAM,
            "trained_on": trained_on.iloc[np.sort(trained)].dt.date.to_numpy(),
        }
    )
    true_att = float(np.mean(planted[treated])) if treated.any() else 0.0
    return encounters, roster, true_att
