"""Body-camera scenes mixed from real recorded voices, with the truth known: who speaks when, in which role, saying
what. For measuring transcription, diarization and role attribution on real speech (benchmarks and tests).

A scene is laid out the way BWC audio sounds (as :mod:`bwc.demo` does with synthetic voices): the camera wearer
(officer) close to the microphone, loud and full-band; community members farther away (quieter, low-passed,
reverberant); a dispatch radio burst (band-limited, clipped); road noise under everything; long stretches without
speech; and now and then a community member starting before the officer has finished (overlap).

The voices come from a folder of single-speaker utterances with reference text (a ``refs.tsv`` with ``file``,
``speaker`` and ``reference`` columns, as in the project's development data): bwc itself never reads such a folder
at run time.

Example
-------
>>> voices = load_voices(Path("../shared/data/speech"))                         # doctest: +SKIP
>>> scene = real_voice_scene(voices, officer="vctk_p226", civilians=["vctk_p225"], seed=3)   # doctest: +SKIP
>>> scene.lines[0]                                                                # doctest: +SKIP
SceneLine(role='officer', speaker='vctk_p226', start=2.0, end=8.5, text='...')
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bwc.acoustics import frame_levels_db
from bwc.audio import SAMPLE_RATE, read_pcm
from bwc.demo import place, road_noise

# A voice's level is set by its speech (the RMS of its loudest half of 25 ms frames, as bwc.acoustics measures it),
# not by its peak: distance sets how loud speech arrives, and a peak may be a cough (one development recording's
# peak is a cough 29 dB above its median frame: peak-normalised, the wearer came out 10 dB quieter in those lines).
OFFICER_LEVEL_DB = (-24.0, -18.0)  # speech level of the wearer's voice, dBFS, drawn per line
CIVILIAN_LEVEL_DB = (-38.0, -28.0)  # community members: farther from the camera
RADIO_LEVEL = 0.08  # dispatch through the radio's speaker: peak amplitude (it is clipped)
PAUSE_S = (0.4, 1.6)  # silence between lines
LONG_PAUSE_S = (8.0, 14.0)  # once per scene: the officer walks back to the car
OVERLAP_S = (0.3, 0.9)  # how far a line may start before the previous one ends
OVERLAP_SHARE = 0.2  # share of civilian lines that start inside the officer's line before them
LEAD_IN_S = (2.0, 5.0)  # noise before the first line
TAIL_S = 2.0  # noise after the last line


@dataclass(frozen=True)
class Voice:
    """One real single-speaker utterance."""

    speaker: str  # speaker id of the source corpus
    path: Path  # the audio file
    text: str  # its reference transcript


@dataclass(frozen=True)
class SceneLine:
    """A line as placed in a scene."""

    role: str  # officer | civilian | radio
    speaker: str  # whose voice (source speaker id)
    start: float  # seconds from the scene's start
    end: float  # seconds from the scene's start
    text: str  # what is said (the utterance's reference text)


@dataclass(frozen=True)
class Scene:
    """A mixed scene and its truth."""

    scene_id: str  # a name for the scene
    audio: np.ndarray  # 16 kHz mono float32
    lines: tuple[SceneLine, ...]  # in order of start


def load_voices(data_dir: Path) -> dict[str, list[Voice]]:
    """Utterances per speaker from ``data_dir/refs.tsv`` (columns ``file``, ``speaker``, ``reference``)."""
    table = pd.read_csv(data_dir / "refs.tsv", sep="\t", dtype=str, keep_default_na=False)
    voices: dict[str, list[Voice]] = defaultdict(list)
    for row in table.itertuples():
        voices[str(row.speaker)].append(Voice(str(row.speaker), data_dir / str(row.file), str(row.reference)))
    return dict(voices)


def real_voice_scene(
    voices: dict[str, list[Voice]],
    officer: str,
    civilians: list[str],
    seed: int,
    radio: str | None = None,
    lines_per_speaker: int = 3,
    overlap_share: float = OVERLAP_SHARE,
    civilian_level_db: tuple[float, float] = CIVILIAN_LEVEL_DB,
) -> Scene:
    """Mix a scene: the officer and the civilians take turns (officer first), a radio burst in the middle, one long
    pause, road noise. Each speaker says up to ``lines_per_speaker`` of their utterances (in a seeded order).

    Parameters
    ----------
    voices
        From :func:`load_voices`.
    officer
        The camera wearer's speaker id.
    civilians
        Community members' speaker ids (one or more, none the officer).
    seed
        Levels, pauses, overlaps, noise and which utterances.
    radio
        A speaker id whose utterance plays through the radio; None: no radio.
    lines_per_speaker
        Utterances per speaker at most.
    overlap_share
        Share of civilian lines that start before the officer's line before them has ended.
    civilian_level_db
        Range of the civilians' speech level, dBFS.
    """
    if officer in civilians:
        raise ValueError(f"{officer} cannot be both the officer and a civilian")
    rng = np.random.default_rng(seed)

    def pick(speaker: str) -> list[Voice]:
        own = list(voices[speaker])
        order = rng.permutation(len(own))
        return [own[i] for i in order[:lines_per_speaker]]

    queues = {speaker: pick(speaker) for speaker in [officer, *civilians]}
    turns: list[tuple[str, Voice]] = []
    speakers_in_turn = [officer, *civilians]
    while any(queues.values()):
        for speaker in speakers_in_turn:
            if queues[speaker]:
                turns.append(("officer" if speaker == officer else "civilian", queues[speaker].pop(0)))
    if radio is not None:
        turns.insert(len(turns) // 2, ("radio", voices[radio][int(rng.integers(len(voices[radio])))]))
    long_pause_at = int(rng.integers(1, max(2, len(turns))))

    placed: list[tuple[int, np.ndarray, SceneLine]] = []
    cursor = float(rng.uniform(*LEAD_IN_S))
    previous: SceneLine | None = None
    for index, (role, voice) in enumerate(turns):
        if role == "radio":
            samples = place(read_pcm(voice.path), role, rng, RADIO_LEVEL)
        else:
            target_db = float(rng.uniform(*(OFFICER_LEVEL_DB if role == "officer" else civilian_level_db)))
            samples = place(read_pcm(voice.path), role, rng, 1.0)
            samples = samples * np.float32(10 ** ((target_db - speech_level_db(samples)) / 20))
        if index == long_pause_at:
            start = cursor + float(rng.uniform(*LONG_PAUSE_S))
        elif (
            previous is not None and previous.role == "officer" and role == "civilian" and rng.random() < overlap_share
        ):
            start = max(previous.start + 0.5, previous.end - float(rng.uniform(*OVERLAP_S)))
        else:
            start = cursor + float(rng.uniform(*PAUSE_S))
        line = SceneLine(role, voice.speaker, round(start, 3), round(start + len(samples) / SAMPLE_RATE, 3), voice.text)
        placed.append((round(start * SAMPLE_RATE), samples, line))
        cursor = max(cursor, line.end)
        previous = line
    total = round((cursor + TAIL_S) * SAMPLE_RATE)
    mix = road_noise(total / SAMPLE_RATE, rng)
    for offset, samples, _ in placed:
        end = min(total, offset + len(samples))
        mix[offset:end] += samples[: end - offset]
    scene_id = f"scene-{seed}-{officer}"
    lines = tuple(sorted((line for _, _, line in placed), key=lambda line: line.start))
    return Scene(scene_id, np.clip(mix, -1.0, 1.0).astype(np.float32), lines)


def speech_level_db(audio: np.ndarray) -> float:
    """Speech level in dBFS: the RMS of the loudest half of 25 ms frames (the words, not the pauses), as
    :func:`bwc.acoustics.measure_span` measures an utterance's level."""
    levels = frame_levels_db(audio)
    loud = np.sort(levels)[len(levels) // 2 :]
    return float(10.0 * np.log10(np.mean(10 ** (loud / 10))))


def scene_set(voices: dict[str, list[Voice]], count: int, seed: int = 0, max_civilians: int = 2) -> list[Scene]:
    """``count`` scenes over the speakers with at least two utterances: officer and civilians drawn without
    repeats inside a scene, one or two civilians, a radio voice from the speakers with one utterance."""
    rng = np.random.default_rng(seed)
    talkers = sorted(speaker for speaker, own in voices.items() if len(own) >= 2)
    # a dispatch call is a sentence, not a one-word AN4 command
    radios = sorted(speaker for speaker, own in voices.items() if len(own) == 1 and len(own[0].text.split()) >= 5)
    scenes = []
    for number in range(count):
        chosen = [str(s) for s in rng.choice(talkers, size=1 + int(rng.integers(1, max_civilians + 1)), replace=False)]
        radio = str(rng.choice(radios)) if radios and number % 2 == 0 else None
        scenes.append(real_voice_scene(voices, chosen[0], chosen[1:], seed=seed * 1000 + number, radio=radio))
    return scenes


NOISE_KINDS = ("road", "siren", "static", "music")  # what a body camera hears that is not speech


def noise_only(kind: str, seconds: float, seed: int = 0) -> np.ndarray:
    """Non-speech audio a VAD may let through, for counting words written where nothing was said.

    ``road``: loud traffic rumble with passing-car swells; ``siren``: a wailing 650–1550 Hz sweep with harmonics
    over rumble; ``static``: radio hiss with squelch bursts; ``music``: a car stereo (chords with a beat). About
    -20 dBFS RMS each.

    >>> [round(float(np.sqrt(np.mean(noise_only(k, 2.0) ** 2))), 2) for k in NOISE_KINDS]
    [0.1, 0.1, 0.1, 0.1]
    """
    rng = np.random.default_rng(seed)
    samples = round(seconds * SAMPLE_RATE)
    t = np.arange(samples) / SAMPLE_RATE
    if kind == "road":
        swell = 1.0 + 0.8 * np.sin(2 * np.pi * t / 7.0) ** 2
        audio = _road_noise(samples, seconds, rng) * swell
    elif kind == "siren":
        frequency = 1100 + 450 * np.sin(2 * np.pi * t / 3.0)  # a wail: up and down every 3 s
        phase = 2 * np.pi * np.cumsum(frequency) / SAMPLE_RATE
        audio = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)
        audio = audio + 0.5 * _road_noise(samples, seconds, rng) / 0.01
    elif kind == "static":
        audio = rng.standard_normal(samples)
        gate = (np.sin(2 * np.pi * t / 2.3) > -0.3).astype(float)  # squelch opening and closing
        audio = audio * (0.3 + gate)
    elif kind == "music":
        chords = ((220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6), (196.0, 246.9, 311.1))
        chord = np.array(chords)[(t // 1.0).astype(int) % len(chords)]
        audio = np.sum(np.sin(2 * np.pi * chord * t[:, None]) * np.exp(-(t % 0.5)[:, None] * 3.0), axis=1)
        kick = np.sin(2 * np.pi * 60 * t) * np.exp(-(t % 0.5) * 25.0)
        audio = audio + 2.0 * kick
    else:
        raise ValueError(f"unknown noise kind {kind!r}: choose from {', '.join(NOISE_KINDS)}")
    audio = audio / (np.sqrt(np.mean(audio**2)) or 1.0) * 0.1
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _road_noise(samples: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """``samples`` of road noise: bwc.demo.road_noise truncates seconds to samples, noise_only rounds them."""
    noise = road_noise(seconds, rng)[:samples]
    return np.pad(noise, (0, samples - len(noise)))
