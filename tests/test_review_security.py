"""The attacks an outside probe of the review app got through (issue 19), each reproduced and now refused.

Against the real ``bwc review serve`` of ``review_server`` (conftest.py) over HTTP, and, where a setting has to differ
or the store has to be damaged, the same app built by ``create_app`` on a copy of that store. The audit log is also
attacked with the ``sqlite3`` module directly, as anyone holding ``review.sqlite`` could, and on PostgreSQL.
"""

from __future__ import annotations

import csv
import html
import http.client
import io
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from bwc.config import BwcConfig
from bwc.review.app import create_app
from bwc.review.audit import FORMULA_STARTS, LEADING_BLANKS
from bwc.review.db import LoginLimits, ReviewDatabase, User
from bwc.store import SCHEMAS
from tests.conftest import REVIEW_PASSWORD, ReviewServer
from tests.test_catalog import postgres_url  # noqa: F401  (the throw-away PostgreSQL server fixture)

pytestmark = pytest.mark.slow

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TAGS = re.compile(r"<[^>]+>")
WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def client(server: ReviewServer, source: str | None = None) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(base_url=server.url, follow_redirects=False, timeout=60, transport=transport)


def login_token(browser: httpx.Client | TestClient) -> str:
    return CSRF.search(browser.get("/login").text).group(1)


def log_in(browser: httpx.Client | TestClient, username: str) -> str:
    """Log ``browser`` in; the session's CSRF token."""
    answer = browser.post(
        "/login",
        data={"username": username, "password": REVIEW_PASSWORD, "csrf_token": login_token(browser)},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and "error" not in answer.headers["location"], answer.headers
    return CSRF.search(browser.get(answer.headers["location"]).text).group(1)


def add_user(store: Path, username: str, role: str = "trainer") -> None:
    added = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "users", "add", username, "--role", role, "--store", str(store)],
        input=REVIEW_PASSWORD + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


def audit(store: Path) -> pd.DataFrame:
    with sqlite3.connect(store / "review.sqlite") as connection:
        return pd.read_sql("SELECT * FROM audit_log ORDER BY entry_id", connection)


def visible_text(page: str) -> str:
    return html.unescape(TAGS.sub(" ", page))


def copy_store(server: ReviewServer, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(server.store, copy, ignore=shutil.ignore_patterns("*.sqlite-wal", "*.sqlite-shm", "exports"))
    with sqlite3.connect(server.store / "review.sqlite") as source, sqlite3.connect(copy / "review.sqlite") as target:
        source.backup(target)  # a consistent copy of a database the server is writing to
    return copy


# -- 1: researchers see no words, raw ids or fine times ----------------------------------------------------------
def test_researchers_see_no_words_ids_speaker_labels_or_times(review_server: ReviewServer) -> None:
    researcher = client(review_server)
    log_in(researcher, "rory")
    queue = researcher.get("/queue").text
    labels = re.findall(r'href="/encounters/([^"]+)"', queue)
    assert labels and all(re.fullmatch(r"encounter-[0-9a-f]{10}", label) for label in labels)
    pages = [queue] + [researcher.get(f"/encounters/{label}").text for label in labels]
    assert all("section" in page for page in pages[1:])

    store = review_server.store
    utterances = pd.read_parquet(store / "utterance_scores")
    flags = pd.read_parquet(store / "flags")
    recordings = pd.read_parquet(store / "recordings")
    flagged = utterances[utterances.encounter_id.isin(flags.encounter_id)]
    # Words of the transcripts that no page of bwc's own would say: none may appear anywhere a researcher looks.
    chrome = set()
    for template in (Path(__file__).parents[1] / "bwc" / "review" / "templates").glob("*.html"):
        chrome |= set(WORD.findall(visible_text(template.read_text()).lower()))
    for text in [*flags.reasons_deidentified, *flags.model_version, *utterances.role]:
        chrome |= set(WORD.findall(text.lower()))
    for evidence in utterances.acts_evidence.dropna():
        chrome |= {word for act in json.loads(evidence) for word in WORD.findall(act.lower().replace("_", " "))}
    spoken = {word for text in flagged.text for word in WORD.findall(text.lower()) if len(word) >= 3} - chrome
    quoted = {quote for text in flags.reasons for quote in re.findall(r"'([^;()]+?)'(?:,|\s\(|$|;)", text)}
    assert quoted, "the identified reasons quote words (the test would prove nothing otherwise)"
    for page in pages:
        text = visible_text(page)
        shown = set(WORD.findall(text.lower()))
        assert not spoken & shown, sorted(spoken & shown)
        assert not any(quote in text for quote in quoted)
        assert "withheld]m" not in text and "ma[words" not in text  # the apostrophe breaks of the old redaction
        for identifier in [*flags.encounter_id, *recordings.recording_id, *recordings.evidence_id.dropna()]:
            assert identifier not in page
        assert "18:30" not in text and "SPEAKER_" not in text  # recording times; diarization labels
    assert any("2026-10-0" in visible_text(page) and "(day)" in visible_text(page) for page in pages)
    # A raw id in the URL is not found, so a researcher cannot even confirm one exists.
    assert researcher.get(f"/encounters/{review_server.poor}").status_code == 404


def test_researchers_get_numbered_speakers_and_dates_at_the_configured_resolution(
    review_server: ReviewServer, tmp_path: Path
) -> None:
    store = copy_store(review_server, tmp_path)
    for part in (store / "utterance_scores").glob("part-*.parquet"):  # speaker labels a department's table named
        table = pq.read_table(part)
        frame = table.to_pandas()
        mine = frame.encounter_id == review_server.poor
        if mine.any():
            frame.loc[mine, "speaker"] = [
                "Ofc. Jane Doe" if r == "officer" else "Sam Q. Public" for r in frame.role[mine]
            ]
            pq.write_table(pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False), part)
    config = BwcConfig.model_validate({"review": {"researcher_date_resolution": "month"}})
    with TestClient(create_app(store, config)) as browser, TestClient(create_app(store, BwcConfig())) as trainer:
        log_in(browser, "rory")
        queue = browser.get("/queue").text
        labels = re.findall(r'href="/encounters/([^"]+)"', queue)
        pages = [browser.get(f"/encounters/{label}").text for label in labels]
        log_in(trainer, "tess")
        assert "Ofc. Jane Doe" in trainer.get(f"/encounters/{review_server.poor}").text  # identified views keep it
    text = visible_text(queue)
    assert "2026-10-01 (month)" in text and "2026-10-02" not in text and "2026-09-1" not in text
    assert not any("Jane Doe" in page or "Public" in page for page in pages)
    assert any("speaker 1" in page and "speaker 2" in page for page in pages)


# -- 2: the audit log cannot be rewritten, and verify finds it when it is done behind the database's back ------
def test_the_audit_log_refuses_replace_backdating_and_out_of_place_inserts(review_server: ReviewServer) -> None:
    client(review_server).get("/login")  # at least one entry
    attacks = [
        "REPLACE INTO audit_log SELECT entry_id, at, username, role, action, 'forged', outcome, status, detail, "
        "client, prev_hash, entry_hash FROM audit_log WHERE entry_id = 2",
        "INSERT OR REPLACE INTO audit_log (entry_id, at, action, object, outcome, status, detail, client) "
        "VALUES (2, '2026-01-01 00:00:00.000000', 'login', 'user:ada', 'ok', 303, '', '')",
        # Backdated, though correctly placed and linked:
        "INSERT INTO audit_log (entry_id, at, action, object, outcome, status, detail, client, prev_hash, entry_hash) "
        "SELECT entry_id + 1, '2020-01-01 00:00:00.000000', 'login', 'user:ada', 'ok', 303, '', '', entry_hash, 'x' "
        "FROM audit_log ORDER BY entry_id DESC LIMIT 1",
        "INSERT INTO audit_log (at, action, object, outcome, status, detail, client) "
        "VALUES ('2099-01-01 00:00:00.000000', 'login', 'user:ada', 'ok', 303, '', '')",
        "INSERT INTO audit_log (entry_id, at, action, object, outcome, status, detail, client, prev_hash) "
        "VALUES (1000000, '2099-01-01 00:00:00.000000', 'login', 'user:ada', 'ok', 303, '', '', 'x')",
        "UPDATE audit_log SET detail = 'edited' WHERE entry_id = 1",
        "DELETE FROM audit_log WHERE entry_id = 1",
        "INSERT INTO audit_log (entry_id, at, action, object, outcome, status, detail, client) VALUES "
        "(1, '2026-01-01 00:00:00.000000', 'x', 'x', 'ok', 200, '', '') ON CONFLICT(entry_id) DO UPDATE SET detail='x'",
        # Placed and linked right, but dated far ahead (every later honest entry would have to follow it) or not a
        # time at all (every later append would fail):
        "INSERT INTO audit_log SELECT entry_id + 1, '9999-12-31 23:59:59.000000', NULL, NULL, 'x', 'x', 'ok', 200, "
        "'', '', entry_hash, 'ff' FROM audit_log ORDER BY entry_id DESC LIMIT 1",
        "INSERT INTO audit_log SELECT entry_id + 1, 'zzzz', NULL, NULL, 'x', 'x', 'ok', 200, '', '', entry_hash, 'ff' "
        "FROM audit_log ORDER BY entry_id DESC LIMIT 1",
    ]
    with sqlite3.connect(review_server.store / "review.sqlite", timeout=30) as connection:
        before = connection.execute("SELECT * FROM audit_log WHERE entry_id <= 2 ORDER BY entry_id").fetchall()
        for attack in attacks:
            with pytest.raises(sqlite3.DatabaseError, match=r"append-only|only takes the next entry"):
                connection.execute(attack)
            connection.rollback()
        assert connection.execute("SELECT * FROM audit_log WHERE entry_id <= 2 ORDER BY entry_id").fetchall() == before


def verify(store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bwc.cli", "audit", "verify", "--store", str(store)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("tampering", "message"),
    [
        (
            ["DROP TRIGGER audit_log_no_update", "UPDATE audit_log SET detail = 'nothing to see' WHERE entry_id = 3"],
            "entry 3: its hash does not match its content",
        ),
        (
            ["DROP TRIGGER audit_log_no_delete", "DELETE FROM audit_log WHERE entry_id = 4"],
            "entry 5: expected entry 4 here",
        ),
        (
            [
                "DROP TRIGGER audit_log_no_delete",
                "DELETE FROM audit_log WHERE entry_id = (SELECT MAX(entry_id) FROM audit_log)",
            ],
            "entries were cut or rewritten",
        ),
        (
            [
                "DROP TRIGGER audit_log_append_at_end",
                "DROP TRIGGER audit_log_no_delete",
                "DELETE FROM audit_log WHERE entry_id = (SELECT MAX(entry_id) FROM audit_log)",
                "INSERT INTO audit_log SELECT entry_id + 1, '2020-01-01 00:00:00.000000', 'ada', 'admin', 'login', "
                "'user:ada', 'ok', 303, '', '', entry_hash, 'f' FROM audit_log ORDER BY entry_id DESC LIMIT 1",
            ],
            "backdated",
        ),
        (["DROP TRIGGER audit_log_no_update"], "database rule audit_log_no_update is missing"),
        (
            [
                "DROP TRIGGER audit_log_no_delete",
                "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log WHEN 0 BEGIN SELECT 1; END",
                "DELETE FROM audit_log WHERE entry_id = 2",
            ],
            "database rule audit_log_no_delete is missing",
        ),
        (
            [
                "DROP TRIGGER audit_log_append_at_end",
                "INSERT INTO audit_log SELECT entry_id + 1, 'zzzz', NULL, NULL, 'x', 'x', 'ok', 200, '', '', "
                "entry_hash, 'ff' "
                "FROM audit_log ORDER BY entry_id DESC LIMIT 1",
            ],
            "not a timestamp",
        ),
        (
            [
                "DROP TRIGGER audit_log_no_update",
                "DROP TRIGGER audit_log_append_at_end",
                "UPDATE audit_log SET detail = 'nothing to see' WHERE entry_id = 3",
                "ALTER TABLE audit_log DROP COLUMN entry_hash",
                "ALTER TABLE audit_log DROP COLUMN prev_hash",
            ],
            "the hash columns had been removed",
        ),
        (["ALTER TABLE audit_log ADD COLUMN remark TEXT DEFAULT 'forged'"], "columns added outside bwc: remark"),
        (
            ["DROP TRIGGER audit_log_no_delete", "DELETE FROM audit_log", "rm secrets/audit.head"],
            "audit.head) had been removed",
        ),
    ],
    ids=[
        "edited",
        "removed",
        "cut-short",
        "backdated-insert",
        "rule-dropped",
        "rule-neutered",
        "not-a-time",
        "hash-columns-dropped",
        "column-added",
        "emptied-and-head-removed",
    ],
)
def test_verify_finds_the_audit_log_rewritten_behind_the_databases_back(
    review_server: ReviewServer, tmp_path: Path, tampering: list[str], message: str
) -> None:
    store = copy_store(review_server, tmp_path)
    before = verify(store)
    assert before.returncode == 0, before.stderr
    with sqlite3.connect(store / "review.sqlite") as connection:
        for statement in tampering:
            if statement.startswith("rm "):
                (store / statement[3:]).unlink()
            else:
                connection.execute(statement)
    found = verify(store)
    said = found.stdout + found.stderr
    assert found.returncode == 4 and "TAMPERED review audit log" in said and message in said, said
    # The app reopening the database restores the rules and leaves that in the log, and appending moves the head:
    # neither hides what was done.
    with TestClient(create_app(store, BwcConfig())) as browser:
        assert browser.get("/login").status_code == 200  # the app goes on working, whatever the last row holds
    again = verify(store)
    assert again.returncode == 4 and "TAMPERED review audit log" in again.stdout + again.stderr, again.stderr
    with sqlite3.connect(store / "review.sqlite") as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert {"audit_log_no_update", "audit_log_no_delete", "audit_log_append_at_end"} <= names


def test_the_audit_log_is_append_only_and_chained_on_postgresql(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    from sqlalchemy import text

    from bwc.review.db import _Base

    database = ReviewDatabase(postgres_url, tmp_path)
    with database.engine.begin() as connection:  # one server serves the session: start from an empty log
        connection.execute(text("DROP TABLE IF EXISTS audit_log CASCADE"))
    _Base.metadata.create_all(database.engine)
    database = ReviewDatabase(postgres_url, tmp_path / "store")  # a new store (key, head) for the new log
    for number in range(4):
        database.audit("view_queue", "ok", 200, object=f"queue {number}", detail="=1+1")
    assert database.verify_audit().intact
    attacks = [
        "UPDATE audit_log SET detail = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "INSERT INTO audit_log (entry_id, at, action, object, outcome, status, detail, client) "
        "VALUES (2, now(), 'x', 'x', 'ok', 200, '', '') ON CONFLICT (entry_id) DO UPDATE SET detail = 'x'",
        "INSERT INTO audit_log (entry_id, at, action, object, outcome, status, detail, client, prev_hash) "
        "SELECT 5, '2020-01-01', 'x', 'x', 'ok', 200, '', '', entry_hash FROM audit_log WHERE entry_id = 4",
    ]
    for attack in attacks:
        with (
            pytest.raises(Exception, match=r"append-only|only takes the next entry"),
            database.engine.begin() as connection,
        ):
            connection.execute(text(attack))
    with database.engine.begin() as connection:  # the table's owner can switch the rules off ...
        connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        connection.execute(text("UPDATE audit_log SET object = 'rewritten' WHERE entry_id = 2"))
        connection.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
    problems = [problem.problem for problem in database.verify_audit().problems]  # ... and is found out
    assert any("does not match its content" in problem for problem in problems), problems
    database.close()
    with database.engine.begin() as connection:  # rules left switched off, or replaced by ones that do nothing
        connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        connection.execute(text("CREATE OR REPLACE FUNCTION bwc_audit_log_append_at_end() RETURNS trigger AS $$ "
                                "BEGIN RETURN NEW; END; $$ LANGUAGE plpgsql"))  # fmt: skip
    reopened = ReviewDatabase(postgres_url, tmp_path / "store")
    assert set(reopened.rules_missing_at_open) == {"audit_log_append_only", "audit_log_append_at_end"}
    with pytest.raises(Exception, match="append-only"), reopened.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log"))  # restored on opening
    reopened.close()


# -- 3 and 4: the lockout holds against parallel guesses and cannot be used to lock others out -----------------
def test_parallel_guesses_get_no_more_password_checks_than_the_lockout_allows(review_server: ReviewServer) -> None:
    add_user(review_server.store, "racer")
    browser = client(review_server)
    token = login_token(browser)
    cookies = dict(browser.cookies)

    def guess(number: int) -> int:
        with client(review_server) as attacker:
            attacker.cookies.update(cookies)
            form = {"username": "racer", "password": f"wrong guess {number:04d}", "csrf_token": token}
            return attacker.post("/login", data=form).status_code

    with ThreadPoolExecutor(40) as pool:
        assert set(pool.map(guess, range(40))) == {303}
    entries = audit(review_server.store)
    checked = entries[(entries.object == "user:racer") & (entries.detail == "wrong username or password")]
    locked = entries[(entries.object == "user:racer") & entries.detail.str.startswith("locked")]
    assert len(checked) == 10 and len(locked) == 30
    answer = browser.post("/login", data={"username": "racer", "password": REVIEW_PASSWORD, "csrf_token": token})
    assert answer.headers["location"].endswith("error=locked")


def test_posts_without_a_token_and_attempts_during_a_lock_count_for_nothing(review_server: ReviewServer) -> None:
    add_user(review_server.store, "victim")
    attacker = client(review_server, source="127.0.0.3")
    for _ in range(20):  # no CSRF token (and no login cookie): refused before anything is counted
        assert attacker.post("/login", data={"username": "victim", "password": "guess"}).status_code == 403
    token = login_token(attacker)
    for _ in range(10):
        attacker.post("/login", data={"username": "victim", "password": "wrong guess!", "csrf_token": token})
    with sqlite3.connect(review_server.store / "review.sqlite") as connection:
        query = "SELECT failures, window_started_at FROM login_failures WHERE username = 'victim' AND client = ?"
        locked = connection.execute(query, ("127.0.0.3",)).fetchone()
        for _ in range(5):  # hammering during the lock neither counts nor extends it
            attacker.post("/login", data={"username": "victim", "password": "wrong guess!", "csrf_token": token})
        assert connection.execute(query, ("127.0.0.3",)).fetchone() == locked == (10, locked[1])
    answer = attacker.post("/login", data={"username": "victim", "password": REVIEW_PASSWORD, "csrf_token": token})
    assert answer.headers["location"].endswith("error=locked")  # that address stays locked out of that account
    # The victim, from their own address, is not locked out by someone else's guesses (admins alike).
    victim = client(review_server, source="127.0.0.4")
    log_in(victim, "victim")
    assert victim.get("/queue").status_code == 200


def test_the_account_locks_for_everyone_when_guesses_come_from_many_addresses(
    review_server: ReviewServer, tmp_path: Path
) -> None:
    config = BwcConfig.model_validate({"review": {"lockout_failures": 3, "lockout_account_failures": 5}})
    store = copy_store(review_server, tmp_path)
    app = create_app(store, config)
    with TestClient(app) as browser:
        token = login_token(browser)
        database = ReviewDatabase.for_store(store)
        for address in ("10.0.0.1", "10.0.0.2"):  # as if from two addresses (the count is the database's)
            for _ in range(3):
                database.reserve_login_attempt("tess", address, LoginLimits.from_config(config.review))
        answer = browser.post("/login", data={"username": "tess", "password": REVIEW_PASSWORD, "csrf_token": token})
        assert answer.status_code == 200 and "Too many failed logins" in answer.text  # followed to the login page


# -- 5: what leaves the audit log opens in a spreadsheet as text -------------------------------------------------
def test_audit_csv_exports_carry_no_formulas_or_nul_bytes(review_server: ReviewServer, tmp_path: Path) -> None:
    probe = client(review_server)
    probe.get("/+cmd|' /C calc'!A0")
    probe.get("/=HYPERLINK(%22http://evil%22)%00")
    probe.post("/login", data={"username": "@SUM(1+1)", "password": "x", "csrf_token": login_token(probe)})
    trainer = client(review_server)
    token = log_in(trainer, "tess")
    trainer.post(
        f"/encounters/{review_server.poor}/decision",
        data={"flag": "poor", "decision": "confirmed", "note": "-2+3+cmd|' /C calc'!A0", "csrf_token": token},
    )
    # Whatever a request can make the app write (request line, user name, note, decision, client) goes through
    # the same append; entries made to begin with a formula character in every text column:
    database = ReviewDatabase.for_store(review_server.store)
    intruder = User(user_id=0, username="@evil", role="trainer", active=True)
    database.audit("=cmd|' /C calc'!A0", "ok", 200, user=intruder, object="+cmd|' /C calc'!A0", detail="-2+3\x00",
                   client="=1+1")  # fmt: skip
    database.audit("view_queue", "ok", 200, object="\u200b=1+1", detail=" \u00a0=HYPERLINK(1)", client="＝1+1")
    database.close()
    admin = client(review_server)
    log_in(admin, "ada")
    exported = admin.get("/admin/audit.csv")
    out = tmp_path / "audit.csv"
    command = [
        sys.executable,
        "-m",
        "bwc.cli",
        "review",
        "audit",
        "--store",
        str(review_server.store),
        "--out",
        str(out),
    ]
    assert subprocess.run(command, capture_output=True, text=True, timeout=60).returncode == 0
    for text in (exported.text, out.read_text(encoding="utf-8")):
        assert "\x00" not in text
        rows = list(csv.reader(io.StringIO(text)))
        cells = [cell for row in rows[1:] for cell in row]
        assert not [cell for cell in cells if cell.lstrip(LEADING_BLANKS).startswith((*FORMULA_STARTS, "＝"))]
        for start in ("'+cmd|", "'@evil", "'-2+3", "'=1+1", "'=cmd|", "'\u200b=1+1", "' \u00a0=HYPER", "'＝1+1"):
            assert any(cell.startswith(start) for cell in cells), start
        assert any("\\x00" in cell for cell in cells)  # the NUL kept, visibly, as evidence of the probe


# -- 8: the rest of the probe ----------------------------------------------------------------------------------
def test_unmatched_paths_wrong_methods_and_static_probes_are_audited_under_the_session(
    review_server: ReviewServer,
) -> None:
    trainer = client(review_server)
    log_in(trainer, "tess")
    assert trainer.get("/no/such/page-1").status_code == 404
    assert trainer.get("/logout").status_code == 405
    assert trainer.get("/static/../../etc/passwd-probe").status_code == 404
    assert trainer.get("/static/evil.js").status_code == 404
    entries = audit(review_server.store)
    for path in ("/no/such/page-1",):
        assert (entries[entries.object == path].username == "tess").all() and (entries.object == path).any()
    assert ((entries.status == 405) & (entries.username == "tess")).any()
    static = entries[(entries.action == "static") & (entries.status == 404)]
    probe = static[static.object == "name:evil.js"]
    assert len(probe) and (probe.username == "tess").all()


def test_large_bodies_are_refused_before_they_are_read(review_server: ReviewServer) -> None:
    host, port = urlsplit(review_server.url).hostname, urlsplit(review_server.url).port
    connection = http.client.HTTPConnection(host, port, timeout=10)
    started = time.monotonic()
    connection.putrequest("POST", "/login")
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Content-Length", str(50 * 1024 * 1024))
    connection.endheaders()  # 50 MB announced, none sent: the answer must not wait for them
    answer = connection.getresponse()
    assert answer.status == 413 and time.monotonic() - started < 5
    connection.close()

    def chunks():  # no Content-Length: counted as it streams in
        for _ in range(8):
            yield b"a" * (256 * 1024)

    browser = client(review_server)
    token = login_token(browser)
    streamed = browser.post("/login", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413, token
    entries = audit(review_server.store)
    assert (entries.action == "request_too_large").sum() >= 2


def test_cross_site_posts_are_refused_even_with_a_valid_token(review_server: ReviewServer) -> None:
    trainer = client(review_server)
    token = log_in(trainer, "tess")
    target = f"/encounters/{review_server.poor}/decision"
    form = {"flag": "poor", "decision": "rejected", "note": "cross-site", "csrf_token": token}
    assert trainer.post(target, data=form, headers={"Origin": "https://evil.example"}).status_code == 403
    assert trainer.post(target, data=form, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert trainer.post(target, data=form, headers={"Sec-Fetch-Site": "same-site"}).status_code == 403
    assert "cross-site" not in trainer.get(f"/encounters/{review_server.poor}").text
    assert trainer.post(target, data=form, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 303


def test_pages_reflect_no_text_from_the_url(review_server: ReviewServer) -> None:
    anonymous = client(review_server)
    page = anonymous.get("/login", params={"error": "Your account is suspended: call 555-0100", "next": "/queue"})
    assert "555-0100" not in page.text and "suspended" not in page.text
    admin = client(review_server)
    log_in(admin, "ada")
    for params in (
        {"message": "call 555-0100"},
        {"done": "add", "user": "call-555-0100"},
        {"done": "x", "user": "ada"},
    ):
        assert "555-0100" not in admin.get("/admin/users", params=params).text
    assert "ada: added" in admin.get("/admin/users", params={"done": "add", "user": "ada"}).text


def test_packs_are_not_cached_and_hsts_is_configurable(review_server: ReviewServer, tmp_path: Path) -> None:
    supervisor = client(review_server)
    token = log_in(supervisor, "sam")
    pack = supervisor.post("/exemplars/export", data={"encounter_id": review_server.exemplary, "csrf_token": token})
    assert pack.status_code == 200 and pack.headers["cache-control"] == "private, no-store"
    assert "strict-transport-security" not in pack.headers  # off unless configured (it needs HTTPS everywhere)
    config = BwcConfig.model_validate({"review": {"hsts_seconds": 31536000, "secure_cookies": True}})
    with TestClient(create_app(copy_store(review_server, tmp_path), config)) as browser:
        assert browser.get("/login").headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_sessions_end_at_their_absolute_lifetime_however_active(review_server: ReviewServer, tmp_path: Path) -> None:
    config = BwcConfig.model_validate({"review": {"session_max_hours": 3 / 3600}})  # three seconds
    with TestClient(create_app(copy_store(review_server, tmp_path), config)) as browser:
        log_in(browser, "tess")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # active all the while
            assert browser.get("/queue", follow_redirects=False).status_code == 200
            time.sleep(0.3)
        time.sleep(1.5)
        assert browser.get("/queue", follow_redirects=False).status_code == 303


def test_trainers_hear_only_flagged_or_tagged_recordings_unless_configured(
    review_server: ReviewServer, tmp_path: Path
) -> None:
    store = copy_store(review_server, tmp_path)
    unflagged = review_server.recordings[review_server.exemplary]
    flags = pq.read_table(store / "flags").to_pandas()
    kept = flags[(flags.encounter_id != review_server.exemplary) & (flags.recording_id != unflagged)]
    database = ReviewDatabase.for_store(store)  # other tests may have tagged it as an exemplar
    database.untag_exemplar(review_server.exemplary)
    database.close()
    for part in (store / "flags").glob("part-*.parquet"):
        part.unlink()
    pq.write_table(pa.Table.from_pandas(kept, schema=SCHEMAS["flags"], preserve_index=False),
                   store / "flags" / "part-current.parquet")  # fmt: skip
    flagged = review_server.recordings[review_server.poor]
    with TestClient(create_app(store, BwcConfig())) as trainer, TestClient(create_app(store, BwcConfig())) as sup:
        log_in(trainer, "tess")
        log_in(sup, "sam")
        assert trainer.get(f"/audio/{unflagged}").status_code == 403
        assert trainer.get(f"/audio/{flagged}", headers={"Range": "bytes=0-99"}).status_code == 206
        assert sup.get(f"/audio/{unflagged}", headers={"Range": "bytes=0-99"}).status_code == 206
    with TestClient(create_app(store, BwcConfig.model_validate({"review": {"trainers_hear_unflagged": True}}))) as t:
        log_in(t, "tess")
        assert t.get(f"/audio/{unflagged}", headers={"Range": "bytes=0-99"}).status_code == 206
    entries = audit(store)
    refused = entries[(entries.action == "play_audio") & (entries.status == 403)]
    assert (refused.username == "tess").any() and json.dumps(list(refused.object)).count(unflagged) >= 1


def test_a_lock_runs_from_the_failure_that_reached_the_limit(tmp_path: Path) -> None:
    """Nine guesses early in a window and the tenth at its end must not be followed by ten more a moment later."""
    from datetime import UTC, datetime, timedelta

    from bwc.review.db import LoginLimits

    database = ReviewDatabase.for_store(tmp_path)
    limits = LoginLimits(per_client=10, per_account=50, window=timedelta(minutes=15))
    for _ in range(9):
        assert database.reserve_login_attempt("tess", "10.0.0.9", limits)
    with database.engine.begin() as connection:  # as if those nine were 14 minutes ago
        from sqlalchemy import text

        early = datetime.now(UTC) - timedelta(minutes=14)
        connection.execute(
            text("UPDATE login_failures SET window_started_at = :at"), {"at": early.replace(tzinfo=None)}
        )
    assert database.reserve_login_attempt("tess", "10.0.0.9", limits)  # the tenth: the lock starts now
    with database.engine.begin() as connection:
        connection.execute(  # two minutes on: past the first window's end, inside the lock's
            text("UPDATE login_failures SET window_started_at = datetime(window_started_at, '-2 minutes') "
                 "WHERE client = '10.0.0.9'")
        )  # fmt: skip
    assert not database.reserve_login_attempt("tess", "10.0.0.9", limits)
    database.clear_login_failures("tess", "10.0.0.9")
    assert database.reserve_login_attempt("tess", "10.0.0.9", limits)
    database.close()


def test_a_review_database_from_before_the_chain_is_upgraded_and_verifies(tmp_path: Path) -> None:
    """A department's existing review.sqlite (audit log without hashes, the two old triggers) is chained once, in
    order, gets the new rules, and verifies intact: an upgrade is not tampering."""
    with sqlite3.connect(tmp_path / "review.sqlite") as connection:
        connection.executescript(
            "CREATE TABLE audit_log (entry_id INTEGER PRIMARY KEY AUTOINCREMENT, at DATETIME, username VARCHAR(64), "
            "role VARCHAR(16), action VARCHAR(64), object TEXT, outcome VARCHAR(16), status INTEGER, detail TEXT, "
            "client VARCHAR(64));"
            "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
        )
        for number in range(5):
            connection.execute(
                "INSERT INTO audit_log (at, username, role, action, object, outcome, status, detail, client) "
                "VALUES (?, 'tess', 'trainer', 'view_queue', ?, 'ok', 200, '', '127.0.0.1')",
                (f"2026-11-0{number + 1} 10:00:00.000000", f"queue {number}"),
            )
    database = ReviewDatabase.for_store(tmp_path)
    assert database.rules_missing_at_open == [] and database.verify_audit().intact
    database.audit("view_queue", "ok", 200, object="after the upgrade")
    database.close()
    reopened = ReviewDatabase.for_store(tmp_path)
    report = reopened.verify_audit()
    assert report.intact and report.entries == 6, report.problems
    with pytest.raises(Exception, match="only takes the next entry"), reopened.engine.begin() as connection:
        from sqlalchemy import text

        replace = (
            "REPLACE INTO audit_log (entry_id, at, action, object, outcome, status, detail, client) "
            "VALUES (2, '2026-11-02 10:00:00.000000', 'x', 'x', 'ok', 200, '', '')"
        )
        connection.execute(text(replace))
    reopened.close()
