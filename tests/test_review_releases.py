"""The review app's pages for open data releases: the drafts `bwc publish --draft` prepared, a draft's preview, and
its release by a supervisor or admin (audited with the package's SHA-256).

A small simulated department (24 officers, 4 months) is written as a real store with its stop data; each test
prepares its own draft for its own portal folder. The app is ``create_app`` on that store, driven with Starlette's
TestClient; the browser test serves it with the real ``bwc review serve`` and drives Debian's Chromium.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bwc.config import BwcConfig
from bwc.publish.release import Draft, draft_table, prepare
from bwc.publish.tables import PublishSettings
from bwc.research.simulate_department import simulate_department, simulate_stop_data, write_department_store
from bwc.review.app import create_app
from bwc.review.db import AuditEntry, ReviewDatabase
from tests.conftest import REVIEW_PASSWORD, serve_review
from tests.test_review_browser import browser  # noqa: F401  (the Chromium fixture)

pytestmark = pytest.mark.slow

USERS = {"sam": "supervisor", "ada": "admin", "tess": "trainer", "rory": "researcher"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
THROUGH = date(2025, 4, 30)  # the simulation's four months start in January 2025


@dataclass(frozen=True)
class Department:
    store: Path
    stops: Path
    database: ReviewDatabase
    portal: Path  # the one folder the store releases into

    def draft(self, out_dir: Path) -> Draft:
        """A new draft of the store's tables for portal folder ``out_dir``."""
        return prepare(self.store, out_dir, PublishSettings(through=THROUGH), self.stops, database=self.database)


@pytest.fixture(scope="module")
def department(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Department]:
    root = tmp_path_factory.mktemp("releases")
    simulated = simulate_department(n_officers=24, n_months=4, encounters_per_month=6, n_units=3, seed=5)
    write_department_store(simulated, root / "store")
    stops = root / "stops.csv"
    simulate_stop_data(simulated, seed=5).to_csv(stops, index=False)
    database = ReviewDatabase.for_store(root / "store")
    for username, role in USERS.items():
        database.add_user(username, role, REVIEW_PASSWORD)
    yield Department(root / "store", stops, database, root / "portal")
    database.close()


@pytest.fixture(scope="module")
def app(department: Department) -> object:
    return create_app(department.store, BwcConfig())


@pytest.fixture
def signed_in(app: object, signed_in_clients: Callable) -> Callable[[str], tuple[TestClient, str]]:
    """``signed_in(username)``: a TestClient logged in as that user and its session's CSRF token."""
    return lambda username: signed_in_clients(app, username)


def publish_entries(database: ReviewDatabase, draft: Draft) -> list[AuditEntry]:
    """The ``publish_release`` entries (newest first) that ``release`` wrote about ``draft``."""
    entries = database.audit_entries(action="publish_release")
    return [e for e in entries if e.object == f"draft:{draft.draft_id}" or f"draft {draft.draft_id}" in e.detail]


def files_under(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` (relative name -> modification time in ns); empty when there is no folder."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_trainers_and_researchers_may_not_see_or_release_drafts(
    department: Department, signed_in: Callable[[str], tuple[TestClient, str]], tmp_path: Path
) -> None:
    before = files_under(department.portal)
    draft = department.draft(department.portal)
    for username in ("tess", "rory"):
        client, token = signed_in(username)
        assert 'href="/releases"' not in client.get("/queue").text  # no nav link
        assert client.get("/releases").status_code == 403
        assert client.get(f"/releases/{draft.draft_id}").status_code == 403
        answer = client.post(f"/releases/{draft.draft_id}/release", data={"csrf_token": token, "sha256": draft.sha256})
        assert answer.status_code == 403
    assert files_under(department.portal) == before and draft.folder.is_dir()
    refused = [e for e in department.database.audit_entries(limit=20) if e.action == "release_draft"]
    assert {(e.username, e.outcome, e.status) for e in refused[:2]} == {
        ("tess", "refused", 403),
        ("rory", "refused", 403),
    }
    admin, _ = signed_in("ada")
    listing = admin.get("/releases")
    assert listing.status_code == 200 and draft.draft_id in listing.text
    assert '<a href="/releases">Releases</a>' in listing.text


def test_a_supervisor_previews_and_releases_a_draft(
    department: Department, signed_in: Callable[[str], tuple[TestClient, str]], tmp_path: Path
) -> None:
    out = department.portal
    draft = department.draft(out)
    client, token = signed_in("sam")

    listing = client.get("/releases")
    assert listing.status_code == 200
    assert f'href="/releases/{draft.draft_id}"' in listing.text and draft.sha256[:12] in listing.text
    assert '<a href="/releases">Releases</a>' in listing.text

    preview = client.get(f"/releases/{draft.draft_id}")
    assert preview.status_code == 200 and draft.sha256 in preview.text
    overall = draft_table(draft, "overall")
    first = overall.iloc[0]
    assert f"<td>{first['period']}</td><td>{first['period_start']}</td>" in preview.text  # a table row as published
    assert f"<td>{first['encounters']}</td>" in preview.text
    for table in [*draft.summary["tables"], "changes"]:
        assert f'data-table="{table}"' in preview.text
    changelog = (draft.package_dir / "CHANGELOG.md").read_text()
    assert html.escape(changelog.splitlines()[2]) in preview.text  # "## r001 (date, version 1.1.0)"
    assert 'data-testid="warnings"' in preview.text and "labels published for the first time" in preview.text
    assert f'action="/releases/{draft.draft_id}/release"' in preview.text

    # Without the session's token, or with another, nothing is released.
    assert client.post(f"/releases/{draft.draft_id}/release").status_code == 403
    assert client.post(f"/releases/{draft.draft_id}/release", data={"csrf_token": "x" * 43}).status_code == 403
    assert not out.exists() and draft.folder.is_dir()
    assert not publish_entries(department.database, draft)

    answer = client.post(f"/releases/{draft.draft_id}/release", data={"csrf_token": token, "sha256": draft.sha256})
    assert answer.status_code == 303 and answer.headers["location"] == "/releases?done=r001"
    assert (out / "datapackage.json").is_file() and (out / "releases" / "r001" / "SHA256SUMS").is_file()
    assert json.loads((out / "datapackage.json").read_text())["bwc"]["release"] == "r001"
    done = client.get(answer.headers["location"])
    assert f"released r001 (sha256 {draft.sha256})" in done.text
    assert 'data-release="r001"' in done.text and draft.draft_id not in done.text  # no longer a draft
    entries = publish_entries(department.database, draft)
    assert [(e.username, e.outcome, e.object, e.client) for e in entries] == [
        ("sam", "ok", "release:r001", "testclient")
    ]
    assert f"sha256 {draft.sha256}" in entries[0].detail and draft.draft_id in entries[0].detail
    request = department.database.audit_entries(action="release_draft", username="sam", limit=1)[0]
    assert request.outcome == "ok" and request.object == f"draft:{draft.draft_id}"

    # The same draft again: refused (it was released), nothing written; its preview is gone.
    written = files_under(out)
    again = client.post(f"/releases/{draft.draft_id}/release", data={"csrf_token": token, "sha256": draft.sha256})
    assert again.status_code == 404
    assert files_under(out) == written
    assert [(e.outcome, e.status) for e in publish_entries(department.database, draft)] == [("refused", 404), ("ok", 0)]
    assert client.get(f"/releases/{draft.draft_id}").status_code == 404


def test_unknown_drafts_are_not_found_and_the_url_cannot_make_the_page_speak(
    department: Department, signed_in: Callable[[str], tuple[TestClient, str]]
) -> None:
    client, token = signed_in("sam")
    for name in ("000000000000", "not-a-draft", "..%2F..%2Fstore", "ABCDEF012345"):
        assert client.get(f"/releases/{name}").status_code == 404, name
    assert client.post("/releases/000000000000/release", data={"csrf_token": token}).status_code == 404
    for done in ("r999", "<b>hello</b>", "r001%20(sha256%20forged)"):
        page = client.get(f"/releases?done={done}")
        assert page.status_code == 200 and 'data-testid="released"' not in page.text
        assert "hello" not in page.text and "forged" not in page.text


def test_a_drafts_words_are_escaped_and_a_changed_draft_is_refused(
    department: Department, signed_in: Callable[[str], tuple[TestClient, str]], tmp_path: Path
) -> None:
    out = department.portal
    before = files_under(out)
    draft = department.draft(out)
    with (draft.package_dir / "CHANGELOG.md").open("a") as changelog:
        changelog.write('\n<script>alert("changelog")</script>\n')
    record = json.loads((draft.folder / "draft.json").read_text())
    record["warnings"] = ['<img src=x onerror=alert("warning")> revised by +3 encounters']
    (draft.folder / "draft.json").write_text(json.dumps(record))
    client, token = signed_in("sam")

    preview = client.get(f"/releases/{draft.draft_id}").text
    assert "<script>alert" not in preview and "&lt;script&gt;alert(&#34;changelog&#34;)&lt;/script&gt;" in preview
    assert "<img src=x" not in preview and "&lt;img src=x onerror=alert(&#34;warning&#34;)&gt;" in preview
    assert "Warnings for the reviewer (1):" in preview

    answer = client.post(f"/releases/{draft.draft_id}/release", data={"csrf_token": token, "sha256": draft.sha256})
    assert answer.status_code == 409 and "changed after it was prepared" in answer.text
    assert files_under(out) == before and draft.folder.is_dir()
    entries = publish_entries(department.database, draft)
    assert [(e.username, e.outcome, e.status) for e in entries] == [("sam", "refused", 409)]
    assert "changed after it was prepared" in entries[0].detail


def test_only_the_reviewed_package_is_released(
    department: Department, signed_in: Callable[[str], tuple[TestClient, str]], tmp_path: Path
) -> None:
    """A form naming another SHA-256 (the page the reviewer saw was of another package) is refused; so is a draft
    whose files and checksums were both rewritten after it was prepared (the audit log kept the first SHA-256)."""
    out = department.portal
    before = files_under(out)
    draft = department.draft(out)
    client, token = signed_in("sam")
    answer = client.post(f"/releases/{draft.draft_id}/release", data={"csrf_token": token, "sha256": "0" * 64})
    assert answer.status_code == 409 and "not the package that was reviewed" in answer.text
    assert files_under(out) == before
    overall = draft.package_dir / "overall.csv"
    overall.write_text(overall.read_text().replace(",false,", ",true,", 1))
    names = sorted(path.name for path in draft.package_dir.iterdir() if path.name != "SHA256SUMS")
    sums = "".join(f"{hashlib.sha256((draft.package_dir / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    (draft.package_dir / "SHA256SUMS").write_text(sums)
    forged = hashlib.sha256(sums.encode()).hexdigest()
    record = json.loads((draft.folder / "draft.json").read_text()) | {"sha256": forged}
    (draft.folder / "draft.json").write_text(json.dumps(record))
    answer = client.post(f"/releases/{draft.draft_id}/release", data={"csrf_token": token, "sha256": forged})
    assert answer.status_code == 409 and "not the one the audit log recorded" in answer.text
    assert files_under(out) == before


def test_a_supervisor_releases_a_draft_in_chromium(
    browser: object,  # noqa: F811
    department: Department,
    tmp_path: Path,
) -> None:
    out = department.portal  # after the supervisor's release above: the next release of the same folder
    draft = department.draft(out)
    released = draft.release_id
    context = browser.new_context(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems: list[str] = []  # CSP violations are reported on the console; any error there fails the test
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    with serve_review(department.store) as url:
        page.goto(f"{url}/queue")
        page.fill("input[name=username]", "sam")
        page.fill("input[name=password]", REVIEW_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/queue")
        page.click("header nav >> text=Releases")
        page.wait_for_url("**/releases")
        page.click(f"tr[data-draft='{draft.draft_id}'] a.open")
        page.wait_for_url(f"**/releases/{draft.draft_id}")
        assert page.locator("[data-testid=sha256]").inner_text() == draft.sha256
        assert page.locator("section.release-table").count() == len(draft.summary["tables"]) + 1
        screenshots = Path(os.environ.get("BWC_SCREENSHOTS", tmp_path))
        screenshots.mkdir(parents=True, exist_ok=True)
        shot = screenshots / "review-release-preview.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        page.click("form.release button[type=submit]")
        page.wait_for_url(f"**/releases?done={released}")
        message = page.locator("[data-testid=released]").inner_text()
        assert message == f"released {released} (sha256 {draft.sha256})"
    assert (out / "datapackage.json").is_file() and (out / "releases" / released).is_dir()
    assert not problems, problems
    context.close()
