"""The review app in a real browser: Debian's Chromium driven by Playwright, against the real server.

A trainer logs in, filters the queue, opens the flagged stop, plays the recording from a transcript line, confirms
the flag and exports a pack; a screenshot of the encounter page is saved (``BWC_SCREENSHOTS`` names a folder to keep
it in; otherwise it goes to the test's temporary folder).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REVIEW_PASSWORD, ReviewServer

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_until(page: object, function: str, arg: object = None, timeout_s: float = 30.0) -> None:
    """Poll a JavaScript predicate from Python. (Playwright's wait_for_function evaluates strings inside the page,
    which the app's Content-Security-Policy rightly forbids; evaluate() goes through the DevTools protocol.)"""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(function, arg):  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_s:.0f} s: {function}")
        time.sleep(0.1)


def test_trainer_reviews_a_flagged_stop_end_to_end(
    browser: object, review_server: ReviewServer, tmp_path: Path
) -> None:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(30_000)

    # Anonymous: sent to the login page; log in there and land back on the queue.
    page.goto(f"{review_server.url}/queue")
    assert "/login" in page.url
    page.fill("input[name=username]", "tess")
    page.fill("input[name=password]", REVIEW_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/queue")
    assert page.locator("table.queue tbody tr[data-encounter]").count() >= 2

    # Filter the queue to poor flags of officer B4712.
    page.select_option("select[name=flag]", "poor")
    page.select_option("select[name=officer]", "B4712")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**flag=poor**")
    rows = page.locator("table.queue tbody tr[data-encounter]")
    assert rows.count() >= 1
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.encounter)")) == {review_server.poor}
    assert page.locator("table.queue tbody .badge.exemplary").count() == 0

    # Open the encounter: transcript with roles and scores, the flag's reasons, an audio player.
    rows.first.locator("a.open").click()
    page.wait_for_url(f"**/encounters/{review_server.poor}")
    assert page.locator("section.flag.poor").count() == 1
    lines = page.locator("tr.line[data-start]")
    assert lines.count() >= 8
    wait_until(page, "() => document.getElementById('player').readyState >= 1")
    duration = page.evaluate("document.getElementById('player').duration")
    assert duration > 10

    # Play from a transcript line: the player jumps to that line's start and plays.
    line = lines.nth(4)
    start = float(line.get_attribute("data-start"))
    line.click()
    wait_until(
        page,
        "start => { const p = document.getElementById('player'); return !p.paused && p.currentTime >= start; }",
        start,
    )
    position = page.evaluate("document.getElementById('player').currentTime")
    assert start <= position < start + 3.0
    wait_until(page, "() => document.querySelector('tr.line.playing') !== null")

    screenshots = Path(os.environ.get("BWC_SCREENSHOTS", tmp_path))
    screenshots.mkdir(parents=True, exist_ok=True)
    shot = screenshots / "review-encounter.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    # Confirm the flag with a note.
    form = page.locator("section.flag.poor form.decide")
    form.locator("input[name=note]").fill("threat before any reason; use in de-escalation module")
    form.locator("button[value=confirmed]").click()
    page.wait_for_url(f"**/encounters/{review_server.poor}")
    decision = page.locator("[data-testid=decision-poor]").inner_text()
    assert "confirmed by tess" in decision and "de-escalation module" in decision

    # Export a pack of this encounter: a zip of its clips, transcript excerpt and manifest.
    with page.expect_download() as download_info:
        page.click("text=Export pack of this encounter")
    pack = tmp_path / "pack.zip"
    download_info.value.save_as(pack)
    with zipfile.ZipFile(pack) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        names = archive.namelist()
    (item,) = manifest["encounters"]
    assert item["encounter_id"] == review_server.poor and manifest["created_by"] == "tess"
    kinds = {clip["kind"] for clip in item["clips"]}
    assert kinds == {"audio", "video"} and all(clip["file"] in names for clip in item["clips"])

    # Reviewed flags leave the "not yet reviewed" queue.
    page.goto(f"{review_server.url}/queue?reviewed=no")
    assert review_server.poor not in page.locator("table.queue").inner_text()
    context.close()
    if os.environ.get("BWC_SCREENSHOTS"):
        shutil.copy(pack, screenshots / "review-pack.zip")
