"""From words and speaker turns to a speaker-attributed transcript, and its WebVTT and RTTM files.

Word→speaker assignment: each word goes to the turn it overlaps most (on a tie, the shorter turn: a short turn
nested in a long one is the more specific evidence); a word that overlaps no turn goes to the
nearest turn in time; when diarization found no turn at all every word gets :data:`UNKNOWN_SPEAKER`. So no word is
ever left without a speaker. Utterances are one speaker's consecutive words, split at long pauses.

Example
-------
>>> words = (Word(0.1, 0.4, "license", 0.9), Word(0.5, 0.9, "please", 0.9), Word(1.2, 1.5, "okay", 0.8))
>>> turns = (SpeakerTurn(0.0, 1.0, "SPEAKER_00"), SpeakerTurn(1.1, 2.0, "SPEAKER_01"))
>>> [u.text for u in build_utterances("r1", assign_speakers(words, turns))]
['license please', 'okay']
"""

from __future__ import annotations

import bisect
import html
from collections.abc import Sequence
from pathlib import Path

import webvtt
from pyannote.core import Annotation, Segment
from pyannote.database.util import load_rttm

from bwc.records import UNKNOWN_SPEAKER, SpeakerTurn, Utterance, Word

DEFAULT_MAX_PAUSE_S = 1.5  # a longer silence between one speaker's words starts a new utterance


def assign_speakers(words: Sequence[Word], turns: Sequence[SpeakerTurn]) -> tuple[Word, ...]:
    """Give every word a speaker: largest overlap (ties: shorter turn), else nearest turn, else :data:`UNKNOWN_SPEAKER`.

    Runs in O((W + T) log T): turns are sorted once and each word looks only at turns that can touch it.
    """
    if not turns:
        return tuple(_with_speaker(word, UNKNOWN_SPEAKER) for word in words)
    ordered = sorted(turns, key=lambda turn: (turn.start, turn.end))
    starts = [turn.start for turn in ordered]
    # Turns can nest, so a turn starting before the word may still reach past it: keep the running max end.
    max_end_so_far: list[float] = []
    running = float("-inf")
    for turn in ordered:
        running = max(running, turn.end)
        max_end_so_far.append(running)

    assigned = []
    for word in words:
        last_candidate = bisect.bisect_left(starts, word.end)  # turns starting at/after word.end cannot overlap
        best_speaker, best_key = None, (0.0, 0.0)
        index = last_candidate - 1
        while index >= 0 and max_end_so_far[index] > word.start:
            turn = ordered[index]
            key = (word.overlap(turn.start, turn.end), turn.start - turn.end)  # most overlap, then shortest
            if key[0] > 0 and key > best_key:
                best_speaker, best_key = turn.speaker, key
            index -= 1
        if best_speaker is None:
            best_speaker = _nearest_turn(word, ordered, last_candidate).speaker
        assigned.append(_with_speaker(word, best_speaker))
    return tuple(assigned)


def build_utterances(
    recording_id: str, words: Sequence[Word], max_pause_s: float = DEFAULT_MAX_PAUSE_S
) -> tuple[Utterance, ...]:
    """Group speaker-assigned words (in time order) into utterances; every word lands in exactly one."""
    groups: list[list[Word]] = []
    for word in sorted(words, key=lambda w: (w.start, w.end)):
        if word.speaker is None:
            raise ValueError("build_utterances needs words with speakers: call assign_speakers first")
        current = groups[-1] if groups else None
        if current and current[-1].speaker == word.speaker and word.start - current[-1].end <= max_pause_s:
            current.append(word)
        else:
            groups.append([word])
    return tuple(
        Utterance(
            utterance_id=f"{recording_id}-{index:05d}",
            speaker=group[0].speaker or UNKNOWN_SPEAKER,
            start=group[0].start,
            end=max(word.end for word in group),
            text=" ".join(word.text for word in group if word.text),
            words=tuple(group),
        )
        for index, group in enumerate(groups)
    )


def write_vtt(path: str | Path, utterances: Sequence[Utterance]) -> None:
    """WebVTT with one cue per utterance and its speaker as a ``<v>`` voice tag."""
    document = webvtt.WebVTT()
    for utterance in utterances:
        end = max(utterance.end, utterance.start + 0.001)  # a cue must not end before it starts
        text = html.escape(utterance.text, quote=False)
        document.captions.append(
            webvtt.Caption(_vtt_time(utterance.start), _vtt_time(end), f"<v {utterance.speaker}>{text}")
        )
    Path(path).write_text(document.content, encoding="utf-8")


def read_vtt(path: str | Path) -> list[tuple[float, float, str, str]]:
    """Cues of a WebVTT file as ``(start, end, speaker, text)``; speaker is "" for cues without a voice tag."""
    cues = []
    for caption in webvtt.read(str(path)).captions:
        cues.append((_seconds(caption.start), _seconds(caption.end), caption.voice or "", html.unescape(caption.text)))
    return cues


def turns_to_annotation(uri: str, turns: Sequence[SpeakerTurn]) -> Annotation:
    annotation = Annotation(uri=uri)
    for index, turn in enumerate(turns):
        annotation[Segment(turn.start, turn.end), index] = turn.speaker
    return annotation


def write_rttm(path: str | Path, uri: str, turns: Sequence[SpeakerTurn]) -> None:
    """RTTM (NIST) of the speaker turns, written by pyannote.core so pyannote reads it back as it wrote it."""
    with open(path, "w", encoding="utf-8") as handle:
        turns_to_annotation(uri, turns).write_rttm(handle)


def read_rttm(path: str | Path) -> tuple[SpeakerTurn, ...]:
    """Speaker turns of an RTTM file (all its uris), read with pyannote.database."""
    turns = []
    for annotation in load_rttm(str(path)).values():
        for segment, _, speaker in annotation.itertracks(yield_label=True):
            turns.append(SpeakerTurn(start=segment.start, end=segment.end, speaker=str(speaker)))
    return tuple(sorted(turns, key=lambda turn: (turn.start, turn.end, turn.speaker)))


def _with_speaker(word: Word, speaker: str) -> Word:
    return Word(start=word.start, end=word.end, text=word.text, probability=word.probability, speaker=speaker)


def _nearest_turn(word: Word, ordered: Sequence[SpeakerTurn], insertion: int) -> SpeakerTurn:
    """The turn closest in time to a word that overlaps none (ties go to the earlier turn)."""
    best = ordered[min(insertion, len(ordered) - 1)]
    best_gap = max(best.start - word.end, 0.0)
    for turn in ordered[:insertion]:  # turns before the word: gap is word.start - turn.end
        gap = word.start - turn.end
        if gap < best_gap or (gap == best_gap and turn.start < best.start):
            best, best_gap = turn, gap
    return best


def _vtt_time(seconds: float) -> str:
    milliseconds = round(max(seconds, 0.0) * 1000)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    secs, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{milliseconds:03d}"


def _seconds(timestamp: str) -> float:
    hours, minutes, seconds = timestamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
