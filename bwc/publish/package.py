"""The files of one release: public CSV tables, their Frictionless Data package, a data dictionary, a README for
the portal, a static page with charts, the changelog and the checksums.

Only :func:`public_table` decides what of a cell reaches a file: the period, the group label, the count and the
measures, and for a suppressed cell nothing but ``suppressed = true``. Officer ids, encounter ids, words, times
finer than the period and the suppression reasons never leave :mod:`bwc.publish.release`.

Example
-------
>>> public_table(cells, "by_district", min_cell=11).columns[:6].tolist()                  # doctest: +SKIP
['period', 'period_start', 'period_end', 'district', 'encounters', 'suppressed']
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from bwc.publish.tables import BINARY_MEASURES, OVERALL, RESPECT_QUANTILES, TIMES_OF_DAY

TEMPLATES = Path(__file__).parent / "templates"
CHECKSUMS = "SHA256SUMS"  # sha256sum format; the package's SHA-256 is the SHA-256 of this file
CHANGES = "changes"  # the changelog as a table resource
SHARE_DECIMALS, RESPECT_DECIMALS = 3, 2
FIELD_TITLES = {
    "district": "district (from the department's stop data)",
    "stop_reason": "reason for the stop (from the department's stop data)",
    "race": "the civilian's race as recorded in the department's stop data",
    "gender": "the civilian's gender as recorded in the department's stop data",
    "age_group": "the civilian's age group as recorded in the department's stop data",
    "outcome": "outcome of the stop (from the department's stop data)",
    "time_of_day": "local time of day the recording started: "
    + ", ".join(f"{name} {lo:02d}:00-{hi:02d}:00" for lo, hi, name in TIMES_OF_DAY),
    "category": "evidence category of the recording (from the evidence system's metadata)",
}
CHANGE_COLUMNS = ("release", "table", "period", "group", "change", "detail")


@dataclass(frozen=True)
class ReleaseInfo:
    """What every file of a release says about it."""

    release_id: str  # r001, r002, ...: the n-th release of this series
    version: str  # datapackage version, 1.<n>.0
    created: datetime  # when the draft was prepared (UTC)
    previous: str | None  # the release this one revises, None for the first
    name: str  # datapackage name (lower case, -._ only)
    title: str  # the portal's title
    publisher: str  # the department
    license: str  # SPDX identifier of the data licence
    period: str  # month | quarter
    fields: tuple[str, ...]  # group fields, one by_<field> table each
    min_cell: int  # suppression thresholds, stated in every file
    min_officers: int
    max_officer_share: float
    timezone: str  # periods and times of day are local to this zone


def public_table(cells: pd.DataFrame, table: str, min_cell: int) -> pd.DataFrame:
    """The published rows of ``table``: suppressed cells keep their row with every measure empty.

    Raises
    ------
    AssertionError
        When a published count would be below ``min_cell`` (the suppression step guarantees it cannot).
    """
    rows = cells[cells["table"] == table].sort_values(["period_start", "group"])
    field_name = rows["field"].iloc[0] if len(rows) else ""
    shown = ~rows["suppressed"].to_numpy()
    out = pd.DataFrame(
        {"period": rows["period"], "period_start": rows["period_start"], "period_end": rows["period_end"]}
    )
    if table != OVERALL:
        out[field_name] = rows["group"]
    out["encounters"] = rows["encounters"].where(shown).astype("Int64")
    assert (out["encounters"].dropna() >= min_cell).all(), "a published count below the threshold"
    out["suppressed"] = ~shown
    for name, _ in BINARY_MEASURES:
        share = rows[f"n_{name}"] / rows["encounters"].where(rows["encounters"] > 0)
        withheld = rows[f"withheld_{name}"].ne("").to_numpy() if f"withheld_{name}" in rows else False
        out[f"share_{name}"] = share.where(shown & ~withheld).round(SHARE_DECIMALS)
    for _, column in RESPECT_QUANTILES:
        out[column] = rows[column].where(shown).round(RESPECT_DECIMALS)
    return out.reset_index(drop=True)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """UTF-8 CSV, empty cells for missing values, booleans as ``true``/``false``."""
    path.write_text(csv_text(frame), encoding="utf-8")


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` exactly as :func:`write_csv` writes it."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == bool:
            frame[column] = frame[column].map({True: "true", False: "false"})
    return frame.to_csv(index=False, lineterminator="\n")


def as_published(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` read back as text, as a reader of the CSV sees it."""
    return pd.read_csv(io.StringIO(csv_text(frame)), dtype=str, keep_default_na=False)


def table_schema(table: str, field_name: str, info: ReleaseInfo) -> dict[str, Any]:
    """The Frictionless Table Schema of one public table."""
    fields: list[dict[str, Any]] = [
        {
            "name": "period",
            "type": "string",
            "title": "Period",
            "description": f"the {info.period} ({info.timezone} time), e.g. 2026-01 or 2026-Q1",
            "constraints": {"required": True, "pattern": r"\d{4}-(\d{2}|Q[1-4])"},
        },
        {
            "name": "period_start",
            "type": "date",
            "description": "first day of the period",
            "constraints": {"required": True},
        },
        {
            "name": "period_end",
            "type": "date",
            "description": "last day of the period",
            "constraints": {"required": True},
        },
    ]
    if table != OVERALL:
        fields.append(
            {
                "name": field_name,
                "type": "string",
                "constraints": {"required": True},
                "description": f"{FIELD_TITLES.get(field_name, field_name)}; 'unknown' = not recorded, "
                f"'other' = values with fewer than {info.min_cell} encounters over all periods",
            }
        )
    fields += [
        {
            "name": "encounters",
            "type": "integer",
            "unit": "encounters",
            "description": "analysed encounters in the cell (empty when suppressed)",
            "constraints": {"minimum": info.min_cell},
        },
        {
            "name": "suppressed",
            "type": "boolean",
            "constraints": {"required": True},
            "description": "true when the cell is withheld to protect the people in it; every measure is then empty",
        },
    ]
    for name, meaning in BINARY_MEASURES:
        fields.append(
            {
                "name": f"share_{name}",
                "type": "number",
                "unit": "share of encounters (0 to 1)",
                "description": f"share of the cell's encounters in which {meaning} (empty when suppressed, or "
                f"withheld because it would show fewer than {info.min_cell} encounters with or without it)",
                "constraints": {"minimum": 0, "maximum": 1},
            }
        )
    for q, column in RESPECT_QUANTILES:
        fields.append(
            {
                "name": column,
                "type": "number",
                "unit": "respect (department-independent scale: 0 = the "
                "training corpus mean, 1 = one corpus standard deviation)",
                "description": f"{int(q * 100)}th percentile of encounter respect (officer language, each "
                "encounter's mean shrunk towards the department mean by its reliability)",
            }
        )
    key = ["period"] if table == OVERALL else ["period", field_name]
    return {"fields": fields, "primaryKey": key, "missingValues": [""]}


def changes_schema() -> dict[str, Any]:
    """Schema of ``changes.csv``, the changelog as a table."""
    described = {
        "release": "release the change appeared in",
        "table": "table changed",
        "period": "period changed",
        "group": "group changed ('all' in the overall table; empty for a whole period)",
        "change": "new_period | revised | now_suppressed | kept (a period not revised, see detail) | period_removed",
        "detail": "why the cell changed (in words; never the suppressed value)",
    }
    return {
        "fields": [{"name": name, "type": "string", "description": text} for name, text in described.items()],
        "missingValues": [""],
    }


def datapackage(info: ReleaseInfo, tables: dict[str, pd.DataFrame], cells: pd.DataFrame) -> dict[str, Any]:
    """``datapackage.json``: one tabular resource per table and one for the changes."""
    resources = []
    for table in tables:
        field_name = "" if table == OVERALL else table.removeprefix("by_")
        what = "each period's total" if table == OVERALL else f"each period by {FIELD_TITLES[field_name]}"
        resources.append(
            {
                "name": table.replace("_", "-"),
                "path": f"{table}.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "title": f"Encounters: {what}",
                "schema": table_schema(table, field_name, info),
            }
        )
    resources.append(
        {
            "name": CHANGES,
            "path": f"{CHANGES}.csv",
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "title": "What this release changed since the previous one",
            "schema": changes_schema(),
        }
    )
    return {
        "profile": "tabular-data-package",
        "name": info.name,
        "title": info.title,
        "description": (
            "What officers' language in body-worn-camera audio shows about police-public encounters, per "
            f"{info.period}: trained behaviours, respect, threats, insults, profanity and flags. Aggregates only; "
            f"cells with fewer than {info.min_cell} encounters or {info.min_officers} officers, and any cell that "
            "would reveal one, are suppressed. See data_dictionary.md."
        ),
        "version": info.version,
        "created": info.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "licenses": [{"name": info.license, "path": f"https://spdx.org/licenses/{info.license}.html"}],
        "contributors": [{"title": info.publisher or "the publishing department", "role": "publisher"}],
        "keywords": ["police", "body-worn camera", "procedural justice", "open data", "police data initiative"],
        "resources": resources,
        "bwc": {
            "release": info.release_id,
            "previous_release": info.previous,
            "period": info.period,
            "timezone": info.timezone,
            "periods": sorted(set(cells["period"])),
            "suppression": {
                "min_cell": info.min_cell,
                "min_officers": info.min_officers,
                "max_officer_share": info.max_officer_share,
            },
        },
    }


def checksums(folder: Path, names: Sequence[str]) -> str:
    """``sha256sum`` lines for ``names`` in ``folder``."""
    lines = []
    for name in sorted(names):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}\n")
    return "".join(lines)


def render(template: str, **values: Any) -> str:
    """A template of :data:`TEMPLATES`, autoescaped where it is HTML."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template(template).render(**values)


def charts(overall: pd.DataFrame) -> dict[str, str]:
    """Inline SVG charts of the overall table over time (suppressed periods are gaps): behaviours, respect,
    hostile language. Empty when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "bwc-publish"  # clip-path ids from a fixed salt: byte-stable pages

    if overall.empty or overall["suppressed"].all():
        return {}
    x = pd.to_datetime(overall["period_start"])
    groups = {
        "behaviours": ("Trained behaviours (share of encounters)", [m for m, _ in BINARY_MEASURES[:6]]),
        "hostile": (
            "Threats, insults, profanity, commands before a reason (share)",
            ["threat", "insult", "profanity", "command_before_reason"],
        ),
    }
    out = {}
    for key, (title, measures) in groups.items():
        figure, axes = plt.subplots(figsize=(8, 3.2))
        for name in measures:
            axes.plot(x, overall[f"share_{name}"], marker="o", markersize=3, label=name.replace("_", " "))
        highest = float(overall[[f"share_{name}" for name in measures]].max().max() or 0.0)
        axes.set_ylim(0, 1.35 if key == "behaviours" else max(0.05, 1.45 * highest))  # room for the legend
        if key == "behaviours":
            axes.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        axes.set_title(title, fontsize=10)
        axes.legend(fontsize=7, ncols=3, loc="upper left")
        axes.grid(alpha=0.3)
        out[key] = _svg(figure)
    figure, axes = plt.subplots(figsize=(8, 3.2))
    axes.fill_between(x, overall["respect_p25"], overall["respect_p75"], alpha=0.25, label="25th-75th percentile")
    axes.plot(x, overall["respect_median"], marker="o", markersize=3, label="median")
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_title("Officer respect per encounter (0 = training corpus mean)", fontsize=10)
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    out["respect"] = _svg(figure)
    return out


def _svg(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})  # byte-stable across runs
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: drop the XML prolog and doctype


def model_facts(respect_dir: Path | None) -> dict[str, Any]:
    """The models behind the measures and their measured accuracy, read from their own metrics and cards."""
    import models.acts
    from models.acts import ACTS_VERSION
    from models.respect.artifact import BUNDLED_MODEL_DIR

    facts: dict[str, Any] = {"acts_version": ACTS_VERSION, "acts": {}}
    metrics_path = Path(respect_dir or BUNDLED_MODEL_DIR) / "metrics.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        facts["respect"] = {
            "version": metrics.get("version", ""),
            "held_out": metrics.get("held_out", {}).get("blend", {}),
            "worst_topic": metrics.get("topic_folds", {}).get("blend", {}).get("worst", {}),
            "police_register": metrics.get("checks", {}).get("police_register", {}),
        }
    card = Path(models.acts.__file__).parent / "CARD.md"
    if card.exists():
        for line in card.read_text().splitlines():
            cells = [part.strip() for part in line.strip().strip("|").split("|")]
            if len(cells) == 5 and cells[0] in {
                "greeting",
                "introduction",
                "reason_for_stop",
                "safety_concern",
                "reassurance",
                "formal_title",
                "threat",
                "insult",
                "profanity",
                "command",
            }:
                facts["acts"][cells[0]] = {"support": cells[2], "precision": cells[3], "recall": cells[4]}
    return facts
