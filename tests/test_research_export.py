"""The de-identified research export and its PII redaction: real presidio, usaddress and phonenumbers, the real
scoring stage and flags, no mocks and no network."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from bwc.config import BwcConfig
from bwc.pseudonym import store_pseudonymizer
from bwc.research.export import MANIFEST, README, TABLES, ExportError, export_store
from bwc.research.pii_eval.evaluate import TARGET_RECALL, TEST_SET, evaluate, read_set
from bwc.research.redact import PII_TYPES, PLACEHOLDERS, Redactor
from bwc.store import Store
from scoring.flags import flag_store
from scoring.stage import ScoringStage
from scoring.table import read_transcripts

OF, CV = "officer", "civilian"
EXPORTED = {f"{table}.parquet" for table in TABLES} | {MANIFEST, README}

# (utterance, the utterance before it or None, PII type, the PII words in it)
TYPICAL = [
    ("Good evening, I'm Officer Daniel Reyes with the police department.", None, "PERSON", "Daniel Reyes"),
    ("Okay, Mr. Whitfield, stay in the vehicle.", None, "PERSON", "Whitfield"),
    ("Tyrone Jackson.", "What's your full name?", "PERSON", "Tyrone Jackson"),
    ("My last name is Nguyen, N-G-U-Y-E-N.", None, "PERSON", "N-G-U-Y-E-N"),
    ("I live at 1422 Elm Street, apartment 3B.", None, "ADDRESS", "1422 Elm Street, apartment 3B"),
    ("It's fourteen twenty-two Elm Street.", None, "ADDRESS", "fourteen twenty-two Elm Street"),
    ("Send it to PO Box 118, San Leandro.", None, "ADDRESS", "PO Box 118"),
    ("My cell is (415) 867-0932.", None, "PHONE", "867-0932"),
    ("Five one oh, three two two, eight eight four one.", "What's a good number?", "PHONE", "eight eight four one"),
    ("Running plate 7ABC123, California.", None, "PLATE", "7ABC123"),
    ("Running a plate, six Tom Ocean Mary four four two.", None, "PLATE", "Tom Ocean Mary"),
    ("Date of birth 3/14/1988.", None, "DOB", "3/14/1988"),
    ("March third, nineteen ninety.", "What's your date of birth?", "DOB", "March third, nineteen ninety"),
    ("My social is 523-81-4470.", None, "SSN", "523-81-4470"),
    ("Four five six, two two, one nine eight seven.", "What's your social?", "SSN", "one nine eight seven"),
    ("My email is tiffany.ng@yahoo.com.", None, "EMAIL", "tiffany.ng@yahoo.com"),
    ("It's d underscore ramos at hotmail dot com.", None, "EMAIL", "ramos at hotmail dot com"),
]
NEGATIVES = [
    "Officer, I wasn't speeding.",
    "You were doing forty five in a twenty five.",
    "We're heading westbound on Main Street toward the freeway.",
    "It's 10:42 PM, I'm going to note that on the citation.",
    "Your case number is 24-118734, write that down.",
    "My badge number is 4471 if you want to file a complaint.",
    "The fine is going to be around $238, you can pay online.",
    "Your court date is June 14th at 8:30 in the morning.",
    "It's a 2015 Honda Civic, silver, registered to you?",
    "Yes sir. No, ma'am. Thank you, Officer.",
    "Unit 12, 10-4, show you code 4 at Main and Fifth.",
]

# A small department: every encounter holds PII in its text; H1 is hostile and X1 exemplary, so both get flagged.
OFFICERS = {"H1": "B4711", "X1": "B4712", "O1": "B4711", "O2": "B4713", "O3": "B4712", "O4": "B4713"}
SCRIPTS = {
    "H1": [
        (OF, "Hands on the wheel! Get out of the car, Marcus, now."),
        (CV, "My name is Marcus Bell, what did I do?"),
        (OF, "Shut up, you idiot Bell, or I'll drag you out."),
        (OF, "Running plate 7ABC123, and his number is 510-555-2341."),
        (OF, "Move again and you're going to regret it, genius."),
        (OF, "Stop talking. Face the car."),
    ],
    "X1": [
        (OF, "Good evening, sir. I'm Officer Priya Raman with the city police department."),
        (OF, "I stopped you because your registration sticker is expired, sir."),
        (CV, "Oh no. I'm Jessica Parker, I live at 1422 Elm Street."),
        (OF, "No problem at all, Ms. Parker. It's okay, you're not in any trouble."),
        (OF, "Thank you so much for your patience. Please drive safely and have a wonderful evening, ma'am."),
    ],
    "O1": [
        (OF, "Can I see your license and registration?"),
        (CV, "Sure. My date of birth is 3/14/1988 if you need it."),
        (OF, "Okay, wait here while I run this."),
    ],
    "O2": [
        (OF, "Do you know how fast you were going?"),
        (CV, "No, Officer. You can call my wife Denise at 925-301-7784."),
        (OF, "You were going fifty in a thirty five. Here's your citation."),
    ],
    "O3": [
        (OF, "What's your social? I can't find you by name."),
        (CV, "It's 619-40-2285."),
        (OF, "Alright, here's your license back. Have a good one."),
    ],
    "O4": [
        (OF, "Evening. Your headlight is out."),
        (CV, "Email me the ticket, kwong22@gmail.com."),
        (OF, "Get it fixed this week. Take care."),
    ],
}
RECORDING = {"X1": "9f2c41d07a3be512"}  # a recording id: exported only as a pseudonym
SPEAKERS = {OF: "Ofc. Priya Raman", CV: "Jessica Parker"}  # X1's speaker column names people: renamed on export
# Strings from the store that must appear nowhere in the export, in any case.
FORBIDDEN = [
    *OFFICERS.values(), *RECORDING.values(), "EV-2026-", "Marcus", "Bell", "Priya", "Raman", "Jessica", "Parker",
    "Denise", "7ABC123", "510-555-2341", "925-301-7784", "1422 Elm", "3/14/1988", "619-40-2285", "kwong22",
]  # fmt: skip


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(("text", "context", "kind", "words"), TYPICAL)
def test_each_type_is_redacted_in_typical_sentences(
    redactor: Redactor, text: str, context: str | None, kind: str, words: str
) -> None:
    result = redactor.redact(text, context)
    assert words not in result.text, result
    assert PLACEHOLDERS[kind] in result.text, result
    assert kind in {span.type for span in result.spans}
    assert all(text[span.start : span.end].strip() == text[span.start : span.end] for span in result.spans)


@pytest.mark.parametrize("text", NEGATIVES)
def test_negatives_are_left_alone(redactor: Redactor, text: str) -> None:
    result = redactor.redact(text)
    assert result.text == text and result.spans == (), result


def test_held_out_test_set_meets_the_recall_target(redactor: Redactor) -> None:
    """The acceptance check: recall of at least 0.95 for every PII type on the held-out test set."""
    utterances = read_set(TEST_SET)
    assert len(utterances) >= 300
    assert all(sum(s[2] == kind for u in utterances for s in u.spans) >= 40 for kind in PII_TYPES)
    evaluation = evaluate(utterances, redactor, "test")
    recalls = {score.type: round(score.recall, 3) for score in evaluation.scores}
    assert all(recalls[kind] >= TARGET_RECALL for kind in PII_TYPES), (recalls, evaluation.misses)
    assert evaluation.score("all").precision >= 0.9, evaluation.false_alarms


NO_NETWORK = """
import json, socket, sys
attempts = []
def refuse(name):
    def call(*args, **kwargs):
        attempts.append([name, repr(args)[:200]])
        raise OSError("network disabled by the test")
    return call
socket.socket.connect = refuse("connect")
socket.socket.connect_ex = refuse("connect_ex")
socket.create_connection = refuse("create_connection")
socket.getaddrinfo = refuse("getaddrinfo")
from bwc.research.redact import Redactor
redactor = Redactor()
texts = ["Email me at marcus.bell@outlook.com or jsmith87@gmail.com.", "I'm Officer Chen, call 510-555-2341.",
         "Running plate 7ABC123.", "I live at 1422 Elm Street.", "DOB 3/14/1988, social 523-81-4470."]
print(json.dumps({"attempts": attempts, "redacted": [redactor.redact(text).text for text in texts]}))
"""


def test_nothing_connects_to_the_network(tmp_path: Path, redactor: Redactor, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh interpreter, sockets refused before anything is imported: import, load and redaction. tldextract's cache
    # is pointed at an empty folder, so a default extractor would have to download the suffix list.
    env = os.environ | {"TLDEXTRACT_CACHE": str(tmp_path / "tld"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    completed = subprocess.run(
        [sys.executable, "-c", NO_NETWORK], capture_output=True, text=True, timeout=300, env=env, cwd=Path.cwd()
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert report["redacted"][0] == "Email me at [EMAIL] or [EMAIL]."
    assert all("[" in text for text in report["redacted"])
    # And in this process: a new redactor and many redactions, every way of connecting refused.
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args)[:200])
        raise OSError("network disabled by the test")

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    fresh = Redactor()
    for text, context, _, _ in TYPICAL:
        fresh.redact(text, context)
    assert attempts == []


# -- the export -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store scored by the real scoring stage from a transcript table full of PII, and flagged."""
    root = tmp_path_factory.mktemp("export")
    rows = []
    for number, (encounter, lines) in enumerate(SCRIPTS.items()):
        for turn, (role, text) in enumerate(lines, start=1):
            rows.append(
                {
                    "encounter_id": f"EV-2026-{encounter}",
                    "turn": turn,
                    "role": role,
                    "text": text,
                    "start": 4.0 * turn,
                    "end": 4.0 * turn + 3.0,
                    "officer_id": OFFICERS[encounter],
                    "recorded_at": f"2026-03-{number + 10:02d}T22:15:00-05:00",
                    "recording_id": RECORDING.get(encounter),
                    "speaker": SPEAKERS[role] if encounter == "X1" else None,
                }
            )
    pd.DataFrame(rows).to_csv(root / "stops.csv", index=False)
    store = Store(root / "store")
    store.write_scores("stops", ScoringStage.load()(read_transcripts(root / "stops.csv")))
    summary = flag_store(store, BwcConfig().flags)
    assert summary.poor >= 1 and summary.exemplary >= 1
    # Things a store holds that must never leave it.
    (store.root / "clips" / "_files").mkdir(parents=True)
    (store.root / "clips" / "_files" / "c1.ogg").write_bytes(b"OggS audio")
    (store.root / "catalog.sqlite").write_bytes(b"SQLite format 3\x00")
    (store.root / "review.sqlite").write_bytes(b"SQLite format 3\x00")
    return store.root


@pytest.fixture(scope="module")
def exported(store: Path, redactor: Redactor, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "export"
    summary = export_store(store, out, redactor=redactor)
    assert summary.rows["encounter_scores"] == len(SCRIPTS) and summary.officers == 3
    assert summary.rows["flags"] >= 2 and summary.redacted["PERSON"] >= 5
    return out


def _decoded(path: Path) -> str:
    """Everything a file says: a Parquet table's rows and metadata as text, any other file as it is."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        return json.dumps(table.to_pylist(), default=str) + str(table.schema) + str(pq.read_metadata(path))
    return path.read_text(encoding="utf-8")


def test_export_holds_only_de_identified_tables(store: Path, exported: Path) -> None:
    assert {path.name for path in exported.iterdir()} == EXPORTED  # no audio, clips, catalog, review db, secrets
    assert (store / "secrets" / "pseudonym.key").exists()
    key = (store / "secrets" / "pseudonym.key").read_text().strip()
    for path in exported.iterdir():
        raw, text = path.read_bytes(), _decoded(path)
        for forbidden in [*FORBIDDEN, key]:
            assert forbidden.encode() not in raw, (path.name, forbidden)
            # Bounded by anything but letters and digits: a pseudonym is keyed hex from a random key, so "…9b47130…"
            # inside one is chance, not a leaked badge (CI once failed on exactly that).
            pattern = rf"(?<![a-z0-9]){re.escape(forbidden)}(?![a-z0-9])"
            assert not re.search(pattern, text, re.IGNORECASE), (path, forbidden)
    utterances = pd.read_parquet(exported / "utterance_scores.parquet")
    assert "utterance_id" not in utterances.columns
    assert "Officer [PERSON]" in " ".join(utterances["text"])
    assert set(utterances["speaker"].dropna()) == {"speaker-1", "speaker-2"}
    assert utterances["acts_evidence"].dropna().map(json.loads).map(lambda acts: isinstance(acts, dict)).all()
    encounters = pd.read_parquet(exported / "encounter_scores.parquet")
    assert "recorded_at" not in encounters.columns
    assert set(encounters["recorded_date"]) == {date(2026, 3, day) for day in range(11, 17)}  # UTC dates
    flags = pd.read_parquet(exported / "flags.parquet")
    for spans in flags["spans"]:
        assert all(set(span) == {"turn", "start", "end", "why"} for span in json.loads(spans))


def test_officers_are_pseudonymised_consistently(store: Path, exported: Path) -> None:
    keyed = store_pseudonymizer(store)
    encounters = pd.read_parquet(exported / "encounter_scores.parquet")
    utterances = pd.read_parquet(exported / "utterance_scores.parquet")
    flags = pd.read_parquet(exported / "flags.parquet")
    assert set(encounters["officer_id"]) == {keyed(officer) for officer in OFFICERS.values()}
    assert encounters["encounter_id"].str.fullmatch(r"encounter-[0-9a-f]{10}").all()
    assert set(utterances["encounter_id"]) == set(encounters["encounter_id"])
    assert encounters["recording_id"].dropna().str.fullmatch(r"recording-[0-9a-f]{10}").all()
    assert encounters["recording_id"].notna().sum() == len(RECORDING)
    # The same officer has the same pseudonym in every table: flags agree with encounter scores.
    officer_of = dict(zip(encounters["encounter_id"], encounters["officer_id"], strict=True))
    assert len(flags) >= 2 and all(
        officer_of[e] == o for e, o in zip(flags["encounter_id"], flags["officer_id"], strict=True)
    )
    # Two encounters of officer B4711 share one pseudonym; the three officers have three.
    assert encounters["officer_id"].value_counts().tolist() == [2, 2, 2]


def test_manifest_describes_the_files(store: Path, exported: Path) -> None:
    manifest = json.loads((exported / MANIFEST).read_text())
    assert set(manifest["files"]) == EXPORTED - {MANIFEST}
    for name, entry in manifest["files"].items():
        data = (exported / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    for table in TABLES:
        described = manifest["tables"][table]
        arrow = pq.read_table(exported / described["file"])
        assert described["rows"] == arrow.num_rows and list(described["columns"]) == arrow.schema.names
    assert manifest["source_store"] == str(store) and manifest["bwc_version"]
    assert manifest["redaction"]["pii_types"] == list(PII_TYPES) and manifest["redaction"]["version"]
    assert "review.sqlite" in manifest["removed"]["withheld"] and manifest["pseudonyms"]["key_id"].startswith("key-")


def test_export_refuses_a_folder_that_is_not_empty(
    store: Path, exported: Path, redactor: Redactor, tmp_path: Path
) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_store(store, busy, redactor=redactor)
    with pytest.raises(ExportError, match="no bwc research export"):
        export_store(store, busy, redactor=redactor, overwrite=True)
    assert (busy / "notes.txt").read_text() == "mine" and [p.name for p in busy.iterdir()] == ["notes.txt"]
    with pytest.raises(ExportError, match="not empty"):
        export_store(store, exported, redactor=redactor)


def test_the_same_key_gives_the_same_pseudonyms(
    store: Path, exported: Path, redactor: Redactor, tmp_path: Path
) -> None:
    def pseudonyms(folder: Path) -> list[tuple[str, str]]:
        table = pd.read_parquet(folder / "encounter_scores.parquet")
        return sorted(zip(table["encounter_id"], table["officer_id"], strict=True))

    again = tmp_path / "again"
    export_store(store, again, redactor=redactor)
    assert pseudonyms(again) == pseudonyms(exported)
    export_store(store, again, redactor=redactor, overwrite=True)  # replaces a previous export
    assert pseudonyms(again) == pseudonyms(exported) and {p.name for p in again.iterdir()} == EXPORTED
    other_key = tmp_path / "other.key"
    other = export_store(store, tmp_path / "other", key_file=other_key, redactor=redactor)
    first, second = pseudonyms(exported), pseudonyms(tmp_path / "other")
    assert not {e for e, _ in first} & {e for e, _ in second} and not {o for _, o in first} & {o for _, o in second}
    assert other.key_id != json.loads((exported / MANIFEST).read_text())["pseudonyms"]["key_id"]
    assert other_key.read_text().strip() not in (tmp_path / "other" / MANIFEST).read_text()
