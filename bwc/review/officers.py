"""The supervisor pages for officer trends (early intervention): the officer list, one officer's trends, flags, alert
and peer comparison, and the trend plots, all shaped from ``STORE/officer_periods`` (``scoring/officers.py``).

Alerts are advisory, for a supervisor's conversation with an officer: not discipline and not a performance rating.
The pages say so, and show the interval and the peer comparison next to every number, because a shrunk mean without
its uncertainty invites exactly the over-reading the method was built to avoid.

What a role may see is decided by the caller and handed in as a :class:`Disclosure`: every officer id, encounter id,
date and reason leaves this module through it (ids for supervisors and admins, the store's pseudonyms for
researchers), and plot titles are drawn from the same labels, so no rendered pixel or attribute carries an id the
viewer may not see.

Example
-------
>>> trends = OfficerTrends(Store("/data/bwc-store"), EarlyWarningConfig())      # doctest: +SKIP
>>> selection = trends.choose("", "")                                         # doctest: +SKIP
>>> listing = trends.listing(selection, unit="", sort="alerts", shown=disclosure)   # doctest: +SKIP
>>> png = trends.plot("B1001", "respect", selection, disclosure)                # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.stats import percentileofscore

from bwc.config import EarlyWarningConfig
from bwc.review.data import NotFound
from bwc.store import BEHAVIOUR_COLUMNS, SCHEMAS, Store
from scoring.officers import DEPARTMENT, WINDOWS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TABLE = "officer_periods"
TREND_WINDOW = "month"  # trends are drawn month by month, whatever window the page's current values use
WINDOW_NAMES = {"month": "calendar month", "90d": "90 days"}
PLOTS = {  # plot name -> alt text (the image's description for screen readers and broken images)
    "respect": "Respect (shrunk) by month with its interval and the peer mean",
    "escalation": "Escalation (shrunk) by month with its interval and the peer mean",
    "behaviours": "Share of encounters with each trained behaviour and with a hostile act, by month",
    "peers": "This officer's respect and escalation among every officer's in the period",
}
PLOT_SIZE = (8.0, 3.2)  # inches; at PLOT_DPI the <img> is 800 × 320
PLOT_DPI = 100
SHORT_NAMES = {"greeting_introduction": "greeting", "safety_concern": "safety", "formal_title": "title"}
# behaviour column -> its short name on the pages (every behaviour the store has, in the store's order)
BEHAVIOUR_LABELS = {name: SHORT_NAMES.get(name, name.replace("_", " ")) for name in BEHAVIOUR_COLUMNS}
ALERT_KINDS = {
    "respect_below_peers": "respect below peers",
    "respect_falling": "respect falling",
    "escalation_above_peers": "escalation above peers",
}
# sort key -> (what the page calls it, [(column, ascending), ...]); ties fall back on the officer's label.
SORTS: dict[str, tuple[str, list[tuple[str, bool]]]] = {
    "alerts": ("alerts first", [("alert", False), ("_strength", False)]),
    "officer": ("officer", []),
    "unit": ("unit", [("unit", True)]),
    "encounters": ("most encounters", [("encounters", False)]),
    "respect": ("lowest respect", [("respect_shrunk", True)]),
    "escalation": ("highest escalation", [("escalation_shrunk", False)]),
    "poor_share": ("highest poor share", [("poor_share", False)]),
    "change": ("largest fall in respect", [("respect_change", True)]),
}
DEFAULT_SORT = "alerts"
COMPARED = [  # (column, what the page calls it, "signed" | "plain" | "share")
    ("respect_shrunk", "respect (shrunk)", "signed"),
    ("escalation_shrunk", "escalation (shrunk)", "plain"),
    ("poor_share", "flagged poor", "share"),
    ("exemplary_share", "flagged exemplary", "share"),
    *[(f"rate_{name}", f"trained behaviour: {label}", "share") for name, label in BEHAVIOUR_LABELS.items()],
    ("hostile_share", "hostile act", "share"),
]
FLAGGED_SHOWN = 20  # newest flagged encounters on an officer's page; the queue, filtered by officer, has them all
_RENDER_LOCK = threading.Lock()  # matplotlib's font cache and text layout are not made for concurrent threads


class BadQuery(ValueError):
    """A query parameter outside what the page offers (the message never repeats what was sent)."""


@dataclass(frozen=True)
class Disclosure:
    """How one viewer sees ids, dates and reasons; every label on the officer pages goes through it.

    Attributes
    ----------
    identified
        Whether officer and encounter ids are shown as they are (supervisors, admins).
    officer
        officer id -> what the viewer sees (the id, or the store's pseudonym).
    encounter
        encounter id -> what the viewer sees, which is also what the encounter page's URL takes.
    date
        A recording time as the viewer may see it.
    reasons
        A ``flags`` row -> its reasons as the viewer may read them (with or without the words).
    opens
        encounter id -> whether the viewer may open that encounter's page (a link is drawn only then).
    unit
        unit name -> what the viewer sees (the name, or a keyed pseudonym: in a small unit, a real unit name beside
        a stable officer pseudonym narrows the officer down to a few people).
    """

    identified: bool
    officer: Callable[[str], str | None]
    encounter: Callable[[str], str]
    date: Callable[[Any], str]
    reasons: Callable[[Mapping[str, Any]], str]
    opens: Callable[[str], bool]
    unit: Callable[[str], str] = str


@dataclass(frozen=True)
class Selection:
    """Which window and period a page shows."""

    window: str  # month | 90d
    period: str | None  # a period label of that window; None when the store has no officer measures yet
    periods: tuple[str, ...]  # every period of the window, newest first
    period_end: pd.Timestamp | None  # first instant after the period

    def query(self, **more: str) -> str:
        """The query string that selects this window and period again (plus ``more``)."""
        return urlencode({"window": self.window, **({"period": self.period} if self.period else {}), **more})


@dataclass(frozen=True)
class OfficerList:
    """What the officer list shows."""

    selection: Selection
    rows: list[dict[str, Any]]
    units: list[str]  # units with officers in the period, for the filter
    unit: str  # the unit filtered on ("" = all)
    sort: str
    sort_links: dict[str, str]  # sort key -> href that sorts by it, other filters kept
    window_links: dict[str, str]  # window -> href of its latest period, other filters kept
    alerts: int  # rows with an alert
    interval: float  # coverage of the intervals shown
    sort_names: dict[str, str] = field(default_factory=lambda: {key: name for key, (name, _) in SORTS.items()})
    window_names: dict[str, str] = field(default_factory=lambda: dict(WINDOW_NAMES))


@dataclass(frozen=True)
class OfficerView:
    """What one officer's page shows."""

    label: str  # the officer as the viewer sees them
    selection: Selection
    current: dict[str, Any] | None  # the officer's row of the selected period, formatted; None: no encounters in it
    drivers: list[dict[str, Any]]  # the encounters that drove the current alert
    flagged: list[dict[str, Any]]  # the officer's newest flagged encounters (FLAGGED_SHOWN at most), newest first
    flagged_total: int  # all of them
    queue_href: str  # the flag queue filtered to this officer
    comparison: list[dict[str, Any]]  # their values next to the peer group's and the department's
    plots: list[dict[str, str]]  # name, src, alt
    months: int  # months with encounters (the trend's length)
    interval: float
    window_links: dict[str, str] = field(default_factory=dict)  # window -> href of the page in its latest period
    window_names: dict[str, str] = field(default_factory=lambda: dict(WINDOW_NAMES))


class OfficerTrends:
    """The officer measures of one store, as the review app's supervisor pages show them.

    Parameters
    ----------
    store
        The store (``officer_periods`` is recomputed at the end of every ``bwc run`` and ``bwc flag``).
    config
        ``config.early_warning``: the default window (``alert_window``) and the intervals' coverage.
    """

    def __init__(self, store: Store, config: EarlyWarningConfig) -> None:
        self.store = store
        self.config = config
        self._lock = threading.Lock()
        self._cached: tuple[tuple[tuple[str, int, int], ...], pd.DataFrame] | None = None

    # -- the table ------------------------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """``officer_periods``, read again only when its files changed (a page and its four plots read it five
        times)."""
        files = sorted(self.store.table_path(TABLE).glob("part-*.parquet"))
        signature = tuple((path.name, path.stat().st_mtime_ns, path.stat().st_size) for path in files)
        with self._lock:
            if self._cached is None or self._cached[0] != signature:
                self._cached = (signature, self.store.read_parts(TABLE))
            return self._cached[1]

    def choose(self, window: str, period: str) -> Selection:
        """The window (``""``: ``alert_window``) and period (``""``: the latest) a page asked for.

        Raises
        ------
        BadQuery
            For a window other than ``month``/``90d`` or a period the window does not have.
        """
        window = window or self.config.alert_window
        if window not in WINDOWS:
            raise BadQuery(f"window must be one of {', '.join(WINDOWS)}")
        rows = self.table()
        rows = rows[rows["window"] == window]
        ends = rows.drop_duplicates("period").set_index("period")["period_end"].sort_values(ascending=False)
        periods = tuple(str(label) for label in ends.index)
        if period and period not in periods:
            raise BadQuery(f"no such period in the {window} window: choose one from the list")
        chosen = period or (periods[0] if periods else None)
        return Selection(window, chosen, periods, ends[chosen] if chosen else None)

    def resolve(self, label: str, shown: Disclosure) -> str:
        """The officer id a URL names: the id itself (identified views) or its pseudonym (de-identified views, where
        a real id is not found, so the URL cannot confirm one).

        Raises
        ------
        NotFound
            When no officer in the table has that label.
        """
        for officer_id in self.table()["officer_id"].dropna().unique():
            if shown.officer(str(officer_id)) == label:
                return str(officer_id)
        raise NotFound("no such officer")

    def view(self, shown: Disclosure | None) -> pd.DataFrame:
        """The table as ``shown`` may see it: unit names (in ``unit``, ``peer_group`` and the alert reasons) through
        :attr:`Disclosure.unit` for de-identified views; as it is otherwise."""
        table = self.table()
        if shown is None or shown.identified or table.empty:
            return table
        table = table.copy()
        units = sorted({str(u) for u in table["unit"].dropna()}, key=len, reverse=True)  # "North East" before "North"
        names = {unit: shown.unit(unit) for unit in units}
        groups = {f"{self.config.peer_group} {unit}": f"{self.config.peer_group} {names[unit]}" for unit in units}
        table["unit"] = table["unit"].map(names)
        table["peer_group"] = table["peer_group"].map(lambda group: groups.get(group, group))
        reasons = table["alert_reasons"].fillna("")
        for group, shown_group in groups.items():
            reasons = reasons.str.replace(group, shown_group, regex=False)
        table["alert_reasons"] = reasons
        return table

    def _period_rows(self, selection: Selection, shown: Disclosure | None = None) -> pd.DataFrame:
        table = self.view(shown)
        return table[(table["window"] == selection.window) & (table["period"] == selection.period)].reset_index(
            drop=True
        )

    # -- the list -------------------------------------------------------------------------------------------------
    def listing(self, selection: Selection, unit: str, sort: str, shown: Disclosure) -> OfficerList:
        """Every officer with encounters in the selected period, filtered by unit and sorted (an unknown sort key
        gives the default: alerts first)."""
        sort = sort if sort in SORTS else DEFAULT_SORT
        rows = self._period_rows(selection, shown)
        units = sorted({str(u) for u in rows["unit"].dropna()})
        if unit:
            rows = rows[rows["unit"] == unit]
        rows = _sorted(rows, sort, shown)
        shaped = [self._row(row, selection, shown) for row in rows.to_dict("records")]
        keep = {"unit": unit} if unit else {}
        return OfficerList(
            selection=selection,
            rows=shaped,
            units=units,
            unit=unit,
            sort=sort,
            sort_links={key: "/officers?" + selection.query(**keep, sort=key) for key in SORTS},
            window_links={w: "/officers?" + urlencode({"window": w, **keep, "sort": sort}) for w in WINDOWS},
            alerts=sum(row["alert"] for row in shaped),
            interval=self.config.interval,
        )

    def _row(self, row: Mapping[str, Any], selection: Selection, shown: Disclosure) -> dict[str, Any]:
        """One officer-period row with every number formatted for the page."""
        label = shown.officer(str(row["officer_id"])) or "—"
        return {
            "label": label,
            "href": f"/officers/{quote(label, safe='')}?{selection.query()}",
            "unit": str(row["unit"]) if _present(row.get("unit")) else "—",  # null (NaN) without a roster
            "peer_group": str(row["peer_group"]) if _present(row.get("peer_group")) else "—",
            "encounters": int(row["encounters"]),
            "baseline_encounters": int(row.get("baseline_encounters") or 0),
            "respect": _signed(row["respect_shrunk"]),
            "respect_interval": _interval(row["respect_low"], row["respect_high"], _signed),
            "peer_respect": _signed(row["peer_respect"]),
            "escalation": _plain(row["escalation_shrunk"]),
            "escalation_interval": _interval(row["escalation_low"], row["escalation_high"], _plain),
            "peer_escalation": _plain(row["peer_escalation"]),
            "poor_share": _share(row["poor_share"]),
            "poor_interval": _interval(row["poor_share_low"], row["poor_share_high"], _share),
            "behaviours": [(name, _share(row[f"rate_{column}"])) for column, name in BEHAVIOUR_LABELS.items()],
            "change": _signed(row.get("respect_change")),
            "change_interval": _interval(row.get("respect_change_low"), row.get("respect_change_high"), _signed),
            "alert": bool(row.get("alert")),
            "alert_kinds": [ALERT_KINDS.get(kind, kind) for kind in _split(row.get("alert_kinds"))],
            "alert_reasons": _split(row.get("alert_reasons")),
        }

    # -- one officer ----------------------------------------------------------------------------------------------
    def officer(
        self,
        officer_id: str,
        selection: Selection,
        flags: pd.DataFrame,
        decisions: Mapping[tuple[str, str], str],
        shown: Disclosure,
    ) -> OfficerView:
        """One officer's page: the selected period's values and alert, what drove it, their flagged encounters,
        the peer comparison and the plots.

        Parameters
        ----------
        officer_id
            The officer (as :meth:`resolve` found them).
        selection
            Window and period of the current values (the trends run month by month up to its end).
        flags
            The store's ``flags`` rows.
        decisions
            (encounter id, flag) -> the review decision, for flags already reviewed.
        shown
            How the viewer sees ids, dates and reasons.
        """
        label = shown.officer(officer_id) or "—"
        period_rows = self._period_rows(selection, shown)
        mine = period_rows[period_rows["officer_id"] == officer_id]
        current = self._row(mine.iloc[0].to_dict(), selection, shown) if len(mine) else None
        drivers = []
        if len(mine) and mine.iloc[0]["alert"]:
            drivers = self._drivers(json.loads(mine.iloc[0]["alert_encounters"] or "[]"), shown)
        own = flags[flags["officer_id"] == officer_id].sort_values(["recorded_at", "encounter_id"], ascending=False)
        flagged = [
            {
                **_link(str(row["encounter_id"]), shown),
                "flag": row["flag"],
                "percentile": f"{row['percentile']:.0f}",
                "recorded": shown.date(row.get("recorded_at")),
                "why": shown.reasons(row),
                "decision": decisions.get((row["encounter_id"], row["flag"]), ""),
            }
            for row in own.head(FLAGGED_SHOWN).to_dict("records")
        ]
        table = self.view(shown)
        months = table[(table["officer_id"] == officer_id) & (table["window"] == TREND_WINDOW)]
        base = f"/officers/{quote(label, safe='')}"
        return OfficerView(
            label=label,
            selection=selection,
            current=current,
            drivers=drivers,
            flagged=flagged,
            flagged_total=len(own),
            queue_href=f"/queue?{urlencode({'officer': label})}",
            comparison=_comparison(period_rows, mine.iloc[0] if len(mine) else None),
            plots=[
                {"name": name, "src": f"{base}/plot/{name}.png?{selection.query()}", "alt": alt}
                for name, alt in PLOTS.items()
            ],
            months=len(months),
            interval=self.config.interval,
            window_links={w: f"{base}?{urlencode({'window': w})}" for w in WINDOWS},
        )

    def _drivers(self, encounter_ids: list[str], shown: Disclosure) -> list[dict[str, Any]]:
        """The alert's encounters with their own respect, escalation and time (read by id, not the whole table)."""
        if not encounter_ids:
            return []
        folder = self.store.table_path("encounter_scores")
        scores = pd.DataFrame(columns=["encounter_id", "recorded_at", "respect", "escalation"])
        if any(folder.glob("part-*.parquet")):
            scores = pq.read_table(
                folder,
                schema=SCHEMAS["encounter_scores"],
                columns=["encounter_id", "recorded_at", "respect", "escalation"],
                filters=[("encounter_id", "in", encounter_ids)],
            ).to_pandas()
        found = scores.drop_duplicates("encounter_id", keep="last").set_index("encounter_id")
        out = []
        for encounter_id in encounter_ids:
            row = found.loc[encounter_id] if encounter_id in found.index else None
            out.append(
                {
                    **_link(encounter_id, shown),
                    "recorded": shown.date(row["recorded_at"] if row is not None else None),
                    "respect": _signed(row["respect"] if row is not None else None),
                    "escalation": _plain(row["escalation"] if row is not None else None),
                }
            )
        return out

    # -- plots ----------------------------------------------------------------------------------------------------
    def plot(self, officer_id: str, name: str, selection: Selection, shown: Disclosure) -> bytes:
        """A PNG of one of :data:`PLOTS` for the officer, titled with the label the viewer sees.

        Raises
        ------
        NotFound
            For a plot name not in :data:`PLOTS`.
        """
        label = shown.officer(officer_id) or "—"
        figure = self.figure(officer_id, name, selection, _plain_text(label), shown)
        # The PNG names what it shows in its Title text chunk, by the viewer's label as the drawn title does: the
        # file says in plain bytes whom it is about (and a test can read that it says no more).
        metadata = {"Title": f"{PLOTS[name]}: {label}", "Software": None}
        buffer = io.BytesIO()
        with _RENDER_LOCK:
            figure.savefig(buffer, format="png", dpi=PLOT_DPI, metadata=metadata)
        return buffer.getvalue()

    def figure(
        self, officer_id: str, name: str, selection: Selection, label: str, shown: Disclosure | None = None
    ) -> Figure:
        """The matplotlib figure behind :meth:`plot` (its texts can be inspected: none of them names the officer
        other than by ``label``)."""
        if name not in PLOTS:
            raise NotFound("no such plot")
        from matplotlib.figure import Figure  # imported on first use: most requests draw nothing

        table = self.view(shown)
        months = table[(table["officer_id"] == officer_id) & (table["window"] == TREND_WINDOW)]
        if selection.period_end is not None:
            months = months[months["period_end"] <= selection.period_end]
        months = months.sort_values("period_start")
        with _RENDER_LOCK:
            figure = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI, layout="constrained")
            if name == "peers":
                _peers_plot(figure, self._period_rows(selection, shown), officer_id, label, selection)
            elif name == "behaviours":
                _behaviours_plot(figure, months, label)
            else:
                _trend_plot(figure, months, name, label, self.config.interval)
        return figure


# -- shaping helpers --------------------------------------------------------------------------------------------------
def _sorted(rows: pd.DataFrame, sort: str, shown: Disclosure) -> pd.DataFrame:
    """Rows in the order of ``sort``; ties (and the ``officer`` sort) by the label the viewer sees, so that a
    researcher's order does not follow the hidden ids."""
    rows = rows.copy()
    rows["_label"] = [shown.officer(str(officer)) or "" for officer in rows["officer_id"]]
    # How strong the evidence of a concern is: the largest of the alert probabilities (falling may be missing).
    rows["_strength"] = rows[["p_respect_below", "p_escalation_above", "p_respect_falling"]].max(axis=1, skipna=True)
    keys = [*SORTS[sort][1], ("_label", True)]
    return rows.sort_values(
        [column for column, _ in keys], ascending=[up for _, up in keys], na_position="last", kind="stable"
    )


def _comparison(period_rows: pd.DataFrame, mine: pd.Series | None) -> list[dict[str, Any]]:
    """Per measure: the officer's value (and interval), their peer group's (encounter-weighted, as the peer means of
    ``officer_periods`` are), the department's median and 10th–90th percentiles over officers, and the officer's
    percentile among them."""
    if mine is None:
        return []
    # the same peers as officer_periods' peer means: the officer's unit, or (for "department") every officer; the
    # officer themself left out
    group = period_rows if mine["peer_group"] == "department" else period_rows[period_rows["unit"] == mine["unit"]]
    peers = group[group["officer_id"] != mine["officer_id"]]
    if peers.empty:
        peers = group
    formats = {"signed": _signed, "plain": _plain, "share": _share}
    out = []
    for column, name, kind in COMPARED:
        shown = formats[kind]
        values = period_rows[column].dropna().to_numpy(dtype=float)
        if column == "respect_shrunk":
            peer_value = mine["peer_respect"]
        elif column == "escalation_shrunk":
            peer_value = mine["peer_escalation"]
        else:
            weights = peers["encounters"].to_numpy(dtype=float)
            peer_value = float(np.average(peers[column].to_numpy(dtype=float), weights=weights))
        stem = column.removesuffix("_shrunk")
        out.append(
            {
                "measure": name,
                "value": shown(mine[column]),
                "interval": _interval(mine.get(f"{stem}_low"), mine.get(f"{stem}_high"), shown),
                "peer": shown(peer_value),
                "median": shown(float(np.median(values))) if values.size else "—",
                "range": _interval(*np.percentile(values, [10, 90]), shown) if values.size else "—",
                "percentile": f"{percentileofscore(values, float(mine[column]), kind='mean'):.0f}"
                if values.size and _present(mine[column])
                else "—",
            }
        )
    return out


def _plain_text(text: str) -> str:
    """Text for a matplotlib label as it is: "$" would start mathtext (a pair of them in a unit name or an officer id
    made the plot fail), and a legend drops labels that begin with "_"."""
    return text.replace("$", r"\$").lstrip("_") or text


def _link(encounter_id: str, shown: Disclosure) -> dict[str, Any]:
    label = shown.encounter(encounter_id)
    return {"label": label, "href": f"/encounters/{quote(label, safe='')}" if shown.opens(encounter_id) else None}


def _split(text: Any) -> list[str]:
    return [part for part in str(text).split("; ") if part] if _present(text) else []


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and value is not pd.NA


def _signed(value: Any) -> str:
    return f"{float(value):+.2f}" if _present(value) else "—"


def _plain(value: Any) -> str:
    return f"{float(value):.2f}" if _present(value) else "—"


def _share(value: Any) -> str:
    return f"{100 * float(value):.0f}%" if _present(value) else "—"


def _interval(low: Any, high: Any, shown: Callable[[Any], str]) -> str:
    return f"{shown(low)} to {shown(high)}" if _present(low) and _present(high) else ""


# -- drawing ----------------------------------------------------------------------------------------------------------
INK, PEER, BAND, ALERT = "#1f3a5f", "#8a5a00", "#9db4d3", "#b3261e"


def _months(rows: pd.DataFrame) -> Any:
    """Period starts as naive UTC datetimes (matplotlib's date axis)."""
    return pd.to_datetime(rows["period_start"], utc=True).dt.tz_localize(None).to_numpy()


def _date_axis(axes: Any) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.grid(True, color="#e3e3e3", linewidth=0.6)


def _trend_plot(figure: Figure, months: pd.DataFrame, measure: str, label: str, interval: float) -> None:
    """The shrunk monthly measure with its interval band and the peer group's mean; alert months marked."""
    axes = figure.add_subplot()
    axes.set_title(f"{measure.capitalize()} by month: {label}", loc="left", fontsize=11)
    if months.empty:
        axes.text(0.5, 0.5, "no encounters", ha="center", va="center", transform=axes.transAxes)
        return
    x = _months(months)
    axes.fill_between(x, months[f"{measure}_low"], months[f"{measure}_high"], color=BAND, alpha=0.5,
                      linewidth=0, label=f"{interval:.0%} interval")  # fmt: skip
    axes.plot(x, months[f"{measure}_shrunk"], color=INK, marker="o", markersize=3.5, label=f"{measure} (shrunk)")
    axes.plot(x, months[f"peer_{measure}"], color=PEER, linestyle="--", linewidth=1.2, label="peer mean")
    alerted = months["alert"].fillna(False).astype(bool).to_numpy()
    if alerted.any():
        axes.scatter(x[alerted], months.loc[alerted, f"{measure}_shrunk"], color=ALERT, zorder=3, s=30,
                     label="alert")  # fmt: skip
    axes.set_ylabel("corpus SDs" if measure == "respect" else "0 to 1")
    _date_axis(axes)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def _behaviours_plot(figure: Figure, months: pd.DataFrame, label: str) -> None:
    """Monthly share of encounters with each trained behaviour, and with a hostile act (dashed)."""
    from matplotlib.ticker import PercentFormatter

    axes = figure.add_subplot()
    axes.set_title(f"Trained behaviours and hostile acts by month: {label}", loc="left", fontsize=11)
    if months.empty:
        axes.text(0.5, 0.5, "no encounters", ha="center", va="center", transform=axes.transAxes)
        return
    x = _months(months)
    for column, name in BEHAVIOUR_LABELS.items():
        axes.plot(x, months[f"rate_{column}"], marker="o", markersize=3, linewidth=1.2, label=name)
    axes.plot(x, months["hostile_share"], color=ALERT, linestyle="--", linewidth=1.4, label="hostile act")
    axes.set_ylim(-0.03, 1.03)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_ylabel("share of encounters")
    _date_axis(axes)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def _peers_plot(figure: Figure, period_rows: pd.DataFrame, officer_id: str, label: str, selection: Selection) -> None:
    """Every officer's shrunk respect and escalation in the period as dots (unlabelled: other officers are not named
    in one officer's plot; the officer's peer group darker), this officer's with its interval, and the peer mean."""
    figure.suptitle(f"{label} among {len(period_rows)} officers: {selection.period}", x=0.01, ha="left", fontsize=11)
    mine = period_rows[period_rows["officer_id"] == officer_id]
    group = mine["peer_group"].iloc[0] if len(mine) else None
    in_group = (period_rows["peer_group"] == group).to_numpy()
    others = (period_rows["officer_id"] != officer_id).to_numpy()  # the officer is drawn apart, with an interval
    spread = np.random.default_rng(0).uniform(-0.25, 0.25, len(period_rows))  # fixed jitter: the same picture
    for index, measure in enumerate(("respect", "escalation")):
        axes = figure.add_subplot(1, 2, index + 1)
        axes.set_title(f"{measure} (shrunk)", fontsize=10)
        values = period_rows[f"{measure}_shrunk"].to_numpy(dtype=float)
        if group is not None and group != DEPARTMENT:
            outside, inside = others & ~in_group, others & in_group
            axes.scatter(values[outside], spread[outside], color="#cfcfcf", s=18, label="other officers")
            axes.scatter(values[inside], spread[inside], color="#7d7d7d", s=18, label=f"others in {_plain_text(group)}")
        else:
            axes.scatter(values[others], spread[others], color="#9a9a9a", s=18, label="other officers")
        if len(mine):
            row = mine.iloc[0]
            axes.errorbar([row[f"{measure}_shrunk"]], [0.0],
                          xerr=[[row[f"{measure}_shrunk"] - row[f"{measure}_low"]],
                                [row[f"{measure}_high"] - row[f"{measure}_shrunk"]]],
                          fmt="o", color=INK, capsize=4, markersize=7, label="this officer")  # fmt: skip
            axes.axvline(row[f"peer_{measure}"], color=PEER, linestyle="--", linewidth=1.2, label="peer mean")
        axes.set_ylim(-0.6, 0.6)
        axes.set_yticks([])
        axes.grid(True, axis="x", color="#e3e3e3", linewidth=0.6)
        if index == 0:
            figure.legend(loc="outside lower center", fontsize=8, frameon=False, ncols=4)
