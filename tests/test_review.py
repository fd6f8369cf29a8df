"""The review app over HTTP: every auth and role rule, CSRF, traversal, range requests, the audit log, packs.

The server is the real ``bwc review serve`` on a real store (see ``review_server`` in conftest.py); requests are
made with httpx exactly as a browser or a script would.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import re
import sqlite3
import subprocess
import sys
import zipfile

import httpx
import pandas as pd
import pytest

from bwc.audio import sha256_file
from tests.conftest import REVIEW_PASSWORD, ReviewServer

pytestmark = pytest.mark.slow

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def client(server: ReviewServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, follow_redirects=False, timeout=60)


def log_in(server: ReviewServer, username: str) -> tuple[httpx.Client, str]:
    """A client logged in as ``username`` and its session's CSRF token."""
    browser = client(server)
    page = browser.get("/login")
    answer = browser.post(
        "/login",
        data={"username": username, "password": REVIEW_PASSWORD, "csrf_token": CSRF.search(page.text).group(1)},
    )
    assert answer.status_code == 303 and "error" not in answer.headers["location"], answer.headers
    queue = browser.get("/queue" if username != "ada" else "/admin/users")
    return browser, CSRF.search(queue.text).group(1)


def audit(server: ReviewServer) -> pd.DataFrame:
    with sqlite3.connect(server.store / "review.sqlite") as connection:
        return pd.read_sql("SELECT * FROM audit_log ORDER BY entry_id", connection)


def test_flags_table_names_the_scripted_stops(review_server: ReviewServer) -> None:
    flags = pd.read_parquet(review_server.store / "flags")
    poor = flags[flags.encounter_id == review_server.poor]
    exemplary = flags[flags.encounter_id == review_server.exemplary]
    assert list(poor.flag) == ["poor"] and list(exemplary.flag) == ["exemplary"]
    assert "dude" in poor.reasons.iloc[0] or "regret" in poor.reasons.iloc[0]
    spans = json.loads(poor.spans.iloc[0])
    assert spans and all(span["recording_id"] == review_server.recordings[review_server.poor] for span in spans)
    clips = pd.read_parquet(review_server.store / "clips")
    mine = clips[clips.encounter_id == review_server.poor]
    assert set(mine.kind) == {"audio", "video"}  # the hostile stop's original is a video


@pytest.mark.parametrize(
    "path",
    ["/", "/queue", "/encounters/demo-002", "/audio/0123456789abcdef", "/clips/0123456789abcdef", "/exemplars",
     "/admin/users", "/admin/audit", "/admin/audit.csv"],
)  # fmt: skip
def test_anonymous_page_views_go_to_the_login_page(review_server: ReviewServer, path: str) -> None:
    answer = client(review_server).get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize(
    "path", ["/encounters/demo-002/decision", "/encounters/demo-002/exemplar", "/exemplars/export", "/admin/users",
             "/logout"]
)  # fmt: skip
def test_anonymous_posts_are_refused(review_server: ReviewServer, path: str) -> None:
    answer = client(review_server).post(path, data={"flag": "poor", "decision": "confirmed"})
    assert answer.status_code == 401


def test_only_login_and_static_assets_are_public(review_server: ReviewServer) -> None:
    anonymous = client(review_server)
    assert anonymous.get("/login").status_code == 200
    assert anonymous.get("/static/review.css").status_code == 200
    assert anonymous.get("/static/review.js").status_code == 200
    assert anonymous.get("/static/app.py").status_code == 404
    page = anonymous.get("/login")
    assert "Content-Security-Policy" in page.headers and page.headers["X-Frame-Options"] == "DENY"


def test_login_needs_the_right_password_and_its_own_csrf_token(review_server: ReviewServer) -> None:
    browser = client(review_server)
    token = CSRF.search(browser.get("/login").text).group(1)
    wrong = browser.post("/login", data={"username": "tess", "password": "not the password", "csrf_token": token})
    assert wrong.status_code == 303 and "error=" in wrong.headers["location"]
    assert browser.get("/queue").status_code == 303  # still not logged in
    forged = client(review_server).post(  # a cross-site form post carries no login cookie
        "/login", data={"username": "tess", "password": REVIEW_PASSWORD, "csrf_token": token}
    )
    assert forged.status_code == 403
    entries = audit(review_server)
    refused = entries[(entries.action == "login") & (entries.outcome == "refused")]
    assert (refused.object == "user:tess").any()  # the wrong password
    assert refused.detail.str.contains("CSRF token missing").any()  # the forged post, refused before its body


@pytest.mark.parametrize(
    ("username", "allowed", "refused"),
    [
        ("tess", ["/queue", "/encounters/demo-002", "/exemplars"], ["/admin/users", "/admin/audit.csv"]),
        ("sam", ["/queue", "/encounters/demo-001", "/exemplars"], ["/admin/users", "/admin/audit"]),
        ("rory", ["/queue"], ["/exemplars", "/admin/users", "/admin/audit.csv"]),
        ("ada", ["/admin/users", "/admin/audit", "/admin/audit.csv"], ["/queue", "/encounters/demo-002", "/exemplars"]),
    ],
)  # fmt: skip
def test_roles(review_server: ReviewServer, username: str, allowed: list[str], refused: list[str]) -> None:
    browser, _ = log_in(review_server, username)
    for path in allowed:
        assert browser.get(path).status_code == 200, (username, path)
    for path in refused:
        assert browser.get(path).status_code == 403, (username, path)


def test_researchers_see_pseudonyms_and_no_audio_or_words(review_server: ReviewServer) -> None:
    researcher, token = log_in(review_server, "rory")
    queue = researcher.get("/queue").text
    assert "B4712" not in queue and re.search(r"officer-[0-9a-f]{10}", queue)
    assert review_server.poor not in queue and researcher.get(f"/encounters/{review_server.poor}").status_code == 404
    pseudonyms = re.findall(r'href="/encounters/(encounter-[0-9a-f]{10})"', queue)
    pages = [researcher.get(f"/encounters/{label}").text for label in pseudonyms]
    page = next(text for text in pages if "poor" in text and "threat" in text)
    assert "<audio" not in page and "dude" not in page and "regret" not in page and "EV7002" not in page
    assert "words withheld" in page
    recording = review_server.recordings[review_server.poor]
    assert researcher.get(f"/audio/{recording}").status_code == 403
    clip_id = pd.read_parquet(review_server.store / "clips").clip_id.iloc[0]
    assert researcher.get(f"/clips/{clip_id}").status_code == 403
    answer = researcher.post(
        f"/encounters/{review_server.poor}/decision", data={"flag": "poor", "decision": "rejected", "csrf_token": token}
    )
    assert answer.status_code == 403
    pseudonym = re.search(r"officer-[0-9a-f]{10}", queue).group(0)
    filtered = researcher.get("/queue", params={"officer": pseudonym}).text
    assert pseudonym in filtered


def test_trainers_see_the_transcript_with_scores_and_reasons(review_server: ReviewServer) -> None:
    trainer, _ = log_in(review_server, "tess")
    page = trainer.get(f"/encounters/{review_server.poor}").text
    recording = review_server.recordings[review_server.poor]
    assert f'src="/audio/{recording}"' in page
    assert "Don&#39;t ask me questions, dude." in page and "B4712" in page
    assert page.count('class="line role-officer') >= 5 and "data-start=" in page
    assert re.search(r"threat|command", page)


def test_every_form_post_needs_the_sessions_csrf_token(review_server: ReviewServer) -> None:
    trainer, token = log_in(review_server, "sam")
    target = f"/encounters/{review_server.poor}/decision"
    form = {"flag": "poor", "decision": "rejected", "note": "csrf probe"}
    assert trainer.post(target, data=form).status_code == 403
    assert trainer.post(target, data=form | {"csrf_token": "forged"}).status_code == 403
    _other, other_token = log_in(review_server, "tess")
    assert trainer.post(target, data=form | {"csrf_token": other_token}).status_code == 403  # another session's
    assert "csrf probe" not in trainer.get(f"/encounters/{review_server.poor}").text
    assert trainer.post("/logout", data={}).status_code == 403
    assert trainer.post(target, data=form | {"csrf_token": token}).status_code == 303
    assert "csrf probe" in trainer.get(f"/encounters/{review_server.poor}").text
    assert (
        trainer.post(target, data={"flag": "exemplary", "decision": "confirmed", "csrf_token": token}).status_code
        == 400
    )


@pytest.mark.parametrize(
    "path",
    ["/clips/..%2F..%2F..%2Fetc%2Fpasswd", "/clips/%2e%2e%2fcatalog.sqlite", "/audio/..%2Freview.sqlite",
     "/audio/%2Fetc%2Fpasswd", "/encounters/..%2F..%2Fetc%2Fpasswd", "/static/..%2Fapp.py", "/static/%2e%2e/db.py",
     "/clips/../../etc/passwd", "/review.sqlite", "/catalog.sqlite", "/clips/_files", "/exports/x.zip"],
)  # fmt: skip
def test_traversal_attempts_are_not_found(review_server: ReviewServer, path: str) -> None:
    trainer, _ = log_in(review_server, "tess")
    # http.client sends the path exactly as written (httpx would resolve the dot segments itself).
    host, port = review_server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request("GET", path, headers={"Cookie": f"bwc_session={trainer.cookies.get('bwc_session')}"})
    answer = connection.getresponse()
    body = answer.read().decode(errors="replace")
    connection.close()
    assert answer.status == 404, path
    assert "root:" not in body and "SQLite" not in body


def test_audio_is_served_by_id_with_range_requests(review_server: ReviewServer) -> None:
    trainer, _ = log_in(review_server, "tess")
    recording = review_server.recordings[review_server.exemplary]
    whole = trainer.get(f"/audio/{recording}")
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/ogg"
    assert whole.content[:4] == b"OggS"
    part = trainer.get(f"/audio/{recording}", headers={"Range": "bytes=100-1123"})
    assert part.status_code == 206 and len(part.content) == 1024
    assert part.headers["content-range"] == f"bytes 100-1123/{len(whole.content)}"
    assert part.content == whole.content[100:1124]
    clip = pd.read_parquet(review_server.store / "clips").iloc[0]
    answer = trainer.get(f"/clips/{clip.clip_id}")
    assert answer.status_code == 200 and sha256_file_bytes(answer.content) == clip.sha256
    assert trainer.get("/audio/0123456789abcdef").status_code == 404


def sha256_file_bytes(content: bytes) -> str:
    import hashlib

    return hashlib.sha256(content).hexdigest()


def test_logout_ends_the_session(review_server: ReviewServer) -> None:
    trainer, token = log_in(review_server, "tess")
    cookie = trainer.cookies.get("bwc_session")
    assert trainer.post("/logout", data={"csrf_token": token}).status_code == 303
    stale = client(review_server)
    stale.cookies.set("bwc_session", cookie)
    assert stale.get("/queue").status_code == 303


def test_exemplar_pack_holds_clips_excerpts_and_a_manifest(review_server: ReviewServer) -> None:
    trainer, token = log_in(review_server, "tess")
    tagged = trainer.post(
        f"/encounters/{review_server.exemplary}/exemplar",
        data={"action": "tag", "note": "textbook opening", "csrf_token": token},
    )
    assert tagged.status_code == 303
    assert "textbook opening" in trainer.get("/exemplars").text
    answer = trainer.post("/exemplars/export", data={"encounter_id": review_server.exemplary, "csrf_token": token})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    manifest = json.loads(archive.read("manifest.json"))
    (item,) = manifest["encounters"]
    assert item["encounter_id"] == review_server.exemplary and item["note"] == "textbook opening"
    assert item["clips"] and item["flags"][0]["flag"] == "exemplary"
    for clip in item["clips"]:
        assert sha256_file_bytes(archive.read(clip["file"])) == clip["sha256"]
        original = next(review_server.footage.glob("EV7001.wav"))
        assert clip["original_sha256"] == sha256_file(original)
    assert "Drive safe" in archive.read(item["transcript_excerpt"]).decode()
    entries = audit(review_server)
    export = entries[(entries.action == "export_pack") & (entries.username == "tess")].iloc[-1]
    assert export.outcome == "ok" and sha256_file_bytes(answer.content) in export.detail


def test_the_audit_log_records_views_actions_and_refusals_and_only_admins_export_it(
    review_server: ReviewServer,
) -> None:
    trainer, _ = log_in(review_server, "tess")
    trainer.get(f"/encounters/{review_server.exemplary}")
    trainer.get("/admin/audit")  # refused
    client(review_server).get("/queue")  # anonymous, refused
    admin, _ = log_in(review_server, "ada")
    exported = admin.get("/admin/audit.csv")
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    mine = [row for row in rows if row["username"] == "tess"]
    assert any(r["action"] == "view_encounter" and r["object"] == f"encounter:{review_server.exemplary}" for r in mine)
    assert any(r["action"] == "view_audit" and r["outcome"] == "refused" and r["status"] == "403" for r in mine)
    assert any(r["username"] == "" and r["action"] == "view_queue" and r["outcome"] == "refused" for r in rows)
    assert [int(r["entry_id"]) for r in rows] == sorted(int(r["entry_id"]) for r in rows)
    page = admin.get("/admin/audit", params={"username": "tess"}).text
    assert "view_encounter" in page


def test_the_audit_log_is_append_only(review_server: ReviewServer) -> None:
    with sqlite3.connect(review_server.store / "review.sqlite") as connection:
        for statement in ("DELETE FROM audit_log", "UPDATE audit_log SET outcome = 'ok'"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                connection.execute(statement)


def test_admins_manage_users_in_the_browser_and_on_the_command_line(review_server: ReviewServer) -> None:
    admin, token = log_in(review_server, "ada")
    added = admin.post(
        "/admin/users",
        data={"action": "add", "username": "newbie", "role": "trainer", "password": "short", "csrf_token": token},
    )
    assert added.status_code == 400  # too short a password
    password = "another long passphrase"
    added = admin.post(
        "/admin/users",
        data={"action": "add", "username": "newbie", "role": "trainer", "password": password, "csrf_token": token},
    )
    assert added.status_code == 303
    newbie = client(review_server)
    login_token = CSRF.search(newbie.get("/login").text).group(1)
    assert newbie.post("/login", data={"username": "newbie", "password": password, "csrf_token": login_token})
    assert newbie.get("/queue").status_code == 200
    disabled = admin.post("/admin/users", data={"action": "disable", "username": "newbie", "csrf_token": token})
    assert disabled.status_code == 303
    assert newbie.get("/queue").status_code == 303  # disabling logs out
    listed = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "users", "list", "--store", str(review_server.store)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "newbie\ttrainer\tdisabled" in listed.stdout
    weak = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "users", "add", "weak", "--role", "trainer", "--store",
         str(review_server.store)],
        input="short\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert weak.returncode == 2 and "at least 12 characters" in weak.stderr


def test_ten_failed_logins_lock_the_name_for_a_while(review_server: ReviewServer) -> None:
    added = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "users", "add", "locky", "--role", "trainer", "--store",
         str(review_server.store)],
        input=REVIEW_PASSWORD + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    browser = client(review_server)
    for _ in range(10):
        token = CSRF.search(browser.get("/login").text).group(1)
        browser.post("/login", data={"username": "locky", "password": "wrong password!", "csrf_token": token})
    token = CSRF.search(browser.get("/login").text).group(1)
    answer = browser.post("/login", data={"username": "locky", "password": REVIEW_PASSWORD, "csrf_token": token})
    assert answer.headers["location"].endswith("error=locked")
    assert "Too many failed logins" in browser.get(answer.headers["location"]).text
    assert browser.get("/queue").status_code == 303


def test_queue_filters_by_date_and_review_state_and_sorts(review_server: ReviewServer) -> None:
    trainer, _ = log_in(review_server, "tess")
    rows = re.compile(r'data-encounter="([^"]+)"')
    first_day = rows.findall(trainer.get("/queue", params={"date_from": "2026-10-01", "date_to": "2026-10-01"}).text)
    assert first_day == [review_server.poor]  # recorded 2026-10-01; the exemplary stop on the 2nd
    both = rows.findall(trainer.get("/queue", params={"date_from": "2026-10-01", "sort": "oldest"}).text)
    assert both == [review_server.poor, review_server.exemplary]
    assert rows.findall(trainer.get("/queue", params={"date_from": "2026-10-01", "sort": "newest"}).text) == [
        review_server.exemplary,
        review_server.poor,
    ]
    flags = pd.read_parquet(review_server.store / "flags")
    unreviewed = rows.findall(trainer.get("/queue", params={"reviewed": "no"}).text)
    reviewed = rows.findall(trainer.get("/queue", params={"reviewed": "yes"}).text)
    assert sorted(unreviewed + reviewed) == sorted(flags.encounter_id)
    assert trainer.get("/queue", params={"date_from": "yesterday"}).status_code == 400


def custody_events(server: ReviewServer, recording_id: str) -> list[dict]:
    recordings = pd.read_parquet(server.store / "recordings")
    sha256 = recordings.loc[recordings.recording_id == recording_id, "sha256"].iloc[0]
    log = server.store / "custody" / f"{sha256}.jsonl"
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def test_views_plays_packs_and_exports_enter_the_originals_custody_log(review_server: ReviewServer, tmp_path) -> None:
    recording = review_server.recordings[review_server.exemplary]
    before = len(custody_events(review_server, recording))
    trainer, token = log_in(review_server, "sam")
    assert trainer.get(f"/encounters/{review_server.exemplary}").status_code == 200
    assert trainer.get(f"/audio/{recording}").status_code == 200
    assert trainer.get(f"/audio/{recording}", headers={"Range": "bytes=100-1123"}).status_code == 206  # same play
    answer = trainer.post("/exemplars/export", data={"encounter_id": review_server.exemplary, "csrf_token": token})
    assert answer.status_code == 200
    entries = custody_events(review_server, recording)[before:]
    assert [(e["event"], e["detail"].get("what")) for e in entries] == [
        ("viewed", "encounter page (transcript and scores)"),
        ("viewed", "audio played"),
        ("pack_exported", None),
    ]
    assert {e["actor"] for e in entries} == {"sam (review app, supervisor)"}
    assert entries[-1]["detail"]["pack_sha256"] == sha256_file_bytes(answer.content)
    exported = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "research", "export", "--store", str(review_server.store), "--out",
         str(tmp_path / "export")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    (research,) = custody_events(review_server, recording)[before + 3 :]
    assert research["event"] == "research_exported" and research["detail"]["out_dir"] == str(tmp_path / "export")
    assert research["detail"]["manifest_sha256"] == sha256_file(tmp_path / "export" / "manifest.json")
    verified = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "audit", "verify", "--store", str(review_server.store)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
