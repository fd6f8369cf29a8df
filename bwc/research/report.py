"""Training-effect outputs: CSV tables, one event-study plot per outcome, and a self-contained HTML report.

``report.html`` embeds its plots as base64 ``data:`` URIs and has no external CSS or JavaScript, so the folder (or
the page alone) can be emailed and opened anywhere. It says what was estimated and how, in words a researcher can
read without the code, with the effects table, the plots, the pre-trend tests, sample sizes and caveats.

Example
-------
>>> result = estimate_training_effect(encounters, roster)                     # doctest: +SKIP
>>> paths = write_outputs(result, Path("out"), "PJ training, 2024", "store /data/bwc-store")  # doctest: +SKIP
>>> sorted(paths)                                                             # doctest: +SKIP
['effects', 'event_study', 'plot:respect', 'pretrend', 'report']
"""

from __future__ import annotations

import base64
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bwc.research.training import (
    CONFIDENCE,
    EFFECT_COLUMNS,
    EVENT_COLUMNS,
    PRETREND_COLUMNS,
    REFERENCE_PERIOD,
    TrainingEffect,
)

PLOT_DPI = 110
PLOT_SIZE = (7.0, 4.0)  # inches
PRE_COLOUR, POST_COLOUR, LINE_COLOUR = "#7a7a7a", "#1f3a5f", "#b03a2e"
# How to read each default outcome's estimate; other outcomes are described by their name alone.
UNITS = {
    "respect": "respect score, corpus standard deviations",
    "behaviours_present": "number of the five trained behaviours",
    "all_five": "probability that all five behaviours occur",
    "escalation": "escalation score, 0..1",
}
BEHAVIOUR_UNITS = "probability that the behaviour occurs"
CAVEATS = (
    "Outcomes are scores from automated models (speech recognition, speaker attribution, the respect model and "
    "the behaviour rules), not human ratings. Measurement error that is unrelated to training only widens the "
    "intervals, but if training changes how officers phrase things in ways the models read differently (for example "
    "scripted phrases), part of a measured change may be a change in what the models see rather than in respect.",
    "The estimates are associations that equal the effect of training only under parallel trends: without training, "
    "trained officers' outcomes would have moved like those of their not-yet-trained and never-trained colleagues. "
    "It also assumes no anticipation (no change before the training date) and no spill-over to untrained officers, "
    "who would otherwise make the effect look smaller. Who was trained when was not randomised: if officers were "
    "chosen for training because of how they were doing, the estimate can be biased.",
    "Pre-training coefficients near zero and a pre-trend test that does not reject are consistent with parallel "
    "trends but do not prove them; a test with few officers has little power.",
    "Several outcomes are tested at once: with many outcomes, one interval in twenty excludes zero by chance alone.",
    "The kind of encounters officers have may change over time (assignments, seasons); calendar-period fixed effects "
    "absorb department-wide changes, not changes specific to trained officers.",
)
TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<style>
body { font-family: Georgia, "Times New Roman", serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1, h2, h3 { font-family: Helvetica, Arial, sans-serif; color: #1f3a5f; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th { background: #eef2f7; } td.name, th.name { text-align: left; }
.note { color: #555; font-size: 0.92rem; } figure { margin: 1.5rem 0; } img { max-width: 100%; }
.warn { color: #8a1c1c; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="note">Generated {{ generated }} by bwc. Inputs: {{ inputs_description }}.</p>

<h2>What was estimated</h2>
<p>Did officers' language change after {{ program_words }}, and by how much? For each outcome the report gives the
average change in officers' encounters after their training date (the average effect on the trained, over all their
encounters after training), with a {{ confidence }} confidence interval, and an event study: the change in each
{{ period }} before and after training.</p>
<p><b>Method.</b> Staggered difference-in-differences with Gardner's two-stage estimator (Gardner 2021;
the same estimate as the imputation estimator of Borusyak, Jaravel and Spiess 2024), computed with pyfixest's
<code>did2s</code>. First, officer and calendar-{{ period }} fixed effects are fitted on untrained encounters only:
officers never trained, and trained officers before their training date. Then the outcome, net of those fixed effects,
is compared between encounters before and after training. Unlike an ordinary two-way fixed-effects regression, this
never uses officers trained earlier as controls, so effects that differ between training cohorts or grow over time do
not bias it. An encounter counts as after training from the training date on (UTC dates); {{ period }}s since
training are whole {{ period }}s of elapsed time, so {{ period }} 0 starts on the training day and {{ period }}
{{ reference }} (the last before training) is the reference. Standard errors are clustered by officer (every
encounter of an officer may share unmeasured influences), with the small-sample correction G/(G-1) and t quantiles on
G-1 degrees of freedom, G being the number of officers. In short: {{ method }}.</p>

<h2>Data</h2>
<ul>
<li>{{ result.n_encounters }} encounters from {{ result.first_recorded }} to {{ result.last_recorded }}.</li>
<li>{{ result.n_officers_trained }} trained officers{% if result.program %} (program {{ result.program }}){% endif %};
  {{ result.n_officers_never_trained }} never-trained officers as controls throughout.</li>
<li>Event-study window: {{ period }}s {{ result.window[0] }} to {{ result.window[1] }} relative to training.</li>
{% for note in result.notes %}<li class="note">{{ note }}</li>
{% endfor %}</ul>

<h2>Effects</h2>
<table>
<tr><th class="name">outcome</th><th>change after training</th><th>{{ confidence }} CI</th><th>standard error</th>
<th>officers</th><th>encounters</th><th>pre-trend test p</th><th class="name">units</th></tr>
{% for row in effects %}<tr><td class="name">{{ row.outcome }}</td><td>{{ row.estimate }}</td>
<td>{{ row.ci_low }} to {{ row.ci_high }}</td><td>{{ row.std_error }}</td><td>{{ row.n_officers }}</td>
<td>{{ row.n_encounters }}</td><td{% if row.pretrend_flag %} class="warn"{% endif %}>{{ row.pretrend_p }}</td>
<td class="name">{{ row.units }}</td></tr>
{% endfor %}</table>
<p class="note">An interval that excludes 0 means the change is distinguishable from no change at the
{{ confidence }} level. For yes/no outcomes (the behaviours, all five) the estimate is a change in probability:
0.05 is 5 percentage points. The pre-trend test asks whether trained officers' outcomes already differed from the
controls' in {{ period }}s {{ result.window[0] }} to {{ reference - 1 }} before training (a joint F test of those
coefficients; p below 0.05, shown in red, is a warning that trends were not parallel).</p>

<h2>Event studies</h2>
<p class="note">Each point is the change in that {{ period }} relative to training, with its {{ confidence }}
interval. Points left of the red line (before training) should hover around zero if the comparison is fair;
{{ period }} {{ reference }} is the reference (drawn hollow, not estimated).</p>
{% for plot in plots %}<figure>
<img src="data:image/png;base64,{{ plot.data }}" alt="Event study of {{ plot.outcome }}">
<figcaption class="note">{{ plot.outcome }}: change by {{ period }} since training, {{ confidence }} intervals.
</figcaption>
</figure>
{% endfor %}

<h2>Caveats</h2>
<ul>
{% for caveat in caveats %}<li>{{ caveat }}</li>
{% endfor %}</ul>
{% if result.model_versions %}<h2>Model versions of the scores</h2>
<ul>{% for version in result.model_versions %}<li><code>{{ version }}</code></li>{% endfor %}</ul>
{% endif %}
<p class="note">Files beside this page: effects.csv, event_study.csv, pretrend.csv and one PNG per outcome.</p>
</body>
</html>
"""


def write_outputs(result: TrainingEffect, out_dir: Path, title: str, inputs_description: str) -> dict[str, Path]:
    """Write ``effects.csv``, ``event_study.csv``, ``pretrend.csv``, a PNG per outcome and ``report.html``.

    Parameters
    ----------
    result
        The estimates (:func:`bwc.research.training.estimate_training_effect`).
    out_dir
        Folder to write into (created when missing).
    title
        Page title, e.g. the program and period analysed.
    inputs_description
        Where the encounters and roster came from, in words (paths, store, filters).

    Returns
    -------
    dict
        ``effects``, ``event_study``, ``pretrend``, ``report`` and ``plot:<outcome>`` paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "effects": out_dir / "effects.csv",
        "event_study": out_dir / "event_study.csv",
        "pretrend": out_dir / "pretrend.csv",
        "report": out_dir / "report.html",
    }
    result.effects[list(EFFECT_COLUMNS)].to_csv(paths["effects"], index=False)
    result.event_study[list(EVENT_COLUMNS)].to_csv(paths["event_study"], index=False)
    result.pretrend[list(PRETREND_COLUMNS)].to_csv(paths["pretrend"], index=False)
    plots = []
    for outcome in result.effects["outcome"]:
        path = out_dir / f"event_study_{_file_name(outcome)}.png"
        plot_event_study(result, outcome, path)
        paths[f"plot:{outcome}"] = path
        plots.append({"outcome": outcome, "data": base64.b64encode(path.read_bytes()).decode("ascii")})
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    page = environment.from_string(TEMPLATE).render(
        title=title,
        inputs_description=inputs_description,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        program_words=f"training program {result.program}" if result.program else "training",
        confidence=f"{CONFIDENCE:.0%}",
        period=result.period,
        reference=REFERENCE_PERIOD,
        method=result.method,
        result=result,
        effects=_effect_rows(result),
        plots=plots,
        caveats=CAVEATS,
    )
    paths["report"].write_text(page, encoding="utf-8")
    return paths


def plot_event_study(result: TrainingEffect, outcome: str, path: Path) -> Path:
    """Estimates by relative period with CI bars; a line at training and at zero; the overall ATT in the title."""
    study = result.event_study[result.event_study["outcome"] == outcome].sort_values("relative_period")
    overall = result.effects.set_index("outcome").loc[outcome]
    figure = Figure(figsize=PLOT_SIZE)
    FigureCanvasAgg(figure)  # attaches the Agg canvas: no pyplot, no global backend state
    axis = figure.subplots()
    for before, colour, label in ((True, PRE_COLOUR, "before training"), (False, POST_COLOUR, "after training")):
        points = study[(study["relative_period"] < 0) == before].dropna(subset=["ci_low", "ci_high"])
        axis.errorbar(
            points["relative_period"],
            points["estimate"],
            yerr=[points["estimate"] - points["ci_low"], points["ci_high"] - points["estimate"]],
            fmt="o",
            color=colour,
            capsize=3,
            label=label,
        )
    axis.plot([REFERENCE_PERIOD], [0.0], "o", mfc="white", color=PRE_COLOUR, label=f"reference ({REFERENCE_PERIOD})")
    axis.axvline(-0.5, color=LINE_COLOUR, linestyle="--", linewidth=1, label="training")
    axis.axhline(0.0, color="#444", linewidth=0.8)
    axis.set_xlabel(f"{result.period}s since training")
    axis.set_ylabel(f"change in {outcome}")
    axis.set_title(
        f"{outcome}: overall {overall['estimate']:+.3f} ({CONFIDENCE:.0%} CI {overall['ci_low']:+.3f} to "
        f"{overall['ci_high']:+.3f})",
        fontsize=11,
    )
    axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=PLOT_DPI, format="png")
    return path


def _effect_rows(result: TrainingEffect) -> list[dict[str, object]]:
    pretrend = result.pretrend.set_index("outcome")["p_value"] if len(result.pretrend) else pd.Series(dtype=float)
    rows = []
    for row in result.effects.itertuples(index=False):
        p_value = float(pretrend.get(row.outcome, math.nan))
        rows.append(
            {
                "outcome": row.outcome,
                "estimate": f"{row.estimate:.3f}",
                "ci_low": f"{row.ci_low:.3f}",
                "ci_high": f"{row.ci_high:.3f}",
                "std_error": f"{row.std_error:.3f}",
                "n_officers": row.n_officers,
                "n_encounters": row.n_encounters,
                "pretrend_p": "not tested" if math.isnan(p_value) else f"{p_value:.3f}",
                "pretrend_flag": not math.isnan(p_value) and p_value < 0.05,
                "units": UNITS.get(row.outcome, BEHAVIOUR_UNITS if row.outcome.startswith("pj_") else row.outcome),
            }
        )
    return rows


def _file_name(outcome: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", outcome).strip("._") or "outcome"
