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
