"""Flags: department-relative poor and exemplary encounters, on a transcript table scored by the real respect model
and act rules (offline, CPU, a few seconds)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bwc.config import FlagsConfig
from bwc.store import SCHEMAS, Store
from models.acts import detect_acts
from scoring.encounter import BEHAVIOURS
from scoring.flags import compute_flags, flag_store, score_department
from scoring.stage import ScoringStage
from scoring.table import read_transcripts

OF, CV = "officer", "civilian"
NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
HOSTILE_ACTS = ("threat", "insult", "profanity")

# Officer lines written for this test: long encounters that are clearly hostile ...
HOSTILE = {
    "H1": [
        (OF, "Hands on the wheel! Turn the car off."),
        (CV, "What did I do?"),
        (OF, "Shut up, you idiot. Nobody asked you."),
        (CV, "I'm just asking."),
        (OF, "Step out of the car right now or I'll drag you out."),
        (CV, "Okay, okay."),
        (OF, "Stop talking. Face the car."),
        (OF, "Look, I don't care where you're going."),
        (OF, "Get your damn hands where I can see them."),
        (CV, "I'm not moving."),
        (OF, "Answer the question."),
        (OF, "Move again and you're going to regret it, genius."),
    ],
    "H2": [
        (OF, "Get the fuck out of the car."),
        (CV, "Why? What's going on?"),
        (OF, "Don't make me ask again or I'll arrest you."),
        (OF, "Listen, dumbass, I ask the questions."),
        (CV, "I have a right to know."),
        (OF, "Turn your engine off for me."),
        (OF, "You're getting tased if you move."),
        (OF, "Whatever. Give me the paperwork."),
        (CV, "It's in the glove box."),
        (OF, "I don't give a shit where you're going."),
    ],
    "H3": [
        (OF, "Hands up! Out of the car, now."),
        (CV, "Officer, I didn't do anything."),
        (OF, "You're a moron, you know that?"),
        (OF, "Stop talking. License."),
        (CV, "Here, here."),
        (OF, "What the fuck did I just say? Hands up!"),
        (OF, "Sit down, jackass."),
        (OF, "Keep it up and you're going to jail, punk."),
        (CV, "Please, I'm sorry."),
        (OF, "Quit stalling!"),
    ],
}
# ... clearly exemplary: greeting and introduction, the reason early, reassurance, safety, formal titles ...
EXEMPLARY = {
    "X1": [
        (OF, "Good evening, sir. I'm Officer Chen with the city police department."),
        (OF, "I stopped you because your registration sticker is expired, sir."),
        (CV, "Oh no, I forgot to renew it."),
        (OF, "No problem at all, sir. It happens to everyone."),
        (OF, "Would you mind showing me your license when you get a chance, please?"),
        (CV, "Sure, here you go."),
        (OF, "Thank you so much for your patience, sir. I really appreciate it."),
        (OF, "Everything came back fine. It's just a warning, you're free to go."),
        (OF, "Please drive safely and have a wonderful evening, sir."),
    ],
    "X2": [
        (OF, "Good afternoon, ma'am. I'm Deputy Ruiz. Thank you for pulling over so quickly."),
        (OF, "The reason I stopped you today is that your rear brake light is out, ma'am."),
        (CV, "I had no idea."),
        (OF, "It's okay, you're not in any trouble. This won't take long."),
        (OF, "Thanks for waiting, ma'am. I'm sorry it took a while."),
        (CV, "That's fine."),
        (OF, "I appreciate your honesty, ma'am. That's very helpful."),
        (OF, "You're all set, ma'am. Take care and get home safe."),
    ],
    "X3": [
        (OF, "Hello sir, my name is Officer Patel with the county sheriff's office."),
        (OF, "I pulled you over because you rolled through the stop sign back there, sir."),
        (CV, "Sorry, I didn't see it."),
        (OF, "Is everyone okay in the car? Nobody hurt?"),
        (OF, "Don't worry, it happens to everyone. No worries at all."),
        (OF, "I appreciate your honesty, sir. That's very helpful."),
        (OF, "Sorry for the wait, I appreciate you being patient."),
        (OF, "Drive safe, sir, and have a great night."),
    ],
}
# Polite, all five behaviours, and one swear word: never exemplary.
SWORE = [
    (OF, "Good morning, ma'am. I'm Officer Brooks."),
    (OF, "I stopped you because your tail light is out, ma'am."),
    (OF, "Sorry, the damn computer is slow tonight."),
    (OF, "It's okay, no worries. Drive safe."),
]
# A short encounter, extreme on the respect model alone (curt, no threat, insult or profanity) ...
SHORT_CURT = [
    (OF, "Stop talking. License."),
    (CV, "Can you tell me why you stopped me?"),
    (OF, "Answer the question."),
    (OF, "Look, I don't care where you're going."),
]
# ... beside a long one that is moderately but consistently worse than the department.
LONG_WORSE = [
    (OF, "Whatever. Give me the paperwork."),
    (CV, "Okay, one second."),
    (OF, "I don't have all day."),
    (OF, "You should have known better."),
    (CV, "I'm sorry, I was late."),
    (OF, "That's your excuse? Really?"),
    (OF, "Your registration expired last month."),
    (OF, "You again? Unbelievable!"),
    (CV, "I didn't know."),
    (OF, "Not my problem."),
    (OF, "I've heard that one before."),
    (OF, "Slow down next time."),
    (OF, "Any reason you were in a hurry?"),
    (OF, "Sign here."),
    (OF, "Alright, here's your license back."),
]
NO_OFFICER = [(CV, "Hello? Is anyone there?"), (CV, "I think the camera is on.")]
# Ordinary lines: varied, no hostile act, sampled into ordinary encounters.
ORDINARY = [
    "Can I see your license and registration?",
    "Where are you headed tonight?",
    "Do you know how fast you were going?",
    "You were going fifty in a thirty five.",
    "Okay, wait here while I run this.",
    "Is this your current address?",
    "I'm going to write you a citation for the speed.",
    "You can pay it online or contest it in court.",
    "Alright, here's your license back.",
    "Thanks, I'll be right back.",
    "Have a good one.",
    "Turn your engine off for me.",
    "Whose car is this?",
    "How long have you had the vehicle?",
    "Hey, how's it going? Thanks for stopping.",
    "Would you mind showing me your license when you get a chance, please?",
    "Is everyone okay in the car? Nobody hurt?",
    "Everything came back fine. You're free to go.",
    "Okay, I'm going to explain what happens next, sir.",
    "Thank you, sir. I appreciate your patience.",
]
REPLIES = ["Okay.", "Sure.", "Yes, officer.", "Here you go.", "I understand.", "Alright."]
N_ORDINARY = 20
UNTIMED = "X3"  # an encounter whose table has no times: its spans have turns, no start or end


def scripts() -> dict[str, list[tuple[str, str]]]:
    """Every encounter of the test department: 3 hostile, 3 exemplary, 1 polite with a swear word, a short curt
    one, a long moderately worse one, one without officer speech and 20 ordinary ones."""
    rng = np.random.default_rng(7)
    ordinary = {}
    for index in range(N_ORDINARY):
        chosen = rng.choice(len(ORDINARY), size=int(rng.integers(4, 8)), replace=False)
        lines: list[tuple[str, str]] = []
        for line in chosen:
            lines.append((OF, ORDINARY[line]))
            if rng.random() < 0.5:
                lines.append((CV, REPLIES[int(rng.integers(len(REPLIES)))]))
        ordinary[f"O{index:02d}"] = lines
    return {
        **HOSTILE,
        **EXEMPLARY,
        "P-swore": SWORE,
        "S-curt": SHORT_CURT,
        "L-worse": LONG_WORSE,
        "Z-silent": NO_OFFICER,
        **ordinary,
    }


def transcript_table(encounters: dict[str, list[tuple[str, str]]]) -> pd.DataFrame:
    rows = []
    for number, (encounter_id, lines) in enumerate(encounters.items()):
        for turn, (role, text) in enumerate(lines, start=1):
            timed = encounter_id != UNTIMED
            rows.append(
                {
                    "encounter_id": encounter_id,
                    "turn": turn,
                    "role": role,
                    "text": text,
                    "start": 4.0 * turn + 0.5 if timed else None,
                    "end": 4.0 * turn + 3.5 if timed else None,
                    "officer_id": f"B{number % 5}",
                    "recorded_at": f"2026-03-{1 + number % 28:02d}T22:15:00-05:00",
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def stage() -> ScoringStage:
    return ScoringStage.load()


@pytest.fixture(scope="module")
def department(tmp_path_factory: pytest.TempPathFactory, stage: ScoringStage) -> dict[str, object]:
    """One scored store shared by every test: the table, the store and its two score tables."""
    root = tmp_path_factory.mktemp("flags")
    table = transcript_table(scripts())
    table.to_csv(root / "stops.csv", index=False)
    store = Store(root / "store")
    store.write_scores("stops", stage(read_transcripts(root / "stops.csv")))
    return {
        "table": table,
        "store": store,
        "encounters": pd.read_parquet(store.table_path("encounter_scores")),
        "utterances": pd.read_parquet(store.table_path("utterance_scores")),
    }


@pytest.fixture(scope="module")
def flagged(department: dict[str, object]) -> tuple[pd.DataFrame, object]:
    rows, summary = compute_flags(department["encounters"], department["utterances"], FlagsConfig(), now=NOW)
    return pd.DataFrame(rows, columns=SCHEMAS["flags"].names), summary


def flags_of(frame: pd.DataFrame, encounter_id: str) -> dict[str, dict[str, object]]:
    return {row["flag"]: row for row in frame[frame["encounter_id"] == encounter_id].to_dict("records")}


def hostile_turns(lines: list[tuple[str, str]]) -> list[int]:
    return [
        turn
        for turn, (role, text) in enumerate(lines, start=1)
        if role == OF and set(detect_acts(text)) & set(HOSTILE_ACTS)
    ]


def test_hostile_encounters_are_flagged_poor_with_their_words_and_spans(
    department: dict[str, object], flagged: tuple[pd.DataFrame, object]
) -> None:
    frame, _ = flagged
    table = department["table"]
    for encounter_id, lines in HOSTILE.items():
        flags = flags_of(frame, encounter_id)
        assert set(flags) == {"poor"}, (encounter_id, flags)
        poor = flags["poor"]
        assert poor["score"] > 0 and poor["percentile"] >= 90.0
        spans = json.loads(poor["spans"])
        # Hostile utterances come first in importance (each script has at most max_spans of them), then the
        # command before any reason, then the lowest-respect lines.
        hostile = hostile_turns(lines)
        assert 3 <= len(hostile) <= FlagsConfig().max_spans
        assert set(hostile) <= {span["turn"] for span in spans}, (encounter_id, spans)
        assert len(spans) == FlagsConfig().max_spans
        rows = table[table["encounter_id"] == encounter_id].set_index("turn")
        for span in spans:
            assert rows.loc[span["turn"], "role"] == OF
            assert (span["start"], span["end"]) == (rows.loc[span["turn"], "start"], rows.loc[span["turn"], "end"])
            assert span["utterance_id"] is None and span["why"]
        assert [span["start"] for span in spans] == sorted(span["start"] for span in spans)
    h1, h2, h3 = (flags_of(frame, e)["poor"]["reasons"] for e in HOSTILE)
    assert "threat: 'or I'll drag you out', 'going to regret it, genius' (in 2 of 8 officer utterances)" in h1
    assert "insult: 'idiot', 'genius'" in h1 and "profanity: 'damn'" in h1
    assert "a command before any reason: 'hands on the wheel'" in h1 and "SD below the department mean" in h1
    assert "'Don't make me ask again or I'll arrest you'" in h2 and "insult: 'dumbass'" in h2
    assert "profanity: 'fuck', 'shit'" in h2 and "escalation signal 0.83" in h2
    assert "insult: 'moron', 'jackass', 'punk'" in h3 and "threat: 'Keep it up and you're going to jail, punk'" in h3
    whys = {span["turn"]: span["why"] for span in json.loads(flags_of(frame, "H1")["poor"]["spans"])}
    assert whys[5].startswith("threat: 'or I'll drag you out'") and whys[3].startswith("insult: 'idiot'")
    assert whys[1].startswith("a command before any reason: 'hands on the wheel'")


def test_exemplary_encounters_list_every_behaviour(
    department: dict[str, object], flagged: tuple[pd.DataFrame, object]
) -> None:
    frame, summary = flagged
    for encounter_id in EXEMPLARY:
        flags = flags_of(frame, encounter_id)
        assert set(flags) == {"exemplary"}, (encounter_id, flags)
        reasons = flags["exemplary"]["reasons"]
        assert reasons.startswith("respect ") and "SD above the department mean" in reasons
        for description in BEHAVIOURS.values():
            assert description in reasons, (encounter_id, description, reasons)
        spans = json.loads(flags["exemplary"]["spans"])
        # One utterance per behaviour: the greeting line and the reason line are among them.
        assert {1, 2} <= {span["turn"] for span in spans}, spans
        assert len(spans) <= FlagsConfig().max_spans
    x1 = flags_of(frame, "X1")["exemplary"]["reasons"]
    assert "greeted and/or introduced themselves ('Good evening, sir', 'I'm Officer')" in x1
    assert "within the first 45 words ('stopped you because')" in x1 and "Mr./Ms.) ('sir')" in x1
    assert "reassured the person ('No problem')" in x1 and "safety ('drive safely')" in x1
    # Nothing hostile is exemplary; no encounter is both; the polite encounter with a swear word is not exemplary.
    utterances = department["utterances"]
    hostile_encounters = set(utterances.loc[utterances[[f"act_{a}" for a in HOSTILE_ACTS]].any(axis=1), "encounter_id"])
    exemplary = set(frame.loc[frame["flag"] == "exemplary", "encounter_id"])
    assert exemplary == set(EXEMPLARY) and not exemplary & hostile_encounters and "P-swore" in hostile_encounters
    assert frame.groupby("encounter_id")["flag"].nunique().max() == 1
    assert summary.poor == (frame["flag"] == "poor").sum() and summary.exemplary == len(EXEMPLARY)


def test_short_encounters_are_shrunk_more(department: dict[str, object]) -> None:
    encounters, utterances = department["encounters"], department["utterances"]
    scores = score_department(encounters, utterances, FlagsConfig())
    table = scores.table.set_index("encounter_id")
    mean = scores.shrinkage.mean_respect
    assert scores.shrinkage.source == "estimated" and 0.5 <= scores.shrinkage.k <= 50
    short, long = table.loc["S-curt"], table.loc["L-worse"]
    assert short["n_officer_utterances"] == 3 and long["n_officer_utterances"] == 12
    assert short["respect"] < long["respect"] < mean  # the short one is the more extreme on the model alone
    kept = {name: abs(row["respect_shrunk"] - mean) / abs(row["respect"] - mean) for name, row in table.iterrows()}
    assert kept["S-curt"] < kept["L-worse"]
    assert kept["S-curt"] == pytest.approx(3 / (3 + scores.shrinkage.k))
    # Almost no shrinkage: the short curt encounter out-ranks the long one; strong shrinkage: the long one wins.
    weak = score_department(encounters, utterances, FlagsConfig(shrinkage_utterances=0.0001)).table
    strong = score_department(encounters, utterances, FlagsConfig(shrinkage_utterances=50.0)).table
    weak, strong = weak.set_index("encounter_id"), strong.set_index("encounter_id")
    assert weak.loc["S-curt", "poor_percentile"] > strong.loc["S-curt", "poor_percentile"]
    assert weak.loc["S-curt", "poor_score"] > weak.loc["L-worse", "poor_score"]
    assert strong.loc["L-worse", "poor_score"] > strong.loc["S-curt", "poor_score"]
    assert weak.loc["S-curt", "respect_shrunk"] == pytest.approx(short["respect"], abs=1e-3)


def test_percentiles_cover_every_considered_encounter_and_thresholds_hold(
    department: dict[str, object], flagged: tuple[pd.DataFrame, object]
) -> None:
    frame, summary = flagged
    encounters, utterances = department["encounters"], department["utterances"]
    assert summary.considered == len(scripts()) - 1 and summary.excluded == 1  # Z-silent has no officer speech
    scores = score_department(encounters, utterances, FlagsConfig())
    assert "Z-silent" not in set(scores.table["encounter_id"]) and len(scores.table) == summary.considered
    for flag in ("poor", "exemplary"):
        percentiles = scores.table[f"{flag}_percentile"]
        assert percentiles.between(0, 100).all() and percentiles.max() == 100.0
        assert percentiles.min() >= 100.0 / summary.considered
    assert frame["percentile"].between(0, 100).all() and (frame["percentile"] >= 90.0).all()
    strict, strict_summary = compute_flags(encounters, utterances, FlagsConfig(poor_percentile=99.9), now=NOW)
    assert 1 <= strict_summary.poor < summary.poor
    assert all(row["percentile"] == 100.0 for row in strict if row["flag"] == "poor")
    lenient, _ = compute_flags(encounters, utterances, FlagsConfig(poor_percentile=50.0), now=NOW)
    assert sum(row["flag"] == "poor" for row in lenient) > summary.poor
    assert "S-curt" in {row["encounter_id"] for row in lenient if row["flag"] == "poor"}
    none, _ = compute_flags(encounters, utterances, FlagsConfig(exemplary_min_behaviours=6), now=NOW)
    assert not any(row["flag"] == "exemplary" for row in none)
    version = frame["model_version"].iloc[0]
    assert version.startswith(f"flags-1 (k={summary.shrinkage_k:.2f} estimated; poor≥p90; exemplary≥p90 with ≥5")
    assert "scores: respect-2 " in version and (frame["flagged_at"] == pd.Timestamp(NOW)).all()


def test_spans_point_at_scored_utterances(department: dict[str, object], flagged: tuple[pd.DataFrame, object]) -> None:
    frame, _ = flagged
    utterances = department["utterances"].set_index(["encounter_id", "turn"])
    lenient, _ = compute_flags(
        department["encounters"], department["utterances"], FlagsConfig(poor_percentile=0.0, exemplary_percentile=0.0)
    )
    for row in [*frame.to_dict("records"), *lenient]:
        spans = json.loads(row["spans"])
        assert 1 <= len(spans) <= FlagsConfig().max_spans
        for span in spans:
            line = utterances.loc[(row["encounter_id"], span["turn"])]
            assert line["role"] == OF and pd.isna(line["utterance_id"])
            if row["encounter_id"] == UNTIMED:
                assert span["start"] is None and span["end"] is None
            else:
                assert span["start"] == line["start"] and span["end"] == line["end"]
    assert UNTIMED in set(frame["encounter_id"]) and {"S-curt", "L-worse"} <= {row["encounter_id"] for row in lenient}


def test_flag_store_writes_and_rewrites_the_table(department: dict[str, object], tmp_path: Path) -> None:
    store: Store = department["store"]
    path = store.table_path("flags") / "part-current.parquet"
    summary = flag_store(store, FlagsConfig())
    written = pd.read_parquet(path)
    assert list(written.columns) == SCHEMAS["flags"].names
    assert len(written) == summary.poor + summary.exemplary > 0
    assert str(written["recorded_at"].dtype) == "datetime64[us, UTC]" and written["officer_id"].notna().all()
    strict = flag_store(store, FlagsConfig(poor_percentile=99.9, exemplary_percentile=99.9))
    rewritten = pd.read_parquet(store.table_path("flags"))
    assert len(rewritten) == strict.poor + strict.exemplary < len(written)
    assert [p.name for p in store.table_path("flags").iterdir()] == ["part-current.parquet"]
    # An empty store: an empty, readable table.
    empty = Store(tmp_path / "empty")
    nothing = flag_store(empty, FlagsConfig())
    assert (nothing.considered, nothing.poor, nothing.exemplary) == (0, 0, 0)
    table = pd.read_parquet(empty.table_path("flags") / "part-current.parquet")
    assert table.empty and list(table.columns) == SCHEMAS["flags"].names


def test_a_rescored_encounter_counts_once(department: dict[str, object], stage: ScoringStage, tmp_path: Path) -> None:
    """Two transcript tables scoring the same encounter id: the newer one is flagged, with its own utterances."""
    store = Store(shutil.copytree(department["store"].root, tmp_path / "store"))
    corrected = transcript_table({"O03": HOSTILE["H2"]})
    corrected.to_csv(tmp_path / "corrected.csv", index=False)
    store.write_scores("corrected", stage(read_transcripts(tmp_path / "corrected.csv")))
    summary = flag_store(store, FlagsConfig(poor_percentile=75.0))
    flags = pd.read_parquet(store.table_path("flags"))
    assert summary.considered == len(scripts()) - 1
    rescored = flags_of(flags, "O03")["poor"]
    assert rescored["n_officer_utterances"] == sum(role == OF for role, _ in HOSTILE["H2"])
    assert "'dumbass'" in rescored["reasons"]


def test_unknown_weights_are_refused(department: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="unknown component"):
        compute_flags(department["encounters"], department["utterances"], FlagsConfig(weights={"rudeness": 1.0}))
