"""Role attribution and prosody on synthetic espeak-ng scenes whose roles are known (real audio, real measurements)."""

from __future__ import annotations

import pytest

from bwc.acoustics import measure_span, noise_floor_db
from bwc.demo import Line, attribution_scene, load_scripts, render_scene, scene_transcript
from bwc.records import TranscriptLine
from scoring.prosody import relative_prosody
from scoring.roles import attribute_roles


@pytest.mark.parametrize("seed", [3, 8])
def test_officer_civilian_and_radio_are_found(seed: int) -> None:
    scripts = load_scripts()
    script = scripts[scripts["encounter_id"] == ("demo-002" if seed % 2 else "demo-003")]
    audio, truth = attribution_scene(script, seed=seed)
    speakers = {"officer": "SPEAKER_01", "civilian": "SPEAKER_00", "radio": "SPEAKER_02"}
    lines = scene_transcript(audio, truth, speakers, "scene")
    roles = {role.speaker: role for role in attribute_roles(lines)}
    assert {speaker: role.role for speaker, role in roles.items()} == {
        "SPEAKER_01": "officer",
        "SPEAKER_00": "civilian",
        "SPEAKER_02": "radio",
    }
    assert roles["SPEAKER_01"].confidence > 0.9
    # Sound alone is enough here: the words are withheld.
    by_sound = {role.speaker: role.role for role in attribute_roles(lines, use_text=False)}
    assert by_sound["SPEAKER_01"] == "officer"


def test_words_decide_when_the_sound_cannot() -> None:
    """Two speakers at the same level and distance: the one asking for licence and registration is the officer."""
    lines = [
        Line("officer", "Good evening. The reason I stopped you is your tail light.", 0.5, voice="en-us+m1", level=0.4),
        Line("officer", "May I see your license and registration?", 0.6, voice="en-us+m1", level=0.4),
        Line("officer", "Thank you, I'll be right back.", 0.6, voice="en-us+m1", level=0.4),
    ]
    civilian = [
        Line("officer", "Why did you stop me, officer?", 0.6, voice="en-us+f2", level=0.4),
        Line("officer", "Here you go, officer.", 0.6, voice="en-us+f2", level=0.4),
    ]
    ordered = [lines[0], civilian[0], lines[1], civilian[1], lines[2]]
    audio, truth = render_scene(ordered, lead_in_s=1.0, tail_s=0.5, seed=1)  # both placed near (officer role)
    speakers = ["A", "B", "A", "B", "A"]
    floor = noise_floor_db(audio)
    transcript = [
        TranscriptLine("scene", i + 1, "unknown", line.text, speaker=speakers[i], start=s, end=e,
                       acoustics=measure_span(audio, s, e, floor))
        for i, ((s, e, _), line) in enumerate(zip(truth, ordered, strict=True))
    ]  # fmt: skip
    roles = {role.speaker: role.role for role in attribute_roles(transcript)}
    assert roles == {"A": "officer", "B": "civilian"}


def test_unsure_attribution_says_unknown() -> None:
    quiet = [
        TranscriptLine("scene", 1, "unknown", "okay", speaker="A", start=0.0, end=1.0),
        TranscriptLine("scene", 2, "unknown", "okay", speaker="B", start=1.5, end=2.5),
    ]
    assert {role.role for role in attribute_roles(quiet)} == {"unknown"}


def test_raised_voice_is_relative_to_the_officer_own_baseline() -> None:
    calm = [Line("officer", text, 0.6, level=0.2) for text in ("Good evening.", "Step out of the car, please.")]
    calm.append(Line("officer", "I said now, get out of the car!", 0.6, level=0.2))
    calm.append(Line("officer", "Put your hands behind your back.", 0.6, level=0.2))
    shout = Line("officer", "Get out of the car right now!", 0.6, level=0.8, pitch=90)
    scene = [calm[0], calm[1], shout, calm[2], calm[3]]
    audio, truth = render_scene(scene, lead_in_s=1.0, tail_s=0.5, seed=2)
    floor = noise_floor_db(audio)
    prosody = relative_prosody([measure_span(audio, start, end, floor) for start, end, _ in truth])
    assert [p.raised_voice for p in prosody] == [False, False, True, False, False]
    assert prosody[2].loudness_rel_db > 6 and prosody[2].pitch_rel_st > 2


def _transcript(lines: list[Line], speakers: list[str], seed: int) -> list[TranscriptLine]:
    audio, truth = render_scene(lines, lead_in_s=1.0, tail_s=0.5, seed=seed)
    floor = noise_floor_db(audio)
    return [
        TranscriptLine("scene", i + 1, "unknown", line.text, speaker=speakers[i], start=s, end=e,
                       acoustics=measure_span(audio, s, e, floor))
        for i, ((s, e, _), line) in enumerate(zip(truth, lines, strict=True))
    ]  # fmt: skip


OFFICER_SAYS = ("Good evening. Do you know why I pulled you over?", "It was your speed back there, about fifty.",
                "Alright, wait here for me a moment.", "Thanks for waiting, here is what happens now.")  # fmt: skip
CIVILIAN_SAYS = ("No, I have no idea at all.", "I was just driving home from my sister's house.",
                 "Okay, I will wait right here.", "That sounds fair to me.")  # fmt: skip


def test_the_wearer_split_in_two_by_diarization_is_one_officer() -> None:
    """Diarization gave the wearer's voice two labels (A, and A2 for the quieter half of what they said): both sound
    as near as the camera, far apart from the community member, so both are the officer."""
    lines, speakers = [], []
    for index, (said, answer) in enumerate(zip(OFFICER_SAYS, CIVILIAN_SAYS, strict=True)):
        lines.append(Line("officer", said, 0.6, voice="en-us+m1", level=0.5 if index < 2 else 0.3))
        speakers.append("A" if index < 2 else "A2")
        lines.append(Line("civilian", answer, 0.6, voice="en-us+f2", level=0.1))
        speakers.append("B")
    roles = {role.speaker: role for role in attribute_roles(_transcript(lines, speakers, seed=2))}
    assert {speaker: role.role for speaker, role in roles.items()} == {"A": "officer", "A2": "officer", "B": "civilian"}
    assert "as near as the wearer" in roles["A2"].evidence or "as near as the wearer" in roles["A"].evidence


def test_two_community_members_at_different_distances_stay_community_members() -> None:
    """The attack on the rule above: a nearer community member (louder than the other, but far from the camera and
    low-passed) is not joined to the wearer."""
    lines, speakers = [], []
    for index, (said, answer) in enumerate(zip(OFFICER_SAYS, CIVILIAN_SAYS, strict=True)):
        lines.append(Line("officer", said, 0.6, voice="en-us+m1", level=0.5))
        speakers.append("A")
        nearer = index % 2 == 0
        lines.append(
            Line("civilian", answer, 0.6, voice="en-us+f2" if nearer else "en-us+m3", level=0.25 if nearer else 0.06)
        )
        speakers.append("B" if nearer else "C")
    roles = {role.speaker: role.role for role in attribute_roles(_transcript(lines, speakers, seed=3))}
    assert roles == {"A": "officer", "B": "civilian", "C": "civilian"}


def test_a_near_community_member_who_sounds_like_one_is_not_taken_for_the_wearer() -> None:
    """Another attack: a community member right at the camera (unfiltered, a little quieter than the wearer) with a
    farther one behind, which makes a gap the rule looks for; what they say ("officer", "why did you stop me") keeps
    them apart from the wearer."""
    asks = ("Why did you stop me, officer?", "What did I do, officer?", "Here you go, officer.", "I didn't know that.")
    lines, speakers = [], []
    for index, (said, asked) in enumerate(zip(OFFICER_SAYS, asks, strict=True)):
        lines.append(Line("officer", said, 0.6, voice="en-us+m1", level=0.5))
        speakers.append("A")
        lines.append(Line("officer", asked, 0.6, voice="en-us+f2", level=0.3))  # placed near: no distance filter
        speakers.append("B")
        if index % 2:
            lines.append(Line("civilian", CIVILIAN_SAYS[index], 0.6, voice="en-us+m3", level=0.05))
            speakers.append("C")
    roles = {role.speaker: role.role for role in attribute_roles(_transcript(lines, speakers, seed=4))}
    assert roles == {"A": "officer", "B": "civilian", "C": "civilian"}
