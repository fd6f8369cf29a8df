"""The supervisor pages for officer trends (early intervention): the officer list, one officer's page and its plots.

A simulated department (24 officers in four units, 12 months) is written as a real store by the real end of a run
(flags and ``officer_periods``), and ``officer_periods`` recomputed with a roster so that officers have units. The
app is ``create_app`` on that store, driven over HTTP with Starlette's TestClient; the browser test serves it with
the real ``bwc review serve`` and drives Debian's Chromium with Playwright.
"""

from __future__ import annotations

import io
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import httpx
import pandas as pd
import pytest
from matplotlib.text import Text
from PIL import Image
from scipy.stats import percentileofscore
from starlette.testclient import TestClient

from bwc.config import BwcConfig, EarlyWarningConfig
from bwc.pseudonym import store_pseudonymizer
from bwc.research.simulate_department import simulate_department, write_department_store
from bwc.review.app import create_app
from bwc.review.db import ReviewDatabase
from bwc.review.officers import FLAGGED_SHOWN, PLOTS, OfficerTrends
from bwc.store import Store
from scoring.officers import current_periods, officer_store
from tests.conftest import REVIEW_PASSWORD, serve_review
from tests.test_review_browser import browser  # noqa: F401  (the Chromium fixture)

pytestmark = pytest.mark.slow

USERS = {"sam": "supervisor", "tess": "trainer", "rory": "researcher", "ada": "admin"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ROW = re.compile(r'<tr data-officer="([^"]+)" data-unit="([^"]+)"')
IMG = re.compile(r'<img src="([^"]+)"')
ENCOUNTER_ID = re.compile(r"sim-\d{7}")  # every simulated encounter id
PSEUDONYM = re.compile(r"officer-[0-9a-f]{10}")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Department:
    """The simulated department's store and what the tests compare the pages with."""

    store: Path
    periods: pd.DataFrame  # officer_periods
    flags: pd.DataFrame
    current: pd.DataFrame  # each officer's row of the latest 90-day period (the default alert window)
    alerted: str  # an officer with an alert in that period


@pytest.fixture(scope="module")
def department(tmp_path_factory: pytest.TempPathFactory) -> Department:
    root = tmp_path_factory.mktemp("officers") / "store"
    simulated = simulate_department(n_officers=24, n_months=12, seed=3, encounters_per_month=5)
    write_department_store(simulated, root)
    # The run's end compared everyone with the department (no roster); with one, officers have units and peers.
    roster = root.parent / "roster.csv"
    simulated.officers[["officer_id", "unit"]].to_csv(roster, index=False)
    officer_store(Store(root), EarlyWarningConfig(roster=str(roster)))
    database = ReviewDatabase.for_store(root)
    for username, role in USERS.items():
        database.add_user(username, role, REVIEW_PASSWORD)
    database.close()
    store = Store(root)
    periods = store.read_parts("officer_periods")
    current = current_periods(periods, "90d")
    assert current["unit"].notna().all() and current["alert"].any(), "the department needs units and an alert"
    assert store.read_parts("flags")["encounter_id"].str.fullmatch(ENCOUNTER_ID).all()
    alerted = str(current.loc[current["alert"], "officer_id"].iloc[0])
    return Department(root, periods, store.read_parts("flags"), current, alerted)


@pytest.fixture(scope="module")
def app(department: Department) -> object:
    return create_app(department.store, BwcConfig())


@pytest.fixture
def signed_in(app: object, signed_in_clients: Callable) -> Callable[[str], object]:
    """``signed_in(username)``: a TestClient logged in as that user (closed after the test)."""
    return lambda username: signed_in_clients(app, username)[0]


def audit(store: Path) -> pd.DataFrame:
    with sqlite3.connect(store / "review.sqlite") as connection:
        return pd.read_sql("SELECT * FROM audit_log ORDER BY entry_id", connection)


def listed(page: str) -> list[tuple[str, str]]:
    """(officer label, unit) of every row of the officer list, in order."""
    return ROW.findall(page)


def assert_png(answer: httpx.Response) -> Image.Image:
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["content-type"] == "image/png" and answer.content.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(answer.content))
    image.load()  # decodes every pixel: a truncated or corrupt PNG fails here
    return image


# -- the list ---------------------------------------------------------------------------------------------------------
def test_supervisors_see_every_current_officer_alerts_first_with_the_advisory_note(
    department: Department, signed_in: object
) -> None:
    supervisor = signed_in("sam")  # type: ignore[operator]
    page = supervisor.get("/officers")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    text = page.text
    assert "advisory" in text and "not grounds for discipline and not a performance rating" in text
    assert '<a href="/officers">Officers</a>' in text  # the nav link
    rows = listed(text)
    assert {label for label, _ in rows} == set(department.current["officer_id"])
    alerted = set(department.current.loc[department.current["alert"], "officer_id"])
    assert {label for label, _ in rows[: len(alerted)]} == alerted  # alerts first by default
    assert f'href="/officers/{department.alerted}?window=90d' in text
    mine = department.current.set_index("officer_id").loc[department.alerted]
    assert f"{mine.respect_shrunk:+.2f}" in text and f"{mine.respect_low:+.2f} to {mine.respect_high:+.2f}" in text
    assert mine.alert_reasons.split("; ")[0].replace(">", "&gt;").replace("'", "&#39;") in text  # the reasons, escaped


def test_the_list_sorts_and_filters_on_the_server(department: Department, signed_in: object) -> None:
    supervisor = signed_in("sam")  # type: ignore[operator]
    current = department.current
    by_respect = [label for label, _ in listed(supervisor.get("/officers", params={"sort": "respect"}).text)]
    assert by_respect == list(current.sort_values("respect_shrunk")["officer_id"])
    by_encounters = listed(supervisor.get("/officers", params={"sort": "encounters"}).text)
    counts = current.set_index("officer_id")["encounters"]
    assert [counts[label] for label, _ in by_encounters] == sorted(counts, reverse=True)
    by_officer = [label for label, _ in listed(supervisor.get("/officers", params={"sort": "officer"}).text)]
    assert by_officer == sorted(current["officer_id"])
    # An unknown sort key is not an error: the default order (alerts first) is kept, and the key not repeated.
    unknown = supervisor.get("/officers", params={"sort": "password"})
    assert unknown.status_code == 200 and listed(unknown.text) == listed(supervisor.get("/officers").text)

    unit_1 = listed(supervisor.get("/officers", params={"unit": "unit-1"}).text)
    assert unit_1 and {unit for _, unit in unit_1} == {"unit-1"}
    assert {label for label, _ in unit_1} == set(current.loc[current["unit"] == "unit-1", "officer_id"])
    assert listed(supervisor.get("/officers", params={"unit": "no-such-unit"}).text) == []

    months = department.periods[department.periods["window"] == "month"]
    older = sorted(months["period"].unique())[3]  # a past month
    page = supervisor.get("/officers", params={"window": "month", "period": older, "sort": "respect"}).text
    expected = months[months["period"] == older].sort_values("respect_shrunk")
    assert [label for label, _ in listed(page)] == list(expected["officer_id"])
    assert f'<option value="{older}" selected>' in page
    latest_month = supervisor.get("/officers", params={"window": "month"}).text
    assert f'<option value="{months["period"].max()}" selected>' in latest_month

    for params in ({"window": "week"}, {"window": "90d", "period": older}, {"period": "2099-01"}):
        refused = supervisor.get("/officers", params=params)
        assert refused.status_code == 400, params
        assert "week" not in refused.text and "2099" not in refused.text  # nothing from the URL said back


# -- one officer ------------------------------------------------------------------------------------------------------
def test_an_officer_page_shows_the_alert_its_encounters_flags_peers_and_plots(
    department: Department, signed_in: object
) -> None:
    supervisor = signed_in("sam")  # type: ignore[operator]
    officer = department.alerted
    page = supervisor.get(f"/officers/{officer}")
    assert page.status_code == 200
    text = page.text
    row = department.current.set_index("officer_id").loc[officer]
    assert "Current alert" in text and "not grounds for discipline" in text
    for reason in row.alert_reasons.split("; "):
        assert reason.replace(">", "&gt;").replace("'", "&#39;") in text
    drivers = pd.read_json(io.StringIO(row.alert_encounters))[0].tolist()
    assert drivers and all(f'href="/encounters/{encounter}"' in text for encounter in drivers)
    assert supervisor.get(f"/encounters/{drivers[0]}").status_code == 200  # the link opens the encounter
    flagged = department.flags[department.flags["officer_id"] == officer].sort_values("recorded_at")
    assert len(flagged) > FLAGGED_SHOWN and f"Flagged encounters ({len(flagged)})" in text
    newest = flagged["encounter_id"].iloc[-FLAGGED_SHOWN:]
    assert re.findall(r'<tr class="flag-\w+" data-encounter="([^"]+)"', text) == list(newest[::-1])
    queue = supervisor.get(f"/queue?officer={officer}").text  # the rest are in the queue the page links to
    assert f'href="/queue?officer={officer}"' in text and f"{len(flagged)} flags" in queue
    # Peer comparison: their value, the peer group's mean and the percentile among the period's officers.
    assert f"{row.respect_shrunk:+.2f}" in text and f"{row.peer_respect:+.2f}" in text and row.peer_group in text
    percentile = percentileofscore(department.current["respect_shrunk"], row.respect_shrunk, kind="mean")
    assert re.search(rf"respect \(shrunk\)</td>.*?<td class=\"num\">{percentile:.0f}</td>", text, re.S)

    sources = [unquote(src.replace("&amp;", "&")) for src in IMG.findall(text)]
    assert [src.split("/plot/")[1].split(".png")[0] for src in sources] == list(PLOTS)
    for src in sources:
        image = assert_png(supervisor.get(src))
        assert image.size == (800, 320) and image.info["Title"].endswith(f": {officer}")
        assert supervisor.get(src).headers["cache-control"] == "private, no-store"
    month_plot = assert_png(supervisor.get(f"/officers/{officer}/plot/respect.png", params={"window": "month"}))
    assert month_plot.size == (800, 320)
    assert supervisor.get(f"/officers/{officer}/plot/secrets.png").status_code == 404


def test_an_officer_without_encounters_in_the_period_still_has_a_page_and_plots(
    department: Department, signed_in: object
) -> None:
    supervisor = signed_in("sam")  # type: ignore[operator]
    months = department.periods[department.periods["window"] == "month"]
    active = set(zip(months["officer_id"], months["period"], strict=True))
    officer, period = next((o, p) for o in sorted(set(months["officer_id"])) for p in sorted(set(months["period"]))
                           if (o, p) not in active)  # fmt: skip
    page = supervisor.get(f"/officers/{officer}", params={"window": "month", "period": period})
    assert page.status_code == 200 and "No encounters in this period." in page.text
    assert "No encounters in this period to compare." in page.text
    for name in PLOTS:
        params = {"window": "month", "period": period}
        assert_png(supervisor.get(f"/officers/{officer}/plot/{name}.png", params=params))


def test_a_store_without_officer_measures_says_so(tmp_path: Path) -> None:
    ReviewDatabase.for_store(tmp_path).add_user("sam", "supervisor", REVIEW_PASSWORD)
    with TestClient(create_app(tmp_path, BwcConfig()), follow_redirects=False) as supervisor:
        token = CSRF.search(supervisor.get("/login").text).group(1)
        supervisor.post("/login", data={"username": "sam", "password": REVIEW_PASSWORD, "csrf_token": token})
        page = supervisor.get("/officers")
        assert page.status_code == 200 and "No officer measures yet" in page.text and listed(page.text) == []
        assert supervisor.get("/officers/B1001").status_code == 404


def test_trainers_are_refused_the_list_the_pages_and_the_plots(department: Department, signed_in: object) -> None:
    trainer = signed_in("tess")  # type: ignore[operator]
    officer = department.alerted
    for path in ("/officers", f"/officers/{officer}", f"/officers/{officer}/plot/respect.png"):
        assert trainer.get(path).status_code == 403, path
    assert 'href="/officers"' not in trainer.get("/queue").text  # no nav link for a role that may not look
    anonymous = TestClient(create_app(department.store, BwcConfig()), follow_redirects=False)
    answer = anonymous.get(f"/officers/{officer}/plot/respect.png")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")


def test_researchers_see_pseudonyms_and_never_a_real_officer_or_encounter_id(
    department: Department, signed_in: object
) -> None:
    researcher = signed_in("rory")  # type: ignore[operator]
    pseudonym = store_pseudonymizer(department.store)
    real_officers = set(department.periods["officer_id"])
    bodies: list[bytes] = []

    def get(path: str, **params: str) -> httpx.Response:
        answer = researcher.get(path, params=params)
        bodies.append(answer.content)
        return answer

    listing = get("/officers")
    assert listing.status_code == 200
    labels = [label for label, _ in listed(listing.text)]
    assert sorted(labels) == sorted(pseudonym(officer) for officer in department.current["officer_id"])
    assert all(PSEUDONYM.fullmatch(label) for label in labels)
    assert "De-identified view" in listing.text
    # Units by keyed pseudonym too (a real unit name beside a stable officer pseudonym narrows a small unit down to
    # a few people); the filter takes the pseudonym the page offers.
    shown_units = {unit for _, unit in listed(listing.text)}
    assert shown_units == {pseudonym.of("unit", unit) for unit in department.current["unit"]}
    some_unit = sorted(shown_units)[0]
    filtered = listed(get("/officers", unit=some_unit).text)
    assert filtered and {unit for _, unit in filtered} == {some_unit}
    for sort in ("officer", "respect", "unit"):
        get("/officers", sort=sort, unit=some_unit)
    get("/officers", window="month")
    for label in labels:  # every officer's page
        page = get(f"/officers/{label}")
        assert page.status_code == 200 and label in page.text
    alerted = str(pseudonym(department.alerted))
    page = get(f"/officers/{alerted}").text
    for src in IMG.findall(page):
        image = assert_png(get(unquote(src.replace("&amp;", "&"))))
        assert image.info["Title"].endswith(f": {alerted}")  # the PNG's own text names the pseudonym
    # Flagged encounters link by pseudonym, and the link opens; reasons come without the words.
    links = re.findall(r'href="/encounters/(encounter-[0-9a-f]{10})"', page)
    assert links and get(f"/encounters/{links[0]}").status_code == 200
    assert "shut up" not in page and "(day)" in page
    # A real id in the URL is not found, so the URL cannot confirm that an officer exists.
    assert get(f"/officers/{department.alerted}").status_code == 404
    assert get(f"/officers/{department.alerted}/plot/respect.png").status_code == 404

    real_unit = re.compile(r"unit-\d(?![0-9a-f])")  # the simulated units are unit-1 .. unit-4
    for body in bodies:
        assert not real_unit.search(body.decode("latin-1"))
        assert not ENCOUNTER_ID.search(body.decode("latin-1"))
        assert not any(officer.encode() in body for officer in real_officers)
    # The plots' every text (titles, legends, ticks) names the officer by the label it was given, never the id.
    trends = OfficerTrends(Store(department.store), EarlyWarningConfig())
    selection = trends.choose("", "")
    for name in PLOTS:
        figure = trends.figure(department.alerted, name, selection, alerted)
        texts = " ".join(text.get_text() for text in figure.findobj(Text))
        assert not any(officer in texts for officer in real_officers), (name, texts)
        assert alerted in texts and not ENCOUNTER_ID.search(texts)


def test_admins_see_ids_but_no_words_and_no_encounter_links(department: Department, signed_in: object) -> None:
    admin = signed_in("ada")  # type: ignore[operator]
    page = admin.get(f"/officers/{department.alerted}").text
    assert department.alerted in page and "/encounters/" not in page  # admins cannot open encounter pages
    assert "shut up" not in page  # the identified reasons quote words; admins get the de-identified ones
    assert '<a href="/officers">Officers</a>' in admin.get("/admin/users").text


def test_every_view_is_audited_and_unknown_officers_are_not_found(department: Department, signed_in: object) -> None:
    supervisor = signed_in("sam")  # type: ignore[operator]
    researcher = signed_in("rory")  # type: ignore[operator]
    trainer = signed_in("tess")  # type: ignore[operator]
    officer = department.alerted
    label = str(store_pseudonymizer(department.store)(officer))
    before = int(audit(department.store)["entry_id"].max())
    assert supervisor.get("/officers", params={"unit": "unit-3", "sort": "respect"}).status_code == 200
    assert supervisor.get(f"/officers/{officer}").status_code == 200
    assert supervisor.get(f"/officers/{officer}/plot/peers.png").status_code == 200
    missing = supervisor.get("/officers/B9999")
    assert missing.status_code == 404 and "B9999" not in missing.text
    assert supervisor.get(f"/officers/{officer}/plot/nothing.png").status_code == 404
    assert researcher.get(f"/officers/{label}/plot/escalation.png").status_code == 200
    assert trainer.get(f"/officers/{officer}").status_code == 403
    entries = audit(department.store)
    entries = entries[entries["entry_id"] > before]
    got = [(row.username, row.action, row.outcome, row.object) for row in entries.itertuples()]
    assert got == [
        ("sam", "view_officers", "ok", "officers"),
        ("sam", "view_officer", "ok", f"officer:{officer}"),
        ("sam", "view_officer_plot", "ok", f"officer:{officer}"),
        ("sam", "view_officer", "not_found", "officer:B9999"),
        ("sam", "view_officer_plot", "not_found", f"officer:{officer}"),
        ("rory", "view_officer_plot", "ok", f"officer:{officer}"),  # the id behind the pseudonym, for the auditor
        ("tess", "view_officer", "refused", f"officer:{officer}"),
    ]
    details = entries["detail"].tolist()
    assert "unit unit-3" in details[0] and "sort respect" in details[0]
    assert details[2].startswith("peers plot") and details[4].startswith("nothing plot")
    assert details[5].endswith(f"as {label}")


# -- in a browser -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(department: Department) -> Iterator[str]:
    """The real ``bwc review serve`` on the department's store; its base URL."""
    with serve_review(department.store) as url:
        yield url


def test_a_supervisor_filters_the_officers_and_opens_one_in_chromium(
    browser: object,  # noqa: F811
    served: str,
    department: Department,
    tmp_path: Path,
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems: list[str] = []  # CSP violations are reported on the console; any error there fails the test
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(f"{served}/officers")
    assert "/login" in page.url
    page.fill("input[name=username]", "sam")
    page.fill("input[name=password]", REVIEW_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/officers")
    rows = page.locator("table.officers tbody tr[data-officer]")
    assert rows.count() == len(department.current)
    assert page.locator("[data-testid=advisory]").is_visible()

    unit = str(department.current.set_index("officer_id").loc[department.alerted, "unit"])
    page.select_option("select[name=unit]", unit)
    page.click("form.filters button[type=submit]")
    page.wait_for_url(f"**unit={unit}**")
    units = set(rows.evaluate_all("rows => rows.map(r => r.dataset.unit)"))
    assert units == {unit}
    assert rows.first.get_attribute("data-officer") == department.alerted  # alerts first
    screenshots = Path(os.environ.get("BWC_SCREENSHOTS", tmp_path))
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshots / "review-officers.png"), full_page=True)

    rows.first.locator("a.open").click()
    page.wait_for_url(f"**/officers/{department.alerted}?**")
    images = page.locator("section.trends img")
    assert images.count() == len(PLOTS)
    deadline = time.monotonic() + 30
    while not page.evaluate("() => [...document.images].every(i => i.complete)"):
        assert time.monotonic() < deadline, "the plots did not finish loading"
        time.sleep(0.1)
    widths = images.evaluate_all("images => images.map(i => i.naturalWidth)")
    assert all(width > 0 for width in widths), widths
    assert page.locator("[data-testid=alert] .badge.alert").count() == 1
    shot = screenshots / "review-officer.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000 and (screenshots / "review-officers.png").stat().st_size > 10_000
    assert not problems, problems
    context.close()
