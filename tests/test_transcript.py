"""Word→speaker assignment on hand-built overlap cases, utterance grouping, WebVTT and RTTM round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import webvtt
from pyannote.database.util import load_rttm

from bwc.records import UNKNOWN_SPEAKER, SpeakerTurn, Word
from bwc.transcript import assign_speakers, build_utterances, read_rttm, read_vtt, write_rttm, write_vtt

A, B, C = "SPEAKER_00", "SPEAKER_01", "SPEAKER_02"


def w(start: float, end: float, text: str = "w") -> Word:
    return Word(start=start, end=end, text=text, probability=0.9)


def speakers(words: list[Word], turns: list[SpeakerTurn]) -> list[str | None]:
    return [word.speaker for word in assign_speakers(words, turns)]


def test_word_inside_one_turn() -> None:
    assert speakers([w(1.0, 1.5)], [SpeakerTurn(0.0, 2.0, A), SpeakerTurn(3.0, 4.0, B)]) == [A]


def test_word_spanning_two_turns_goes_to_larger_overlap() -> None:
    turns = [SpeakerTurn(0.0, 1.2, A), SpeakerTurn(1.2, 3.0, B)]
    assert speakers([w(1.0, 1.6), w(0.9, 1.3)], turns) == [B, A]


def test_overlapping_speech_picks_the_dominant_turn() -> None:
    turns = [SpeakerTurn(0.0, 5.0, A), SpeakerTurn(2.0, 2.3, B)]
    assert speakers([w(2.0, 2.4)], turns) == [A]  # A covers 0.4 s, B 0.3 s


def test_turn_nested_inside_a_long_turn_is_still_considered() -> None:
    # B starts after A but the word lies wholly in B; A (earlier start, later end) also overlaps it less.
    turns = [SpeakerTurn(0.0, 10.0, A), SpeakerTurn(4.0, 6.0, B), SpeakerTurn(4.5, 4.6, C)]
    words = [w(4.6, 5.8), w(8.0, 8.5)]
    assigned = assign_speakers(words, turns)
    assert [x.speaker for x in assigned] == [B, A]  # A and B both cover [4.6, 5.8]: the shorter, nested B wins
    assert speakers([w(4.6, 5.8)], [SpeakerTurn(0.0, 5.0, A), SpeakerTurn(4.0, 6.0, B)]) == [B]


def test_word_in_a_gap_goes_to_the_nearest_turn() -> None:
    turns = [SpeakerTurn(0.0, 1.0, A), SpeakerTurn(5.0, 6.0, B)]
    assert speakers([w(1.5, 1.8), w(4.0, 4.6), w(7.0, 7.2), w(-0.5, -0.1)], turns) == [A, B, B, A]


def test_no_turns_gives_every_word_the_unknown_speaker() -> None:
    assert speakers([w(0.0, 1.0), w(2.0, 3.0)], []) == [UNKNOWN_SPEAKER, UNKNOWN_SPEAKER]


def test_assignment_keeps_word_fields() -> None:
    (word,) = assign_speakers([Word(1.0, 2.0, "sir", 0.42)], [SpeakerTurn(0.0, 3.0, A)])
    assert (word.start, word.end, word.text, word.probability, word.speaker) == (1.0, 2.0, "sir", 0.42, A)


def test_utterances_split_on_speaker_change_and_long_pause_and_cover_every_word() -> None:
    words = assign_speakers(
        [w(0.0, 0.3, "good"), w(0.4, 0.8, "evening"), w(1.0, 1.3, "hi"), w(1.4, 1.6, "officer"),
         w(1.8, 2.0, "license"), w(5.0, 5.3, "thanks")],
        [SpeakerTurn(0.0, 0.9, A), SpeakerTurn(0.9, 1.7, B), SpeakerTurn(1.7, 6.0, A)],
    )  # fmt: skip
    utterances = build_utterances("rec", words, max_pause_s=1.5)
    assert [(u.speaker, u.text) for u in utterances] == [
        (A, "good evening"),
        (B, "hi officer"),
        (A, "license"),
        (A, "thanks"),
    ]
    assert [u.utterance_id for u in utterances] == ["rec-00000", "rec-00001", "rec-00002", "rec-00003"]
    assert [x for u in utterances for x in u.words] == sorted(words, key=lambda x: (x.start, x.end))
    assert all(u.start == u.words[0].start and u.end == u.words[-1].end for u in utterances)


def test_utterances_require_assigned_speakers() -> None:
    with pytest.raises(ValueError, match="assign_speakers"):
        build_utterances("rec", [w(0.0, 1.0)])


def test_vtt_round_trip_with_voices_and_markup_characters(tmp_path: Path) -> None:
    words = assign_speakers(
        [w(0.5, 1.0, "Step"), w(1.0, 1.5, "<out>"), w(4000.25, 4001.0, "Q&A")],
        [SpeakerTurn(0.0, 2.0, A), SpeakerTurn(3999.0, 4002.0, B)],
    )
    utterances = build_utterances("rec", words)
    path = tmp_path / "rec.vtt"
    write_vtt(path, utterances)
    assert read_vtt(path) == [(0.5, 1.5, A, "Step <out>"), (4000.25, 4001.0, B, "Q&A")]
    parsed = webvtt.read(str(path))  # an independent reader agrees on voices and times
    assert [c.voice for c in parsed.captions] == [A, B]
    assert parsed.captions[1].start == "01:06:40.250"


def test_rttm_round_trip_through_pyannote(tmp_path: Path) -> None:
    turns = (SpeakerTurn(0.5, 2.25, A), SpeakerTurn(2.0, 3.5, B), SpeakerTurn(10.0, 12.125, A))
    path = tmp_path / "rec.rttm"
    write_rttm(path, "rec", turns)
    assert read_rttm(path) == turns
    annotation = load_rttm(str(path))["rec"]
    assert annotation.labels() == [A, B]
    assert annotation.label_duration(A) == pytest.approx(1.75 + 2.125)
