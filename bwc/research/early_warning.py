"""Which of bwc's officer indicators precede bad outcomes, and how well a model on them ranks officers against the
threshold rule a department uses now (e.g. "3 complaints in 12 months").

Time-split validation, as an early-intervention system is used: at each cut date, each officer's indicators come
only from before it (their encounters in the ``lookback`` days before, shrunk as ``STORE/officer_periods`` shrinks
them, and their recorded outcomes in the 12 months before), and the label is whether any outcome follows in the
``horizon`` months after. Cut dates are ``step`` months apart, from the first date with a full lookback of encounters
to the last whose horizon the outcomes cover.

- **Ranking** (``evaluation.csv``, ``metrics.csv``): at each cut, a Poisson regression of the number of later
  outcomes (scikit-learn) fitted only on earlier cuts whose horizon had already ended ranks officers; so does the
  threshold rule (prior outcomes in 12 months, its own measure; ties in a fixed random order). Precision@k and
  recall@k per cut, averaged over the test cuts, for ``bwc`` (language indicators and prior outcomes),
  ``language_only`` and ``threshold_baseline``, and the rule as the department applies it (``threshold_rule``,
  k = the officers it flags); AUC, Brier score and a calibration table for the models.
- **Indicators** (``indicators.csv``): one logistic regression (statsmodels GLM) of the label on every indicator at
  once (each per standard deviation, so estimates are odds ratios per SD, adjusted for the others) and one intercept
  per cut (department-wide drifts are nobody's link), over every cut, with standard errors clustered by officer (an
  officer appears at every cut). Intervals and p-values are Bonferroni adjusted over the indicators and one joint
  test of the language indicators together (``language_joint``: they move together, so each adjusted for the
  others is uncertain even when language as a whole precedes outcomes), so they hold simultaneously: in a
  department where nothing is linked, the chance of any claim is at most about ``alpha`` (normal-theory cluster
  standard errors; with few officers, a little more).

Example
-------
>>> result = early_warning(Path("/data/bwc-store"), outcomes, EarlyWarningOptions())    # doctest: +SKIP
>>> result.evaluation.query("k == 10")[["method", "precision", "recall"]]              # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.linear_model import PoissonRegressor
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bwc.config import EarlyWarningConfig
from bwc.store import Store
from scoring.officers import read_roster, store_measures, window_measures

OUTCOME_COLUMNS = ("officer_id", "date", "kind")
# indicator -> what it is; the language ones come from the officer's encounters before the cut
LANGUAGE_INDICATORS = {
    "respect": "mean encounter respect, shrunk toward the department (corpus SDs)",
    "escalation": "mean encounter escalation, shrunk toward the department (0..1)",
    "poor_share": "share of encounters flagged poor",
    "hostile_share": "share of encounters with a threat, insult or profanity by the officer",
    "behaviours": "mean share of the five trained behaviours shown",
}
HISTORY_INDICATORS = {
    "prior_outcomes": "outcomes recorded in the 12 months before the cut (the threshold rule's measure)",
    "log_encounters": "log(1 + encounters analysed in the lookback): exposure",
}
LANGUAGE_JOINT = "language_joint"  # indicators.csv row: the language indicators tested together
PRIOR_DAYS = 365  # the threshold rule's look-back
METHODS = ("bwc", "language_only", "threshold_baseline", "threshold_rule")
CALIBRATION_BINS = 5
# L2 strength of the ranking model on standardised indicators (sklearn's alpha). Strong, ridge-like: the language
# indicators move together and early cuts have few labelled rows; on four development departments (seeds 1, 2 of
# simulate_department at 150 officers, linked and not) 1.0 beat 1e-3 at every k where language carries signal.
POISSON_PENALTY = 1.0


@dataclass(frozen=True)
class EarlyWarningOptions:
    """How the validation is cut and what it reports."""

    lookback_days: int = 180  # encounters before a cut that its indicators come from
    horizon_months: int = 6  # months after a cut in which an outcome counts
    step_months: int = 1  # months between cut dates (monthly, as a supervisor reviews; overlaps are clustered)
    kinds: tuple[str, ...] = ()  # outcome kinds that count (label and prior outcomes); () = every kind
    threshold: int = 3  # the threshold rule: this many prior outcomes in 12 months flags an officer
    k: tuple[int, ...] = (5, 10, 20)  # top-k officers for precision and recall
    alpha: float = 0.05  # family-wise error of the indicator intervals and claims
    min_encounters: int = 5  # officers with fewer encounters in a lookback are left out of that cut
    seed: int = 0  # tie order of the threshold ranking
    outcomes_through: pd.Timestamp | None = None  # last day the outcome records cover; None = the last outcome's date
    early_warning: EarlyWarningConfig = field(default_factory=EarlyWarningConfig)  # shrinkage and intervals


@dataclass(frozen=True)
class EarlyWarningResult:
    """Everything ``bwc research early-warning`` writes."""

    evaluation: pd.DataFrame  # method, k, precision, recall, cuts (test cuts averaged over)
    metrics: pd.DataFrame  # method, auc, brier, cuts
    calibration: pd.DataFrame  # method, bin, predicted, observed, officers
    indicators: pd.DataFrame  # indicator, estimate, ci_low, ci_high, p_value, p_value_unadjusted, claimed, meaning
    panel: pd.DataFrame  # one row per officer and cut: indicators and label
    cuts: tuple[pd.Timestamp, ...]  # every cut date
    test_cuts: tuple[pd.Timestamp, ...]  # cut dates the ranking was evaluated at
    dropped_outcomes: int  # outcome rows of officers never seen in the store


def load_outcomes(path: Path) -> pd.DataFrame:
    """OUTCOMES.csv: ``officer_id, date, kind``, one row per recorded outcome.

    Raises
    ------
    ValueError
        Naming the file, the line and the problem: a missing column, an empty officer or kind, an unreadable date.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ValueError(f"{path}: cannot read the outcomes: {error}") from error
    table.columns = [str(column).strip().lower() for column in table.columns]
    missing = [column for column in OUTCOME_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; outcomes need {', '.join(OUTCOME_COLUMNS)}")
    outcomes = pd.DataFrame(
        {
            "officer_id": table["officer_id"].str.strip(),
            "date": pd.to_datetime(table["date"].str.strip(), errors="coerce", utc=True, format="mixed"),
            "kind": table["kind"].str.strip().str.lower(),
        }
    )
    for column, problem in (("officer_id", "no officer_id"), ("date", "no readable date"), ("kind", "no kind")):
        bad = outcomes[column].isna() | (outcomes[column].astype(str) == "")
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{path}: line {first + 2}: {problem} ({table.iloc[first].to_dict()}); "
                f"{int(bad.sum())} row(s) have this problem"
            )
    return outcomes


def early_warning(store: Path, outcomes: pd.DataFrame, options: EarlyWarningOptions) -> EarlyWarningResult:
    """Time-split validation of bwc's indicators against later outcomes (see the module docstring).

    Raises
    ------
    ValueError
        When the store has no analysed encounters, or the data span too little time for two cut dates.
    """
    measures = store_measures(Store(store))
    if measures.empty and not measures.attrs["skipped"]:
        raise ValueError(f"{store}: no scored encounters (run `bwc run` or `bwc score` first)")
    if measures.empty:
        raise ValueError(f"{store}: no encounter has an officer id, a time and officer language")
    measures["behaviours"] = measures[[c for c in measures.columns if c.startswith("rate_")]].mean(axis=1)
    if options.kinds:
        outcomes = outcomes[outcomes["kind"].isin(options.kinds)]
    known = outcomes["officer_id"].isin(set(measures["officer_id"]))
    dropped = int((~known).sum())
    outcomes = outcomes[known]
    cuts = _cut_dates(measures, outcomes, options)
    settings = options.early_warning
    roster = read_roster(settings.roster, settings.peer_group) if settings.roster else None  # peers as the store's
    panel = pd.concat([_panel_at(cut, measures, outcomes, options, roster) for cut in cuts], ignore_index=True)
    if panel.empty:
        raise ValueError(
            f"no officer has {options.min_encounters} analysed encounters in the {options.lookback_days} days before "
            "any cut date: too few encounters per officer to validate on"
        )
    evaluation, metrics, calibration, test_cuts = _evaluate(panel, cuts, options)
    indicators = _indicators(panel, options.alpha)
    return EarlyWarningResult(evaluation, metrics, calibration, indicators, panel, tuple(cuts), test_cuts, dropped)


def write_early_warning(result: EarlyWarningResult, out: Path, options: EarlyWarningOptions) -> list[Path]:
    """``evaluation.csv``, ``metrics.csv``, ``calibration.csv``, ``indicators.csv`` and ``report.html`` in ``out``:
    aggregates only, no officer-level rows (the panel stays in memory), so the folder can be shared."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (
        ("evaluation", result.evaluation),
        ("metrics", result.metrics),
        ("calibration", result.calibration),
        ("indicators", result.indicators),
    ):
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False, float_format="%.6g")
        written.append(path)
    path = out / "report.html"
    path.write_text(_report(result, options), encoding="utf-8")
    return [*written, path]


def _cut_dates(measures: pd.DataFrame, outcomes: pd.DataFrame, options: EarlyWarningOptions) -> list[pd.Timestamp]:
    first = measures["recorded_at"].min().normalize() + pd.Timedelta(days=options.lookback_days)
    if options.outcomes_through is not None:
        last_seen = pd.Timestamp(options.outcomes_through)
        last_seen = last_seen.tz_localize("UTC") if last_seen.tzinfo is None else last_seen.tz_convert("UTC")
    elif outcomes.empty:
        raise ValueError("no outcomes of the kinds asked for name an officer in the store: nothing to validate against")
    else:
        # A cut needs its whole horizon inside what the outcome records cover; the encounters may run on past the
        # export, and months without any recorded outcome would read as months without outcomes.
        last_seen = outcomes["date"].max()
    cuts, cut = [], pd.Timestamp(first.year, first.month, 1, tz="UTC") + pd.DateOffset(months=1)
    while cut + pd.DateOffset(months=options.horizon_months) <= last_seen + pd.Timedelta(days=1):
        cuts.append(cut)
        cut = cut + pd.DateOffset(months=options.step_months)
    needed = math.ceil(options.horizon_months / options.step_months) + 1
    if len(cuts) < needed + 1:
        raise ValueError(
            f"the data span {measures['recorded_at'].min().date()} to {last_seen.date()}: too little for time-split "
            f"validation with a {options.lookback_days}-day lookback and a {options.horizon_months}-month horizon "
            f"(need {needed + 1} cut dates {options.step_months} months apart, have {len(cuts)})"
        )
    return cuts


def _panel_at(
    cut: pd.Timestamp,
    measures: pd.DataFrame,
    outcomes: pd.DataFrame,
    options: EarlyWarningOptions,
    roster: pd.Series | None = None,
) -> pd.DataFrame:
    """Each officer's indicators from before ``cut`` and whether an outcome followed within the horizon."""
    start = cut - pd.Timedelta(days=options.lookback_days)
    cells = window_measures(measures, start, cut, options.early_warning, roster)
    if cells.empty:
        return pd.DataFrame()
    cells = cells[cells["encounters"] >= options.min_encounters]
    inside = measures[(measures["recorded_at"] >= start) & (measures["recorded_at"] < cut)]
    behaviours = inside.groupby("officer_id")["behaviours"].mean()
    prior = outcomes[(outcomes["date"] >= cut - pd.Timedelta(days=PRIOR_DAYS)) & (outcomes["date"] < cut)]
    after = outcomes[
        (outcomes["date"] >= cut) & (outcomes["date"] < cut + pd.DateOffset(months=options.horizon_months))
    ]
    panel = pd.DataFrame(
        {
            "cut": cut,
            "officer_id": cells["officer_id"].to_numpy(),
            "respect": cells["respect_shrunk"].to_numpy(),
            "escalation": cells["escalation_shrunk"].to_numpy(),
            "poor_share": cells["poor_share"].to_numpy(),
            "hostile_share": cells["hostile_share"].to_numpy(),
            "behaviours": cells["officer_id"].map(behaviours).to_numpy(),
            "prior_outcomes": cells["officer_id"].map(prior["officer_id"].value_counts()).fillna(0).to_numpy(),
            "log_encounters": np.log1p(cells["encounters"].to_numpy(dtype=float)),
            "outcomes_after": cells["officer_id"].map(after["officer_id"].value_counts()).fillna(0).to_numpy(),
        }
    )
    panel["label"] = (panel["outcomes_after"] > 0).astype(int)
    return panel


def _evaluate(
    panel: pd.DataFrame, cuts: list[pd.Timestamp], options: EarlyWarningOptions
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, tuple[pd.Timestamp, ...]]:
    """Rolling-origin evaluation: each model is refitted at every test cut on the cuts whose labels were known."""
    features = {
        "bwc": [*LANGUAGE_INDICATORS, *HISTORY_INDICATORS],
        "language_only": [*LANGUAGE_INDICATORS, "log_encounters"],
    }
    rng = np.random.default_rng(options.seed)
    per_cut: list[dict[str, float]] = []
    predictions: list[pd.DataFrame] = []
    test_cuts = []
    for cut in cuts:
        known = panel[panel["cut"] + pd.DateOffset(months=options.horizon_months) <= cut]
        test = panel[panel["cut"] == cut]
        if test.empty or known["label"].nunique() < 2 or test["label"].nunique() < 2:
            continue  # nothing to learn from yet, or nothing to rank at this cut (no outcome, or everyone had one)
        test_cuts.append(cut)
        scores = {}
        for method, columns in features.items():
            # Poisson on the count of later outcomes: an officer with three later complaints says more than one
            # with one, which a yes/no label throws away; P(any) = 1 − exp(−rate) for calibration.
            model = make_pipeline(StandardScaler(), PoissonRegressor(alpha=POISSON_PENALTY, max_iter=1000))
            model.fit(known[columns].to_numpy(dtype=float), known["outcomes_after"].to_numpy())
            scores[method] = -np.expm1(-model.predict(test[columns].to_numpy(dtype=float)))
            predictions.append(pd.DataFrame({"method": method, "predicted": scores[method], "label": test["label"]}))
        tie_order = rng.random(len(test))
        scores["threshold_baseline"] = test["prior_outcomes"].to_numpy() + tie_order * 1e-3
        labels = test["label"].to_numpy()
        positives = int(labels.sum())
        for method in ("bwc", "language_only", "threshold_baseline"):
            order = np.argsort(-scores[method], kind="stable")
            for k in options.k:
                top = labels[order[: min(k, len(order))]]
                per_cut.append({"method": method, "k": k, "precision": top.mean(), "recall": top.sum() / positives})
            auc = roc_auc_score(labels, scores[method])
            per_cut.append({"method": method, "k": -1, "auc": auc})
        flagged = test["prior_outcomes"].to_numpy() >= options.threshold
        per_cut.append(
            {
                "method": "threshold_rule",
                "k": int(flagged.sum()),
                "precision": labels[flagged].mean() if flagged.any() else np.nan,
                "recall": labels[flagged].sum() / positives,
            }
        )
    if not test_cuts:
        raise ValueError("no cut date has both earlier labelled cuts and an outcome to find: nothing to evaluate")
    rows = pd.DataFrame(per_cut)
    ranked = rows[(rows["k"] >= 0) & (rows["method"] != "threshold_rule")]
    evaluation = ranked.groupby(["method", "k"], sort=False).agg(precision=("precision", "mean"),
                                                                  recall=("recall", "mean")).reset_index()  # fmt: skip
    rule = rows[rows["method"] == "threshold_rule"]
    evaluation = pd.concat(
        [
            evaluation,
            pd.DataFrame(
                [
                    {
                        "method": "threshold_rule",
                        "k": round(float(rule["k"].mean()), 1),
                        "precision": rule["precision"].mean(),
                        "recall": rule["recall"].mean(),
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    evaluation["cuts"] = len(test_cuts)
    pooled = pd.concat(predictions, ignore_index=True)
    auc = rows[rows["k"] == -1].groupby("method", sort=False)["auc"].mean()
    metrics = pd.DataFrame(
        {
            "method": auc.index,
            "auc": auc.to_numpy(),
            "brier": [
                brier_score_loss(pooled.loc[pooled.method == m, "label"], pooled.loc[pooled.method == m, "predicted"])
                if m in features
                else np.nan
                for m in auc.index
            ],
            "cuts": len(test_cuts),
        }
    )
    calibration = _calibration(pooled)
    return evaluation, metrics, calibration, tuple(test_cuts)


def _calibration(pooled: pd.DataFrame) -> pd.DataFrame:
    """Mean predicted probability against the observed share, in quantile bins of the prediction, per model."""
    rows = []
    for method, part in pooled.groupby("method", sort=False):
        bins = pd.qcut(part["predicted"].rank(method="first"), CALIBRATION_BINS, labels=False)
        for number, group in part.groupby(bins):
            rows.append({"method": method, "bin": int(number) + 1, "predicted": group["predicted"].mean(),
                         "observed": group["label"].mean(), "officers": len(group)})  # fmt: skip
    return pd.DataFrame(rows)


def _indicators(panel: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Each indicator's link to a later outcome, adjusted for the others, with simultaneous (Bonferroni) intervals."""
    names = [*LANGUAGE_INDICATORS, *HISTORY_INDICATORS]
    columns = [name for name in names if panel[name].std() > 0]
    standardised = (panel[columns] - panel[columns].mean()) / panel[columns].std()
    # One intercept per cut: a department-wide drift in the scores (a new model version, a season) that happens to
    # run with a drift in outcome rates is not a link between officers' language and their outcomes.
    cut_effects = pd.get_dummies(panel["cut"], drop_first=True, dtype=float).to_numpy()
    design = np.column_stack([np.ones(len(panel)), standardised.to_numpy(dtype=float), cut_effects])
    own = slice(1, 1 + len(columns))  # the indicators' coefficients
    groups = pd.factorize(panel["officer_id"])[0]
    fit = sm.GLM(panel["label"].to_numpy(), design, family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    # One more test in the family: the language indicators jointly (a Wald test that all their coefficients are 0).
    # They move together (a curt officer is flagged more and says more hostile things), so each one adjusted for the
    # others is uncertain even when language as a whole clearly precedes outcomes.
    language = [i + 1 for i, name in enumerate(columns) if name in LANGUAGE_INDICATORS]
    m = len(columns) + (1 if language else 0)
    intervals = np.asarray(fit.conf_int(alpha=alpha / m))[own]
    raw = np.asarray(fit.pvalues)[own]
    meanings = LANGUAGE_INDICATORS | HISTORY_INDICATORS
    table = pd.DataFrame(
        {
            "indicator": columns,
            "estimate": np.exp(np.asarray(fit.params)[own]),
            "ci_low": np.exp(intervals[:, 0]),
            "ci_high": np.exp(intervals[:, 1]),
            "p_value_unadjusted": raw,
            "meaning": [f"odds ratio of a later outcome per SD of: {meanings[name]}" for name in columns],
        }
    )
    if language:
        restriction = np.zeros((len(language), design.shape[1]))
        restriction[np.arange(len(language)), language] = 1.0
        joint = fit.wald_test(restriction, scalar=True)
        row = {"indicator": LANGUAGE_JOINT, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan,
               "p_value_unadjusted": float(joint.pvalue),
               "meaning": f"all {len(language)} language indicators together (Wald test, no one estimate)"}  # fmt: skip
        table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
    table.insert(4, "p_value", np.minimum(table["p_value_unadjusted"] * m, 1.0))
    table.insert(6, "claimed", table["p_value"] < alpha)
    return table


def _report(result: EarlyWarningResult, options: EarlyWarningOptions) -> str:
    """A self-contained HTML report: the tables and three plots (precision@k, indicators, calibration)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def png(figure: plt.Figure) -> str:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'

    figure, axis = plt.subplots(figsize=(5.5, 3.2))
    for method in ("bwc", "language_only", "threshold_baseline"):
        part = result.evaluation[result.evaluation["method"] == method]
        axis.plot(part["k"], part["precision"], marker="o", label=method)
    axis.set(xlabel="k (officers reviewed per cut)", ylabel="precision@k", ylim=(0, 1))
    axis.legend(frameon=False)
    precision_plot = png(figure)

    figure, axis = plt.subplots(figsize=(5.5, 0.45 * len(result.indicators) + 0.6))
    table = result.indicators.dropna(subset=["estimate"])  # the joint test has no single estimate to draw
    y = np.arange(len(table))[::-1]
    spread = [table["estimate"] - table["ci_low"], table["ci_high"] - table["estimate"]]
    axis.errorbar(table["estimate"], y, xerr=spread, fmt="o", color="black")
    axis.axvline(1.0, color="grey", linestyle="--")
    axis.set_xscale("log")
    axis.set_yticks(y, table["indicator"])
    axis.set_xlabel(f"odds ratio per SD ({100 * (1 - options.alpha):.0f}% simultaneous interval)")
    indicator_plot = png(figure)

    figure, axis = plt.subplots(figsize=(4, 4))
    for method, part in result.calibration.groupby("method", sort=False):
        axis.plot(part["predicted"], part["observed"], marker="o", label=method)
    top = float(max(result.calibration[["predicted", "observed"]].max().max(), 0.05))
    axis.plot([0, top], [0, top], color="grey", linestyle="--")
    axis.set(xlabel="predicted probability", ylabel="observed share")
    axis.legend(frameon=False)
    calibration_plot = png(figure)

    def table_html(frame: pd.DataFrame) -> str:
        return frame.to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0, escape=True)

    claimed = result.indicators[result.indicators["claimed"]]["indicator"].tolist()
    verdict = (
        f"Linked to later outcomes (simultaneous {100 * (1 - options.alpha):.0f}% intervals exclude no link): "
        + (", ".join(claimed) if claimed else "none")
    )
    cuts = ", ".join(str(cut.date()) for cut in result.test_cuts)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bwc early warning</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}}td,th{{padding:2px 8px}}</style>
</head><body>
<h1>Early intervention: which indicators precede bad outcomes</h1>
<p>Indicators from the {options.lookback_days} days before each cut date; outcomes counted in the
{options.horizon_months} months after. {len(result.cuts)} cut dates, {options.step_months} months apart; the ranking
is evaluated at {len(result.test_cuts)} of them ({html.escape(cuts)}), each model fitted only on earlier cuts whose
outcomes were already known. The threshold rule: {options.threshold} or more outcomes in the 12 months before.</p>
<p><strong>{html.escape(verdict)}</strong></p>
<h2>Ranking officers</h2>{precision_plot}{table_html(result.evaluation)}{table_html(result.metrics)}
<h2>Indicators, adjusted for each other</h2>{indicator_plot}{table_html(result.indicators)}
<h2>Calibration</h2>{calibration_plot}
<p>Advisory: an association in this department's data, not a cause, and no basis on its own for discipline.</p>
</body></html>
"""
