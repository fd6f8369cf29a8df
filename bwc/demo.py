"""Synthetic body-worn-camera footage: espeak-ng traffic stops, for the demo and for tests.

A scene is built the way BWC audio sounds: the camera wearer (officer) close to the microphone and loud, the
community member farther away, quieter, muffled and reverberant, road noise under everything, radio bursts, and long
stretches with no speech (walking back to the car, running the licence). Scripts are a transcript table in the shape
``bwc score`` reads (``encounter_id, turn, role, text``); the scenes come with the evidence system's metadata export.

Example
-------
>>> footage = make_demo_footage(Path("demo/footage"))        # doctest: +SKIP
>>> footage.metadata_csv                                     # doctest: +SKIP
PosixPath('demo/footage/evidence_export.csv')
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal

from bwc.acoustics import measure_span, noise_floor_db
from bwc.audio import SAMPLE_RATE, read_pcm, sha256_file, write_audio
from bwc.ingest import RECORDING_ID_HEX
from bwc.records import TranscriptLine

VOICES = {"officer": "en-us+m3", "civilian": "en-us+f2", "radio": "en-gb+m1"}  # espeak-ng voice per role
LEVELS = {"officer": 0.5, "civilian": 0.12, "radio": 0.08}  # peak amplitude per role: near, far, dispatch
ROAD_NOISE_RMS = 0.01  # about -40 dBFS of low-frequency road noise
SCRIPTS_RESOURCE = "demo_data/stops.csv"


@dataclass(frozen=True)
class Line:
    """One line of a scene."""

    role: str  # officer | civilian | radio
    text: str  # what is said
    pause_before_s: float = 0.8  # silence before the line
    voice: str | None = None  # espeak-ng voice; None = the role's voice in VOICES
    level: float | None = None  # peak amplitude; None = the role's level in LEVELS
    pitch: int | None = None  # espeak-ng pitch, 0..99; None keeps the voice's own


@dataclass(frozen=True)
class DemoFootage:
    """What :func:`make_demo_footage` wrote."""

    files: tuple[Path, ...]  # the footage, .mp4 and .wav
    metadata_csv: Path  # evidence system export for them
    scripts_csv: Path  # reference transcripts of the footage: encounter_id, turn, role, text, start, end, officer
    truth_csv: Path  # every line spoken in the footage, the radio call too: recording_id, start, end, role, text


def require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "ffmpeg", "sox") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"synthetic footage needs {', '.join(missing)} (Debian: apt-get install {' '.join(missing)})"
        )


def speak(text: str, voice: str, words_per_minute: int = 165, pitch: int | None = None) -> np.ndarray:
    """espeak-ng speech as 16 kHz mono float32."""
    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "line.wav"
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                voice,
                "-s",
                str(words_per_minute),
                *(["-p", str(pitch)] if pitch is not None else []),
                "-w",
                str(wav),
                text,
            ],
            check=True,
            capture_output=True,
        )
        return read_pcm(wav)


def place(audio: np.ndarray, role: str, rng: np.random.Generator, level: float | None = None) -> np.ndarray:
    """Make a dry voice sound like ``role`` on a body camera: level, distance (low-pass, reverb), radio band."""
    peak = float(np.max(np.abs(audio))) or 1.0
    audio = audio / peak
    if role == "civilian":
        low_pass = signal.butter(4, 3000, "low", fs=SAMPLE_RATE, output="sos")
        audio = signal.sosfilt(low_pass, audio)
        tail = int(0.25 * SAMPLE_RATE)
        impulse = rng.standard_normal(tail) * np.exp(-np.arange(tail) / (0.06 * SAMPLE_RATE))
        impulse[0] = 3.0  # the direct path still dominates
        audio = signal.fftconvolve(audio, impulse)[: len(audio) + tail]
    elif role == "radio":
        band = signal.butter(4, [400, 2800], "band", fs=SAMPLE_RATE, output="sos")
        audio = np.clip(signal.sosfilt(band, audio) * 3.0, -1.0, 1.0)
    audio = audio / (np.max(np.abs(audio)) or 1.0)
    return (audio * (LEVELS[role] if level is None else level)).astype(np.float32)


def road_noise(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency rumble like an idling car and passing traffic."""
    samples = int(seconds * SAMPLE_RATE)
    brown = np.cumsum(rng.standard_normal(samples))
    high_pass = signal.butter(2, 20, "high", fs=SAMPLE_RATE, output="sos")
    low_pass = signal.butter(2, 400, "low", fs=SAMPLE_RATE, output="sos")
    noise = signal.sosfilt(low_pass, signal.sosfilt(high_pass, brown))
    noise *= ROAD_NOISE_RMS / (np.sqrt(np.mean(noise**2)) or 1.0)
    return noise.astype(np.float32)


def render_scene(
    lines: list[Line], lead_in_s: float = 4.0, tail_s: float = 3.0, seed: int = 0
) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Mix a scene; returns the audio and the true ``(start, end, role)`` of every line."""
    require_tools()
    rng = np.random.default_rng(seed)
    pieces: list[np.ndarray] = [np.zeros(int(lead_in_s * SAMPLE_RATE), dtype=np.float32)]
    truth: list[tuple[float, float, str]] = []
    cursor = lead_in_s
    for line in lines:
        pieces.append(np.zeros(int(line.pause_before_s * SAMPLE_RATE), dtype=np.float32))
        cursor += line.pause_before_s
        dry = speak(line.text, line.voice or VOICES[line.role], pitch=line.pitch)
        voiced = place(dry, line.role, rng, line.level)
        pieces.append(voiced)
        truth.append((cursor, cursor + len(voiced) / SAMPLE_RATE, line.role))
        cursor += len(voiced) / SAMPLE_RATE
    pieces.append(np.zeros(int(tail_s * SAMPLE_RATE), dtype=np.float32))
    speech = np.concatenate(pieces)
    mixed = speech + road_noise(len(speech) / SAMPLE_RATE, rng)
    return np.clip(mixed, -1.0, 1.0).astype(np.float32), truth


def write_video(path: Path, audio: np.ndarray) -> None:
    """An .mp4 with a small H.264 picture and the audio as AAC, like a camera's export."""
    write_audio(
        path,
        audio,
        SAMPLE_RATE,
        "-f", "lavfi", "-i", "color=c=0x303030:s=160x120:r=5",
        "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
    )  # fmt: skip


def load_scripts() -> pd.DataFrame:
    """The bundled reference scripts (``encounter_id, turn, role, text``)."""
    with resources.files("bwc").joinpath(SCRIPTS_RESOURCE).open(encoding="utf-8") as handle:
        return pd.read_csv(handle)


def scene_lines(script: pd.DataFrame, rng: np.random.Generator) -> list[Line]:
    """Lines of one encounter, with realistic pauses and a long silent stretch after the documents are taken."""
    lines: list[Line] = []
    for row in script.sort_values("turn").itertuples():
        pause = float(rng.uniform(0.5, 1.4))
        if lines and "licen" in lines[-1].text.lower():
            pause = float(rng.uniform(12.0, 18.0))  # officer walks back to run the licence
        lines.append(Line(role=str(row.role), text=str(row.text), pause_before_s=pause))
    lines.insert(len(lines) // 2, Line("radio", "Unit twelve, dispatch, copy your last.", float(rng.uniform(1, 3))))
    return lines


def make_demo_footage(out_dir: Path, seed: int = 7) -> DemoFootage:
    """Write one scene per scripted encounter (alternately .mp4 and .wav), the metadata export and the scripts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scripts = load_scripts()
    rng = np.random.default_rng(seed)
    files, rows, timed, spoken_lines = [], [], [], []
    for index, (encounter_id, script) in enumerate(scripts.groupby("encounter_id", sort=True)):
        lines = scene_lines(script, rng)
        audio, truth = render_scene(lines, lead_in_s=float(rng.uniform(5, 9)), seed=seed + index)
        evidence_id = f"EV{2026_0000 + index + 1}"
        if index % 2 == 0:
            path = out_dir / f"{evidence_id}.mp4"
            write_video(path, audio)
        else:
            path = out_dir / f"{evidence_id}.wav"
            write_audio(path, audio, SAMPLE_RATE, "-c:a", "pcm_s16le")
        files.append(path)
        rows.append(
            {
                "file_name": path.name,
                "evidence_id": evidence_id,
                "officer_id": f"B{4711 + index % 2}",
                "recorded_at": f"2026-11-{10 + index:02d}T2{index}:15:00-08:00",
                "incident_id": f"CAD-26-{31000 + index}",
                "category": "Traffic Stop",
                "encounter_id": encounter_id,
            }
        )
        # The scripts become a transcript table of the footage: the true times of its lines (the radio call the
        # scene adds is not in the script), the officer and the time. No recording id: they are scored into a store
        # of their own, which holds no recordings (spoken_lines.csv names them).
        spoken = [(start, end) for start, end, role in truth if role != "radio"]
        recording_id = sha256_file(path)[:RECORDING_ID_HEX]
        script = script.sort_values("turn").assign(
            start=[round(start, 3) for start, _ in spoken],
            end=[round(end, 3) for _, end in spoken],
            officer_id=rows[-1]["officer_id"],
            recorded_at=rows[-1]["recorded_at"],
        )
        timed.append(script)
        spoken_lines += [
            {"recording_id": recording_id, "encounter_id": encounter_id, "start": round(start, 3),
             "end": round(end, 3), "role": role, "text": line.text}
            for (start, end, role), line in zip(truth, lines, strict=True)
        ]  # fmt: skip
    metadata_csv = out_dir / "evidence_export.csv"
    pd.DataFrame(rows).to_csv(metadata_csv, index=False)
    scripts_csv = out_dir / "reference_scripts.csv"
    pd.concat(timed).to_csv(scripts_csv, index=False)
    truth_csv = out_dir / "spoken_lines.csv"
    pd.DataFrame(spoken_lines).to_csv(truth_csv, index=False)
    return DemoFootage(files=tuple(files), metadata_csv=metadata_csv, scripts_csv=scripts_csv, truth_csv=truth_csv)


ATTRIBUTION_VOICES = ("en-us+m3", "en-us+m1", "en-us+f2", "en-us+f4", "en-gb+m2", "en+f3", "en-gb+m4", "en-us+m7")


def attribution_scene(
    script: pd.DataFrame,
    seed: int,
    civilian_level: tuple[float, float] = (0.06, 0.25),
    civilian_near: bool = False,
) -> tuple[np.ndarray, list[tuple[float, float, str, str]]]:
    """A scene with roles known, for measuring attribution: random distinct voices for officer and civilian, the
    officer near (peak 0.3–0.6), the civilian farther (peak drawn from ``civilian_level``, low-passed and
    reverberant; or placed as near as the officer with ``civilian_near``), a radio burst. Returns the audio and
    ``(start, end, role, text)`` per line."""
    rng = np.random.default_rng(seed)
    officer_voice, civilian_voice = rng.choice(ATTRIBUTION_VOICES, size=2, replace=False)
    lines = []
    for row in script.sort_values("turn").itertuples():
        role = str(row.role)
        voice, level = (
            (officer_voice, float(rng.uniform(0.3, 0.6)))
            if role == "officer"
            else (civilian_voice, float(rng.uniform(*civilian_level)))
        )
        placed_as = "officer" if civilian_near else role
        lines.append(Line(placed_as, str(row.text), float(rng.uniform(0.4, 1.5)), voice=str(voice), level=level))
    lines.insert(len(lines) // 2, Line("radio", "Unit twelve, dispatch, copy your last.", 1.0))
    roles = [str(row.role) for row in script.sort_values("turn").itertuples()]
    roles.insert(len(roles) // 2, "radio")
    audio, truth = render_scene(lines, lead_in_s=2.0, tail_s=1.0, seed=seed)
    return audio, [
        (start, end, role, line.text) for (start, end, _), role, line in zip(truth, roles, lines, strict=True)
    ]


def scene_transcript(
    audio: np.ndarray, truth: list[tuple[float, float, str, str]], speaker_of_role: dict[str, str], scene_id: str
) -> list[TranscriptLine]:
    """A rendered scene's lines as attribution sees them: oracle speaker labels, measured acoustics, role unknown."""
    floor = noise_floor_db(audio)
    return [
        TranscriptLine(
            encounter_id=scene_id,
            turn=turn,
            role="unknown",
            text=text,
            speaker=speaker_of_role[role],
            start=start,
            end=end,
            acoustics=measure_span(audio, start, end, floor),
        )
        for turn, (start, end, role, text) in enumerate(truth, start=1)
    ]


def audio_against_scripts(store: Path, reference_store: Path, footage: DemoFootage) -> pd.DataFrame:
    """Per demo encounter, what the audio path made of it (``store``, from ``bwc run``) next to its reference script
    (``reference_store``, from ``bwc score``: a store of its own, so that each side's flags are relative to its own
    department and the two sides do not compete for them): the transcript's WER against every line spoken (the radio
    call included), the shares of officer and civilian words that landed on the right side, respect, escalation,
    behaviours and flags from each side.

    Rows: one per encounter; columns ``encounter_id, recording_id, wer, reference_words, officer_words_right,
    civilian_words_right, words_right`` and, for ``audio`` and ``script``, ``respect_*``, ``escalation_*``,
    ``behaviours_*`` and ``flags_*``.
    """
    from bwc.evaluation import role_result, word_error_rate

    spoken = pd.read_csv(footage.truth_csv, dtype={"recording_id": str})
    words = pd.read_parquet(store / "words", columns=["recording_id", "start", "end", "word", "speaker"])
    scores = pd.read_parquet(store / "utterance_scores", columns=["encounter_id", "speaker", "role"])
    encounters = (
        pd.concat([pd.read_parquet(where / "encounter_scores") for where in (store, reference_store)])
        .drop_duplicates("encounter_id", keep="last")
        .set_index("encounter_id")
    )
    flags = pd.concat([pd.read_parquet(where / "flags") for where in (store, reference_store)])
    flags = flags.groupby("encounter_id")["flag"].agg(", ".join)
    rows = []
    for (encounter_id, recording_id), lines in spoken.groupby(["encounter_id", "recording_id"], sort=True):
        heard = words[words["recording_id"] == recording_id].sort_values("start")
        role_of = scores[scores["encounter_id"] == recording_id].drop_duplicates("speaker").set_index("speaker")["role"]
        wer = word_error_rate([" ".join(lines.sort_values("start")["text"])], [" ".join(heard["word"])])
        roles = role_result(
            [(w.start, w.end, str(role_of.get(w.speaker, "unknown"))) for w in heard.itertuples()],
            [(line.start, line.end, line.role) for line in lines.itertuples()],
        )
        right = roles.officer_to_officer + roles.civilian_kept_apart
        row: dict[str, object] = {
            "encounter_id": encounter_id,
            "recording_id": recording_id,
            "wer": wer.wer,
            "reference_words": wer.reference_words,
            "officer_words_right": roles.officer_share,
            "civilian_words_right": roles.civilian_share,
            "words_right": right / max(1, roles.officer_words + roles.civilian_words),
        }
        for side, key in (("audio", recording_id), ("script", encounter_id)):
            found = key in encounters.index
            row[f"respect_{side}"] = encounters.at[key, "respect"] if found else None
            row[f"escalation_{side}"] = encounters.at[key, "escalation"] if found else None
            row[f"behaviours_{side}"] = encounters.at[key, "behaviours_present"] if found else None
            row[f"flags_{side}"] = flags.get(key, "")
        rows.append(row)
    return pd.DataFrame(rows)
