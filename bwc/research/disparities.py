"""Disparities: is officer respect different for different groups of community members, once the kind of stop and
the time are held equal and each officer is compared with themselves?

Voigt et al. (2017) found officers' language less respectful towards Black than white community members in Oakland
stops, with the stop's severity, location and outcome controlled. This module fits the same kind of model to a
department's own encounters: a linear mixed model (statsmodels ``MixedLM``) of encounter respect on the civilian
group, with the stop reason, the time of day and the month as fixed effects and a random intercept per officer. Each
officer's share of encounters with each group is a covariate too (correlated random effects, Mundlak 1978), so that a
group stopped more often by harsher officers does not look treated worse by everyone: the group estimate compares
encounters of the same officer. Estimates are
differences from a reference group in respect units (corpus standard deviations), with 95% Wald intervals.

Example
-------
>>> stops = simulate_stops(n_officers=40, encounters_per_officer=30, gap=-0.3, seed=1)
>>> result = estimate_disparities(stops, by=["race"], reference={"race": "white"})
>>> row = result.effects.query("group == 'black'").iloc[0]
>>> bool(row.ci_low < -0.3 < row.ci_high)
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from bwc.records import TIMES_OF_DAY

GROUP_COLUMNS = ("race", "gender", "age_group")  # civilian attributes in the stop data
STOP_COLUMNS = ("encounter_id", *GROUP_COLUMNS, "stop_reason", "outcome")  # what a stop-data file may hold
CONTROL_TERMS = ("C(stop_reason)", "C(time_of_day)", "C(month)")  # fixed effects held equal across groups
MIN_PER_GROUP = 10  # encounters a group needs to be estimated at all (smaller groups are reported, not estimated)
METHOD = (
    "linear mixed model (statsmodels MixedLM, REML) with correlated random effects: respect ~ group + officer's "
    "group shares + stop reason + time of day + month + (1 | officer)"
)
EFFECT_COLUMNS = (
    "group_variable", "group", "reference", "estimate", "std_error", "ci_low", "ci_high", "p_value",
    "n_encounters", "n_officers", "method",
)  # fmt: skip
MEAN_COLUMNS = ("group_variable", "group", "mean_respect", "ci_low", "ci_high", "n_encounters")


class DisparityError(ValueError):
    """The data cannot answer the question as asked; the message says why."""


@dataclass(frozen=True)
class Disparities:
    """Estimated differences in officer respect between civilian groups."""

    effects: pd.DataFrame  # EFFECT_COLUMNS: one row per non-reference group, adjusted difference from the reference
    raw_means: pd.DataFrame  # MEAN_COLUMNS: unadjusted mean respect per group, for comparison
    n_encounters: int  # encounters used (respect, officer and group known)
    n_officers: int  # officers among them
    notes: tuple[str, ...] = field(default_factory=tuple)  # what was dropped or could not be estimated


def load_stops(path: Path) -> pd.DataFrame:
    """Stop data (CSV or Parquet) keyed by ``encounter_id``: civilian race, gender, age group, stop reason, outcome."""
    table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, dtype=str)
    table.columns = [str(column).strip().lower() for column in table.columns]
    if "encounter_id" not in table.columns:
        raise DisparityError(f"{path}: stop data needs an encounter_id column to join the encounters")
    present = [column for column in GROUP_COLUMNS if column in table.columns]
    if not present:
        raise DisparityError(f"{path}: stop data needs at least one of {', '.join(GROUP_COLUMNS)}")
    duplicated = table["encounter_id"].duplicated()
    if duplicated.any():
        raise DisparityError(f"{path}: encounter_id {table.loc[duplicated, 'encounter_id'].iloc[0]!r} appears twice")
    for column in table.columns:
        if column != "encounter_id":
            table[column] = table[column].astype("string").str.strip().str.lower()
    table["encounter_id"] = table["encounter_id"].astype(str)
    return table


def estimate_disparities(
    data: pd.DataFrame,
    by: list[str] | None = None,
    reference: dict[str, str] | None = None,
    outcome: str = "respect",
) -> Disparities:
    """Adjusted differences in ``outcome`` between civilian groups, one model per group variable.

    Parameters
    ----------
    data
        Encounters joined with stop data: ``officer_id, recorded_at, <outcome>``, the group columns, and
        ``stop_reason`` when known (otherwise that control is left out, and a note says so).
    by
        Group variables to compare (default: those of :data:`GROUP_COLUMNS` present).
    reference
        Reference group per variable (default: the most frequent group).
    outcome
        The encounter column compared (default: mean officer respect).
    """
    if outcome not in data.columns:
        raise DisparityError(f"no {outcome!r} column in the encounters")
    if "officer_id" not in data.columns:
        raise DisparityError("the encounters need officer_id (officers are the random effect)")
    by = by or [column for column in GROUP_COLUMNS if column in data.columns]
    missing = [column for column in by if column not in data.columns]
    if not by or missing:
        raise DisparityError(f"no group column {missing or list(GROUP_COLUMNS)} in the joined stop data")
    frame = _with_controls(data)
    notes: list[str] = []
    controls = [term for term in CONTROL_TERMS if frame[term[2:-1]].nunique() > 1]
    if "stop_reason" not in data.columns:
        notes.append("no stop_reason in the stop data: not controlled for")
    effects, means = [], []
    used = frame.dropna(subset=[outcome, "officer_id"])
    for variable in by:
        sample = used.dropna(subset=[variable])
        counts = sample[variable].value_counts()
        small = counts[counts < MIN_PER_GROUP]
        if len(small):
            notes.append(
                f"{variable}: {', '.join(f'{g} ({n})' for g, n in small.items())} below {MIN_PER_GROUP} encounters, "
                "left out of the model"
            )
            sample = sample[~sample[variable].isin(small.index)]
        if sample[variable].nunique() < 2:
            notes.append(f"{variable}: fewer than two groups with enough encounters: not estimated")
            continue
        base = (reference or {}).get(variable) or str(sample[variable].value_counts().index[0])
        if base not in set(sample[variable]):
            raise DisparityError(f"reference group {base!r} of {variable} is not in the data")
        effects.append(_fit(sample, variable, base, outcome, controls))
        means.append(_raw_means(sample, variable, outcome))
    if not effects:
        raise DisparityError("no group variable had two groups with enough encounters; " + "; ".join(notes))
    return Disparities(
        effects=pd.concat(effects, ignore_index=True)[list(EFFECT_COLUMNS)],
        raw_means=pd.concat(means, ignore_index=True)[list(MEAN_COLUMNS)],
        n_encounters=len(used),
        n_officers=used["officer_id"].nunique(),
        notes=tuple(notes),
    )


def _with_controls(data: pd.DataFrame) -> pd.DataFrame:
    frame = data.copy()
    recorded = pd.to_datetime(frame["recorded_at"], utc=True, errors="coerce") if "recorded_at" in frame else None
    if recorded is not None and recorded.notna().any():
        hours = recorded.dt.hour
        frame["time_of_day"] = pd.cut(
            hours, [start for start, _, _ in TIMES_OF_DAY] + [24], right=False, labels=[n for *_, n in TIMES_OF_DAY]
        ).astype("string")
        frame["month"] = recorded.dt.strftime("%Y-%m")
    else:
        frame["time_of_day"] = frame["month"] = "unknown"
    frame["stop_reason"] = frame["stop_reason"].fillna("unknown") if "stop_reason" in frame else "unknown"
    frame["time_of_day"] = frame["time_of_day"].fillna("unknown")
    frame["month"] = frame["month"].fillna("unknown")
    frame["officer_id"] = frame["officer_id"].astype("string")
    return frame


def _fit(sample: pd.DataFrame, variable: str, base: str, outcome: str, controls: list[str]) -> pd.DataFrame:
    term = f"C({variable}, Treatment(reference={base!r}))"
    # Correlated random effects (Mundlak 1978): each officer's share of encounters with each group enters as a
    # covariate. Officers are not assigned at random: if harsher officers stop one group more often, a plain random
    # intercept (assumed independent of the group) leaks the officers' harshness into the group's estimate. With
    # the shares in the model the group estimate is the within-officer comparison, as with officer fixed effects,
    # while the officer variance stays a random effect.
    sample = sample.copy()
    shares = []
    for index, group in enumerate(sorted(set(sample[variable]) - {base})):
        share = f"officer_share_{index}"
        sample[share] = (sample[variable] == group).groupby(sample["officer_id"]).transform("mean")
        shares.append(share)
    formula = " + ".join([f"{outcome} ~ {term}", *shares, *controls])
    model = smf.mixedlm(formula, sample, groups=sample["officer_id"])
    with warnings.catch_warnings():
        # statsmodels warns when the officer variance sits on its boundary (no officer differences): the fixed
        # effects and their intervals are still valid then, and the note in the result says so.
        warnings.simplefilter("ignore")
        try:
            fitted = model.fit(reml=True)
        except (np.linalg.LinAlgError, ValueError):
            fitted = model.fit(reml=True, method="powell")  # derivative-free: slower, but survives flat likelihoods
    intervals = fitted.conf_int(alpha=0.05)
    rows = []
    for name in fitted.params.index:
        if not name.startswith(term + "[T."):
            continue
        group = name[len(term) + 3 : -1]
        in_group = sample[sample[variable] == group]
        rows.append(
            {
                "group_variable": variable,
                "group": group,
                "reference": base,
                "estimate": float(fitted.params[name]),
                "std_error": float(fitted.bse[name]),
                "ci_low": float(intervals.loc[name, 0]),
                "ci_high": float(intervals.loc[name, 1]),
                "p_value": float(fitted.pvalues[name]),
                "n_encounters": len(in_group),
                "n_officers": in_group["officer_id"].nunique(),
                "method": METHOD
                if len(controls) == len(CONTROL_TERMS)
                else f"{METHOD} (controls: {', '.join(controls) or 'none'})",
            }
        )
    return pd.DataFrame(rows)


def _raw_means(sample: pd.DataFrame, variable: str, outcome: str) -> pd.DataFrame:
    grouped = sample.groupby(variable)[outcome]
    mean, sem, count = grouped.mean(), grouped.sem(), grouped.size()
    return pd.DataFrame(
        {
            "group_variable": variable,
            "group": mean.index.astype(str),
            "mean_respect": mean.to_numpy(),
            "ci_low": (mean - 1.96 * sem).to_numpy(),
            "ci_high": (mean + 1.96 * sem).to_numpy(),
            "n_encounters": count.to_numpy(),
        }
    )


def plot_disparities(result: Disparities, path: Path) -> Path:
    """A coefficient plot: each group's adjusted difference from its reference with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    effects = result.effects
    labels = [f"{row.group_variable}: {row.group} vs {row.reference}" for row in effects.itertuples()]
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(effects) + 1.6))
    positions = np.arange(len(effects))[::-1]
    axis.errorbar(
        effects["estimate"],
        positions,
        xerr=[effects["estimate"] - effects["ci_low"], effects["ci_high"] - effects["estimate"]],
        fmt="o",
        color="#1f3a5f",
        capsize=4,
    )
    axis.axvline(0, color="#888", linewidth=1)
    axis.set_yticks(positions, labels)
    axis.set_xlabel("difference in officer respect (corpus SD), 95% CI")
    axis.set_title("Officer respect by civilian group (adjusted; officer random effects)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_disparities(result: Disparities, out_dir: Path) -> dict[str, Path]:
    """``disparities.csv``, ``group_means.csv``, ``disparities.png`` and ``notes.txt`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "effects": out_dir / "disparities.csv",
        "means": out_dir / "group_means.csv",
        "plot": out_dir / "disparities.png",
        "notes": out_dir / "notes.txt",
    }
    result.effects.to_csv(paths["effects"], index=False)
    result.raw_means.to_csv(paths["means"], index=False)
    plot_disparities(result, paths["plot"])
    notes = [
        f"{result.n_encounters} encounters of {result.n_officers} officers.",
        f"Method: {METHOD}.",
        "Estimates are adjusted differences from the reference group in respect units (corpus standard deviations);",
        "respect comes from an automated model of officer language, and differences are associations, not causes.",
        *result.notes,
    ]
    paths["notes"].write_text("\n".join(notes) + "\n")
    return paths


def simulate_stops(
    n_officers: int = 60,
    encounters_per_officer: int = 40,
    gap: float = -0.25,
    officer_sd: float = 0.5,
    noise_sd: float = 1.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Encounters with a planted respect ``gap`` for Black civilians, officer effects, and a confounder: harsher
    officers stop Black civilians more often and stop reasons differ in respect, so raw means overstate the gap."""
    rng = np.random.default_rng(seed)
    officer_effect = rng.normal(0, officer_sd, n_officers)
    reasons = np.array(["equipment", "moving violation", "investigative"])
    reason_effect = {"equipment": 0.2, "moving violation": 0.0, "investigative": -0.4}
    rows = []
    for officer in range(n_officers):
        share_black = 0.3 + 0.4 * (officer_effect[officer] < 0)  # the confounder
        for index in range(encounters_per_officer):
            race = "black" if rng.random() < share_black else "white"
            reason = rng.choice(reasons, p=[0.3, 0.4, 0.3] if race == "white" else [0.2, 0.4, 0.4])
            respect = officer_effect[officer] + reason_effect[reason] + (gap if race == "black" else 0.0)
            rows.append(
                {
                    "encounter_id": f"e{officer}-{index}",
                    "officer_id": f"O{officer}",
                    "recorded_at": pd.Timestamp("2026-01-01", tz="UTC")
                    + pd.Timedelta(hours=int(rng.integers(0, 8760))),
                    "race": race,
                    "gender": rng.choice(["female", "male"]),
                    "stop_reason": reason,
                    "respect": respect + rng.normal(0, noise_sd),
                }
            )
    return pd.DataFrame(rows)
