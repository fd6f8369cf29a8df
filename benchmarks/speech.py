"""Speed-up of `bwc run` over what a user runs today, on the same BWC-like audio with the same weights; and the
speech stage's peak memory on a 10-minute and a 4-hour recording.

Baseline: one Python process (its own threads, `torch.set_num_threads(cores)`) loads whisper and the pyannote
pipeline once, then for each file runs `whisper.transcribe(language="en", temperature=0, word_timestamps=True,
condition_on_previous_text=False, sample_len=N)` and the pyannote pipeline; its wall time runs from before model
loading to the end. bwc: `python -m bwc.cli run --executor local` (what one workstation runs: every stage in one
process, all cores; `--executor ray` starts local Ray with one speech actor per core instead); its wall time is
around the subprocess (start-up, model loading, language scoring, flags and the run report included). Both use the
same random-weight checkpoints (`bwc models make-tiny`), so every forward pass costs what the real model's costs;
random whisper weights decode to the token cap even on silence and keep pyannote busy where real models would idle,
and that is what the baseline pays.

Two sets: BWC-like recordings (20% speech, as the 148 s clip measured in issue 7: near-silence, road noise, radio
chatter, espeak-ng dialogue with the officer near and the civilian farther) and speech-dense ones (dialogue back to
back). The memory check runs the speech stage alone (no Ray) on a 10-minute and a 4-hour WAV in a fresh process each,
with the tiny test models.

Full mode: 3 BWC-like files of 3-4 min and 2 speech-dense ones of 1 min, whisper base and real-size pyannote,
and the memory check (about 40 minutes on 2 cores). --quick: one BWC-like file of about 70 s and one
speech-dense one of about 18 s, whisper tiny and real-size pyannote (PyanNet + WeSpeakerResNet34: what a user runs,
and most of the baseline's time), no memory check (under 5 minutes on a quiet 2-core machine). Both print, last,
"speedup <bwc/baseline on the BWC-like set>". Each phase also reports how many cores other processes used meanwhile:
on a shared machine they slow the baseline's threads most.

    .venv/bin/python benchmarks/speech.py                 # full; appends a section to benchmarks/RESULTS.md
    .venv/bin/python benchmarks/speech.py --quick         # under 5 minutes on 2 cores
    .venv/bin/python benchmarks/speech.py --quick --memory --keep /tmp/bwc-speech --results /tmp/results.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import numpy as np
import psutil
import yaml
from scipy import signal

sys.path.insert(0, str(Path(__file__).absolute().parent.parent))  # `python benchmarks/speech.py` from the root
from benchmarks.capacity import _hardware
from bwc.audio import SAMPLE_RATE, write_audio
from bwc.demo import ATTRIBUTION_VOICES, VOICES, Line, load_scripts, place, render_scene, road_noise, speak

ROOT = Path(__file__).absolute().parent.parent  # the repository: child processes import benchmarks/ from it
RESULTS = Path(__file__).parent / "RESULTS.md"
SEED = 2026
CORES = os.cpu_count() or 1
SILENCE_RMS = 3e-4  # "digital" near-silence between events: about -70 dBFS of white noise
BWC_SPEECH_SHARE = 0.2  # planted speech per BWC-like file at most (the measured clip: 19%; >= 60% non-speech)
MIN_NON_SPEECH = 0.6  # checked after generation
MIN_DENSE_SPEECH = 0.8  # speech-dense files: at least this share of speech, checked after generation
LINE_S = 4.0  # about how long an espeak-ng script line lasts
STRETCH_S = (6.0, 40.0)  # one stretch of near-silence or road noise between events
RADIO_EVERY = 3  # events 2, 5, 8, ... of a BWC-like file are radio bursts
STATIC_RMS = 0.01  # radio hiss under a dispatch burst
SQUELCH_S = (0.08, 0.25)  # squelch noise before and after a burst
SQUELCH_LEVEL = 0.15
RADIO_LINES = (
    "Unit twelve, dispatch, copy your last.",
    "Twelve, be advised, the plate comes back clear, no wants.",
    "All units, ten fifty on the northbound ramp, lane two blocked.",
    "Dispatch, twelve, show me out on a traffic stop, Fourth and Main.",
    "Twelve, copy, time is twenty one fifteen.",
    "Units in the area of the mall, suspicious vehicle, white pickup.",
)
DENSE_PAUSE_S = (0.15, 0.4)  # pause before each line of a speech-dense file
DENSE_LINES = 6  # script lines per rendered exchange of a speech-dense file
MEMORY_BLOCK_S = 30.0  # the memory-check WAVs are generated and written this much at a time
MEMORY_SPEECH_SHARE = 0.05  # sparse speech in the memory-check recordings
MEMORY_LENGTHS_S = {"10 min": 600.0, "4 h": 4 * 3600.0}
MEMORY_TARGET_RATIO = 1.3  # 4 h peak RSS at most this times the 10 min one
WATCH_INTERVAL_S = 0.5  # CPU accounting interval while a phase runs
RSS_INTERVAL_S = 0.1  # sampling interval of the memory child's children (ffmpeg)
BUSY_OTHERS_CORES = 0.25  # other processes using more than this many cores on average make a phase suspect
EXECUTORS = {
    "local": "`--executor local`, every stage in one process with all cores",
    "ray": f"`--executor ray`, local Ray with {CORES} speech actors of one CPU each",
}
RESULT_PREFIX = "RESULT "  # child processes print their JSON result on a line starting with this
SPEECH_STAGES = ("decode_s", "vad_s", "asr_s", "diarization_s", "assembly_s")
CAVEAT = (
    "Random weights: whisper decodes to the token cap (sample_len) in every 30 s window, even on silence, and "
    "pyannote works on every stretch where real models would idle; that is what the baseline pays. bwc's VAD "
    "skips non-speech before whisper, so these ratios say what the pipeline saves at equal model cost, not what "
    "real transcripts would cost."
)


@dataclass(frozen=True)
class Sizes:
    """How much audio and which models a mode uses."""

    bwc_like_files: int
    bwc_like_s: tuple[float, float]  # length range per BWC-like file
    dense_files: int
    dense_s: float  # length per speech-dense file
    whisper_size: str
    full_size_pyannote: bool


FULL = Sizes(3, (180.0, 240.0), 2, 60.0, "base", True)  # about 40 minutes on 2 cores
QUICK = Sizes(1, (60.0, 65.0), 1, 15.0, "tiny", True)  # real-size pyannote (it dominates the baseline)


@dataclass(frozen=True)
class AudioSet:
    """Generated recordings of one kind."""

    name: str
    intake: Path
    files: tuple[Path, ...]
    audio_s: float
    speech_s: float  # seconds of espeak-ng speech planted

    @property
    def speech_share(self) -> float:
        return self.speech_s / self.audio_s


@dataclass(frozen=True)
class Comparison:
    """Baseline and bwc on one set."""

    audio: AudioSet
    baseline: dict[str, float]  # wall_s (from before model loading to the end), load_s, asr_s, diarization_s
    bwc_wall_s: float  # around the `bwc run` subprocess
    stage_s: dict[str, float]
    others_cores: tuple[float, float]  # other processes' mean CPU use during the baseline and during bwc run
    speech_workers: int  # speech workers running side by side in bwc run (local executor: one)

    @property
    def baseline_x(self) -> float:
        return self.audio.audio_s / self.baseline["wall_s"]

    @property
    def bwc_x(self) -> float:
        return self.audio.audio_s / self.bwc_wall_s

    @property
    def ratio(self) -> float:
        return self.bwc_x / self.baseline_x

    @property
    def forward_of_wall(self) -> float | None:
        forward = self.stage_s.get("forward_s")
        return None if forward is None else forward / (self.bwc_wall_s * self.speech_workers)

    @property
    def forward_of_busy(self) -> float | None:
        forward = self.stage_s.get("forward_s")
        busy = sum(self.stage_s.get(name, 0.0) for name in SPEECH_STAGES)
        return None if forward is None or busy == 0 else forward / busy


# ---------------------------------------------------------------------------------------------------------- audio


def near_silence(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Very low white noise, like a camera's input with nothing going on."""
    return (rng.standard_normal(int(seconds * SAMPLE_RATE)) * SILENCE_RMS).astype(np.float32)


def band_noise(seconds: float, rng: np.random.Generator, level: float) -> np.ndarray:
    """Noise in the radio band (400-2800 Hz), peak ``level``: static and squelch."""
    band = signal.butter(4, [400, 2800], "band", fs=SAMPLE_RATE, output="sos")
    noise = signal.sosfilt(band, rng.standard_normal(max(int(seconds * SAMPLE_RATE), 16)))
    return (noise / (np.max(np.abs(noise)) or 1.0) * level).astype(np.float32)


def radio_burst(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A dispatch call: squelch, band-passed espeak-ng over static, squelch tail, with road noise under it."""
    text = str(rng.choice(RADIO_LINES))
    voiced = place(speak(text, VOICES["radio"], pitch=int(rng.integers(30, 60))), "radio", rng)
    voiced = voiced + band_noise(len(voiced) / SAMPLE_RATE, rng, STATIC_RMS * 3)
    burst = np.concatenate(
        [
            band_noise(rng.uniform(*SQUELCH_S), rng, SQUELCH_LEVEL),
            voiced,
            band_noise(rng.uniform(*SQUELCH_S), rng, SQUELCH_LEVEL),
        ]
    )
    burst = burst + road_noise(len(burst) / SAMPLE_RATE, rng)
    return np.clip(burst, -1.0, 1.0).astype(np.float32), len(voiced) / SAMPLE_RATE


def dialogue(lines: list[Line], seed: int, pad_s: float) -> tuple[np.ndarray, float]:
    """Lines rendered as a demo scene (officer near, civilian farther, road noise); returns audio and speech s."""
    audio, truth = render_scene(lines, lead_in_s=pad_s, tail_s=pad_s, seed=seed)
    return audio, sum(end - start for start, end, _ in truth)


def script_lines(rng: np.random.Generator) -> Iterator[tuple[str, str]]:
    """The bundled encounter scripts' ``(role, text)``, starting at a random encounter, cycling forever."""
    scripts = load_scripts().sort_values(["encounter_id", "turn"])
    rows = [(str(row.role), str(row.text)) for row in scripts.itertuples()]
    start = int(rng.integers(len(rows)))
    while True:
        yield from rows[start:]
        start = 0


def voice_lines(rows: Iterator[tuple[str, str]], count: int, voices: dict[str, str], pause_s: tuple[float, float],
                rng: np.random.Generator) -> list[Line]:  # fmt: skip
    """The next ``count`` script lines as :class:`Line` with this file's voices."""
    return [
        Line(role, text, float(rng.uniform(*pause_s)), voice=voices[role])
        for role, text in (next(rows) for _ in range(count))
    ]


def file_voices(rng: np.random.Generator) -> dict[str, str]:
    """An officer and a civilian voice for one file."""
    officer, civilian = rng.choice(ATTRIBUTION_VOICES, size=2, replace=False)
    return {"officer": str(officer), "civilian": str(civilian)}


def bwc_like_recording(target_s: float, seed: int) -> tuple[np.ndarray, float]:
    """Events (dialogue exchanges, every third a radio burst) until the speech budget is spent, separated by
    stretches of near-silence and road noise filling the file to ``target_s`` (longer if the speech needs it)."""
    rng = np.random.default_rng(seed)
    rows, voices = script_lines(rng), file_voices(rng)
    events: list[np.ndarray] = []
    planted = 0.0
    budget_s = BWC_SPEECH_SHARE * target_s
    while planted < budget_s:
        if len(events) % RADIO_EVERY == 1:
            audio, speech_s = radio_burst(rng)
        else:
            count = int(rng.integers(2, 5))  # lines in this exchange, fewer where the budget is nearly spent
            count = max(1, min(count, round((budget_s - planted) / LINE_S)))
            lines = voice_lines(rows, count, voices, (0.4, 1.4), rng)
            audio, speech_s = dialogue(lines, seed=seed + len(events), pad_s=0.5)
        events.append(audio)
        planted += speech_s
    events_s = sum(len(event) for event in events) / SAMPLE_RATE
    fill_s = max(target_s - events_s, planted / BWC_SPEECH_SHARE - events_s)
    gaps = rng.dirichlet(np.ones(len(events) + 1)) * fill_s
    pieces = [filler(gaps[0], rng)]
    for event, gap_s in zip(events, gaps[1:], strict=True):
        pieces += [event, filler(gap_s, rng)]
    return np.clip(np.concatenate(pieces), -1.0, 1.0).astype(np.float32), planted


def filler(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Non-speech: stretches of near-silence and road noise, alternating, ``seconds`` long in all."""
    pieces, left, quiet = [], seconds, bool(rng.integers(2))
    while left > 0:
        length = min(left, float(rng.uniform(*STRETCH_S)))
        pieces.append(near_silence(length, rng) if quiet else road_noise(length, rng))
        left -= length
        quiet = not quiet
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def dense_recording(target_s: float, seed: int) -> tuple[np.ndarray, float]:
    """Dialogue lines back to back with short pauses and little padding, until ``target_s``."""
    rng = np.random.default_rng(seed)
    rows, voices = script_lines(rng), file_voices(rng)
    pieces, planted, length_s = [], 0.0, 0.0
    while length_s < target_s:
        count = min(DENSE_LINES, max(2, round((target_s - length_s) / LINE_S)))  # a short file: fewer lines
        audio, speech_s = dialogue(voice_lines(rows, count, voices, DENSE_PAUSE_S, rng), seed=seed + len(pieces),
                                   pad_s=0.1)  # fmt: skip
        pieces.append(audio)
        planted += speech_s
        length_s += len(audio) / SAMPLE_RATE
    return np.concatenate(pieces), planted


def write_set(name: str, intake: Path, recordings: list[tuple[np.ndarray, float]]) -> AudioSet:
    """Write recordings as 16-bit WAVs into ``intake``."""
    intake.mkdir(parents=True, exist_ok=True)
    files = []
    for index, (audio, _) in enumerate(recordings):
        path = intake / f"{name}-{index:02d}.wav"
        write_audio(path, audio, SAMPLE_RATE, "-c:a", "pcm_s16le")
        files.append(path)
    return AudioSet(
        name=name,
        intake=intake,
        files=tuple(files),
        audio_s=sum(len(audio) for audio, _ in recordings) / SAMPLE_RATE,
        speech_s=sum(speech_s for _, speech_s in recordings),
    )


def make_sets(folder: Path, sizes: Sizes) -> tuple[AudioSet, AudioSet]:
    """The BWC-like and the speech-dense set, deterministic for ``SEED``; checks their speech shares."""
    rng = np.random.default_rng(SEED)
    lengths = rng.uniform(*sizes.bwc_like_s, size=sizes.bwc_like_files)
    bwc_like = write_set(
        "bwc-like",
        folder / "bwc-like" / "intake",
        [bwc_like_recording(float(length), SEED + 100 * index) for index, length in enumerate(lengths)],
    )
    dense = write_set(
        "speech-dense",
        folder / "speech-dense" / "intake",
        [dense_recording(sizes.dense_s, SEED + 10_000 + 100 * index) for index in range(sizes.dense_files)],
    )
    if 1 - bwc_like.speech_share < MIN_NON_SPEECH or dense.speech_share < MIN_DENSE_SPEECH:
        raise RuntimeError(f"speech shares off: BWC-like {bwc_like.speech_share:.0%}, dense {dense.speech_share:.0%}")
    return bwc_like, dense


def speech_clips(rng: np.random.Generator) -> list[np.ndarray]:
    """A few espeak-ng lines placed as officer and civilian, synthesised once for the long memory-check files."""
    rows = script_lines(rng)
    voices = file_voices(rng)
    return [place(speak(text, voices[role]), role, rng) for role, text in (next(rows) for _ in range(6))]


def write_sparse_wav(path: Path, seconds: float, clips: list[np.ndarray], seed: int) -> float:
    """A 16 kHz mono s16 WAV of near-silence and road noise with sparse speech, written block by block (the whole
    recording is never in memory); returns the seconds of speech planted."""
    rng = np.random.default_rng(seed)
    mean_clip_s = float(np.mean([len(clip) for clip in clips])) / SAMPLE_RATE
    speech_chance = min(1.0, MEMORY_SPEECH_SHARE * MEMORY_BLOCK_S / mean_clip_s)
    planted, left = 0.0, seconds
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        while left > 0:
            length = min(MEMORY_BLOCK_S, left)
            block = road_noise(length, rng) if rng.integers(2) else near_silence(length, rng)
            clip = clips[int(rng.integers(len(clips)))]
            if rng.random() < speech_chance and len(clip) < len(block):
                at = int(rng.integers(len(block) - len(clip)))
                block[at : at + len(clip)] += clip
                planted += len(clip) / SAMPLE_RATE
            out.writeframes((np.clip(block, -1.0, 1.0) * 32767).astype("<i2").tobytes())
            left -= length
    return planted


# ------------------------------------------------------------------------------------------------------- running


def make_models(directory: Path, whisper_size: str | None, full_size_pyannote: bool, sample_len: int | None) -> Path:
    """Random-weight checkpoints via `bwc models make-tiny`; no sizes: the tiny test models (and their sample_len)."""
    command = [sys.executable, "-m", "bwc.cli", "models", "make-tiny", str(directory)]
    if sample_len:
        command += ["--sample-len", str(sample_len)]
    if whisper_size:
        command += ["--whisper-size", whisper_size]
    if full_size_pyannote:
        command.append("--full-size-pyannote")
    subprocess.run(command, check=True, capture_output=True)
    return directory


def model_paths(models: Path) -> tuple[Path, Path]:
    """The whisper checkpoint and the pyannote pipeline directory that ``models.yaml`` names."""
    described = yaml.safe_load((models / "models.yaml").read_text())
    return models / described["whisper"]["model"], models / described["diarization"]["pipeline"]


def child_result(command: list[str]) -> dict:
    """Run a child process of this script and return the JSON it printed after :data:`RESULT_PREFIX`."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYANNOTE_METRICS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        sys.exit(f"{' '.join(command[:3])} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def run_baseline(audio: AudioSet, models: Path, sample_len: int) -> dict:
    """whisper.transcribe + pyannote, file by file, in a separate process."""
    whisper_checkpoint, pyannote_dir = model_paths(models)
    script = Path(__file__).absolute()
    files = [str(path) for path in audio.files]
    return child_result(
        [sys.executable, str(script), "_baseline", str(whisper_checkpoint), str(pyannote_dir), str(sample_len), *files]
    )


def run_bwc(audio: AudioSet, folder: Path, models: Path, sample_len: int, executor: str) -> tuple[float, dict]:
    """`bwc run` on the set's intake: wall seconds around the subprocess and the run report."""
    config = folder / "bwc.yaml"
    settings = {
        "whisper": {
            "language": "en",
            "temperature": 0.0,
            "sample_len": sample_len,
        },
        "run": {
            "speech_workers": CORES,
            "cpus_per_speech_worker": 1,
            "scoring_workers": 1,
            "cpus_per_scoring_worker": 0,
            "settle_s": 0,
        },
    }
    config.write_text(yaml.safe_dump(settings))
    store = folder / "store"
    shutil.rmtree(store, ignore_errors=True)  # a kept folder's earlier store would make every file "already done"
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "run", str(audio.intake), "--store", str(store), "--models", str(models),
         "--config", str(config), "--executor", executor],
        capture_output=True, text=True,
    )  # fmt: skip
    wall_s = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"bwc run failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return wall_s, json.loads(next((store / "runs").glob("*.json")).read_text())


def compare(audio: AudioSet, models: Path, sample_len: int, executor: str, phases: dict[str, Phase]) -> Comparison:
    """Baseline, then bwc, on one set."""
    baseline_phase, bwc_phase = f"baseline {audio.name}", f"bwc run {audio.name}"
    with timed(phases, baseline_phase):
        baseline = run_baseline(audio, models, sample_len)
    with timed(phases, bwc_phase):
        bwc_wall_s, report = run_bwc(audio, audio.intake.parent, models, sample_len, executor)
    if report.get("processed") != len(audio.files):
        sys.exit(f"bwc run processed {report.get('processed')} of {len(audio.files)} files")
    others = (phases[baseline_phase].others_cores, phases[bwc_phase].others_cores)
    return Comparison(audio, baseline, bwc_wall_s, report["stage_s"], others, 1 if executor == "local" else CORES)


def measure_memory(folder: Path, phases: dict[str, Phase]) -> dict[str, dict]:
    """Peak RSS of the speech stage alone on a 10-minute and a 4-hour WAV, each in a fresh process, with the tiny
    test models as `bwc models make-tiny` writes them."""
    with timed(phases, "memory: tiny models and WAVs"):
        models = make_models(folder / "models-tiny", None, False, None)
        clips = speech_clips(np.random.default_rng(SEED))
        recordings = {}
        for index, (label, seconds) in enumerate(MEMORY_LENGTHS_S.items()):
            path = folder / "memory" / f"memory-{index}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            planted = write_sparse_wav(path, seconds, clips, SEED + index)
            recordings[label] = (path, seconds, planted)
    peaks = {}
    script = str(Path(__file__).absolute())
    for label, (path, seconds, planted) in recordings.items():
        with timed(phases, f"memory: speech stage {label}"):
            peaks[label] = child_result([sys.executable, script, "_speech-memory", str(path), str(models)])
        peaks[label] |= {"audio_s": seconds, "speech_share": planted / seconds}
    return peaks


class _Sampler:
    """A daemon thread running ``_watch`` while the ``with`` block runs; ``_stop`` ends it."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        raise NotImplementedError


class CpuWatch(_Sampler):
    """Cores used, on average, by processes outside this one's process tree while it runs: other work on the
    machine distorts the wall-clock comparison (the baseline's multi-threaded torch most of all)."""

    def __init__(self) -> None:
        self.others_cores = 0.0
        self.ours_cpu_s = 0.0  # CPU seconds of this process tree meanwhile
        super().__init__()

    def _watch(self) -> None:
        started, machine_start = time.perf_counter(), _machine_busy_s()
        ours_s, last = 0.0, _tree_cpu_s()
        while not self._stop.wait(WATCH_INTERVAL_S):
            now = _tree_cpu_s()
            ours_s += sum(max(0.0, seconds - last.get(pid, 0.0)) for pid, seconds in now.items())
            last = now
            self.ours_cpu_s = ours_s
            elapsed = time.perf_counter() - started
            self.others_cores = max(0.0, _machine_busy_s() - machine_start - ours_s) / elapsed


def _machine_busy_s() -> float:
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + times.irq + times.softirq + times.steal


def _tree_cpu_s() -> dict[int, float]:
    """CPU seconds so far of this process and all its descendants (Ray's processes included), by pid."""
    me = psutil.Process()
    seconds = {}
    for process in (me, *me.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        seconds[process.pid] = times.user + times.system  # reaped children's times would count twice
    return seconds


class ChildrenRss(_Sampler):
    """Peak summed RSS of this process's children, sampled. RUSAGE_CHILDREN cannot say it: on Linux a child
    spawned from a large process inherits the parent's resident size as its high-water mark (vfork + exec)."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        super().__init__()

    def _watch(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(RSS_INTERVAL_S):
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)


@dataclass
class Phase:
    """One timed step of the benchmark."""

    seconds: float
    others_cores: float  # other processes' mean CPU use meanwhile
    cpu_s: float  # CPU seconds this benchmark's processes used meanwhile


@contextmanager
def timed(phases: dict[str, Phase], name: str) -> Iterator[None]:
    """Record a phase's wall seconds and the other processes' CPU use meanwhile; say when it is done."""
    started = time.perf_counter()
    with CpuWatch() as watch:
        yield
    phases[name] = Phase(time.perf_counter() - started, watch.others_cores, watch.ours_cpu_s)
    busy = " (machine busy: numbers distorted)" if watch.others_cores > BUSY_OTHERS_CORES else ""
    print(f"  [{name}: {phases[name].seconds:.0f} s, {watch.ours_cpu_s:.0f} CPU-s; other processes used "
          f"{watch.others_cores:.2f} cores{busy}]", flush=True)  # fmt: skip


# ------------------------------------------------------------------------------------------------ child processes


def baseline_child(whisper_checkpoint: str, pyannote_dir: str, sample_len: int, files: list[str]) -> None:
    """What a user runs today: both models loaded once, then each file through whisper and pyannote."""
    import torch
    import whisper
    from pyannote.audio import Pipeline

    torch.set_num_threads(CORES)
    started = time.perf_counter()
    model = whisper.load_model(whisper_checkpoint)
    pipeline = Pipeline.from_pretrained(pyannote_dir)
    load_s = time.perf_counter() - started
    asr_s = diarization_s = 0.0
    for path in files:
        audio = whisper.load_audio(path)
        clock = time.perf_counter()
        whisper.transcribe(
            model, audio, language="en", temperature=0.0, word_timestamps=True, condition_on_previous_text=False,
            sample_len=sample_len, fp16=False,
        )  # fmt: skip
        asr_s += time.perf_counter() - clock
        clock = time.perf_counter()
        pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": SAMPLE_RATE})
        diarization_s += time.perf_counter() - clock
    wall_s = time.perf_counter() - started
    print(
        RESULT_PREFIX + json.dumps({"wall_s": wall_s, "load_s": load_s, "asr_s": asr_s, "diarization_s": diarization_s})
    )


def speech_memory_child(path: str, models: str) -> None:
    """The speech stage alone on one recording; peak RSS of this process and of its children (ffmpeg)."""
    import resource

    from bwc.config import load_config
    from bwc.ingest import MetadataTable, ingest_file
    from pipelines.speech import SpeechStage

    started = time.perf_counter()
    stage = SpeechStage.from_config(load_config(Path(models)), device="cpu")
    loaded_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    recording = ingest_file(path, MetadataTable.empty())
    with ChildrenRss() as children:
        result = stage(recording)
    print(
        RESULT_PREFIX
        + json.dumps(
            {
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "loaded_rss_kib": loaded_rss_kib,
                "children_peak_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                "children_sampled_rss_kib": children.peak_bytes // 1024,
                "seconds": time.perf_counter() - started,
                "stage_s": {name: round(value, 1) for name, value in asdict(result.timings).items()},
            }
        )
    )


# ------------------------------------------------------------------------------------------------------ reporting


def share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def describe_models(sizes: Sizes, sample_len: int) -> str:
    pyannote = (
        "PyanNet + WeSpeakerResNet34 (real size)" if sizes.full_size_pyannote else "tiny PyanNet + XVectorSincNet"
    )
    return f"random weights: whisper {sizes.whisper_size} (sample_len {sample_len}), pyannote {pyannote}"


def comparison_table(comparisons: list[Comparison]) -> str:
    """Markdown table: one row per set."""
    rows = [
        "| set | files | audio min | planted speech | baseline audio s/s | bwc run audio s/s | bwc / baseline | "
        "bwc forward s / (wall s × speech workers) | bwc forward s / speech workers' busy s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for item in comparisons:
        rows.append(
            f"| {item.audio.name} | {len(item.audio.files)} | {item.audio.audio_s / 60:.1f} | "
            f"{100 * item.audio.speech_share:.0f}% | {item.baseline_x:.3f} | {item.bwc_x:.3f} | "
            f"**{item.ratio:.2f}** | {share(item.forward_of_wall)} | {share(item.forward_of_busy)} |"
        )
    return "\n".join(rows)


def detail_lines(comparisons: list[Comparison]) -> list[str]:
    """Wall seconds and bwc's per-stage actor seconds, per set."""
    lines = []
    for item in comparisons:
        stages = ", ".join(f"{name} {seconds:.1f}" for name, seconds in item.stage_s.items())
        base = item.baseline
        lines.append(
            f"- {item.audio.name}: baseline {base['wall_s']:.1f} s wall (loading {base['load_s']:.1f} s, whisper "
            f"{base['asr_s']:.1f} s, pyannote {base['diarization_s']:.1f} s; other processes on the machine used "
            f"{item.others_cores[0]:.2f} cores meanwhile); bwc run {item.bwc_wall_s:.1f} s wall (other processes "
            f"{item.others_cores[1]:.2f} cores), its actor seconds: {stages}"
            + ("" if "forward_s" in item.stage_s else " (no forward_s in this report: n/a)")
        )
    return lines


def phase_summary(phases: dict[str, Phase]) -> str:
    """Seconds per phase and in all; a warning when other processes were busy during any of them."""
    total = sum(phase.seconds for phase in phases.values())
    text = "Phases: " + ", ".join(f"{name} {phase.seconds:.0f} s" for name, phase in phases.items())
    text += f"; total {total:.0f} s"
    busy = [name for name, phase in phases.items() if phase.others_cores > BUSY_OTHERS_CORES]
    if busy:
        text += (
            f"\nWARNING: other processes used over {BUSY_OTHERS_CORES} cores during {', '.join(busy)}: the wall "
            "times (the baseline's multi-threaded torch most) are slower than on a quiet machine."
        )
    return text


def memory_lines(peaks: dict[str, dict]) -> list[str]:
    """Peak RSS per length and the 4 h / 10 min ratio against the target."""
    lines = []
    for label, peak in peaks.items():
        lines.append(
            f"- {label} ({100 * peak['speech_share']:.0f}% speech): peak RSS {peak['peak_rss_kib'] / 1024:.0f} MiB "
            f"(after loading the models {peak['loaded_rss_kib'] / 1024:.0f} MiB), {peak['seconds']:.0f} s "
            f"({', '.join(f'{name} {value:.0f}' for name, value in peak['stage_s'].items())}); children "
            f"(ffmpeg): sampled peak {peak['children_sampled_rss_kib'] / 1024:.0f} MiB, RUSAGE_CHILDREN "
            f"{peak['children_peak_rss_kib'] / 1024:.0f} MiB (on Linux that includes this process's size when it "
            "spawned them)"
        )
    short, long = (peaks[label]["peak_rss_kib"] for label in MEMORY_LENGTHS_S)
    verdict = "within" if long <= MEMORY_TARGET_RATIO * short else "OVER"
    lines.append(f"- 4 h / 10 min peak RSS: {long / short:.2f} ({verdict} the target of {MEMORY_TARGET_RATIO})")
    return lines


def append_results(path: Path, command: str, sizes: Sizes, sample_len: int, executor: str,
                   comparisons: list[Comparison], peaks: dict[str, dict] | None,
                   phases: dict[str, Phase]) -> None:  # fmt: skip
    """A dated section of RESULTS.md with the command, hardware, models and the numbers."""
    text = (
        f"\n## Speech: `bwc run` against whisper + pyannote file by file — {datetime.now(UTC):%Y-%m-%d}\n\n"
        f"`{command}` on {_hardware(0.0)}. Models: {describe_models(sizes, sample_len)}, the same checkpoints on "
        f"both sides, language en, temperature 0, word timestamps, condition_on_previous_text off. Baseline: one "
        f"process, {CORES} torch threads, whisper.transcribe then the pyannote pipeline per file, wall time from "
        f"before model loading. bwc run: {EXECUTORS[executor]}, wall time around the subprocess (start-up, model "
        "loading, language scoring, flags and the run report included).\n\n"
        + comparison_table(comparisons)
        + "\n\n"
        + "\n".join(detail_lines(comparisons))
        + "\n"
    )
    if peaks:
        text += (
            "\nPeak RSS of the speech stage alone (`SpeechStage.from_config(...)(recording)`, no Ray, tiny test "
            "models, a fresh process each):\n\n" + "\n".join(memory_lines(peaks)) + "\n"
        )
    text += f"\n{phase_summary(phases)}\n\n{CAVEAT}\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


# ----------------------------------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes of audio, small models: < 5 min")
    parser.add_argument("--whisper-size", help="random whisper size (default base; --quick: tiny)")
    parser.add_argument("--sample-len", type=int, default=96, help="whisper tokens per 30 s window (default 96)")
    parser.add_argument("--tiny-pyannote", action="store_true", help="tiny pyannote models instead of real-size")
    memory = parser.add_mutually_exclusive_group()
    memory.add_argument("--memory", action="store_true", help="run the memory check in --quick mode too")
    memory.add_argument("--no-memory", action="store_true", help="skip the memory check")
    parser.add_argument(
        "--executor", choices=("local", "ray"), default="local",
        help="bwc run's executor: local (one process, what one workstation runs; default) or ray (local Ray, one "
        "speech actor per core)",
    )  # fmt: skip
    parser.add_argument("--keep", type=Path, help="keep the audio, models and stores in this directory")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to append to")
    return parser.parse_args()


def chosen_sizes(args: argparse.Namespace) -> Sizes:
    sizes = QUICK if args.quick else FULL
    return Sizes(
        sizes.bwc_like_files,
        sizes.bwc_like_s,
        sizes.dense_files,
        sizes.dense_s,
        args.whisper_size or sizes.whisper_size,
        sizes.full_size_pyannote and not args.tiny_pyannote,
    )


@contextmanager
def work_folder(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.absolute()
        return
    with tempfile.TemporaryDirectory(prefix="bwc-speech-") as scratch:
        yield Path(scratch)


def main() -> None:
    args = parse_args()
    sizes = chosen_sizes(args)
    with_memory = args.memory or (not args.quick and not args.no_memory)
    command = "python benchmarks/speech.py " + " ".join(sys.argv[1:])
    phases: dict[str, Phase] = {}
    mode = "quick" if args.quick else "full"
    print(f"{mode} mode on {_hardware(0.0)}; models: {describe_models(sizes, args.sample_len)}")
    with work_folder(args.keep) as folder:
        with timed(phases, "models"):
            models = make_models(folder / "models", sizes.whisper_size, sizes.full_size_pyannote, args.sample_len)
        with timed(phases, "audio"):
            sets = make_sets(folder, sizes)
        for audio in sets:
            print(
                f"{audio.name}: {len(audio.files)} files, {audio.audio_s / 60:.1f} min, "
                f"planted speech {audio.speech_s:.0f} s = {100 * audio.speech_share:.0f}%",
                flush=True,
            )
        comparisons = [compare(audio, models, args.sample_len, args.executor, phases) for audio in sets]
        peaks = measure_memory(folder, phases) if with_memory else None

    print("\n" + comparison_table(comparisons))
    print("\n".join(detail_lines(comparisons)))
    if peaks:
        print("Peak RSS, speech stage alone (tiny models):\n" + "\n".join(memory_lines(peaks)))
    print(CAVEAT)
    print(phase_summary(phases))
    append_results(args.results, command, sizes, args.sample_len, args.executor, comparisons, peaks, phases)
    print(f"appended to {args.results}")
    print(f"speedup {comparisons[0].ratio:.2f}")


def child_main(mode: str, arguments: list[str]) -> None:
    if mode == "_baseline":
        whisper_checkpoint, pyannote_dir, sample_len, *files = arguments
        baseline_child(whisper_checkpoint, pyannote_dir, int(sample_len), files)
    else:
        speech_memory_child(*arguments)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("_baseline", "_speech-memory"):
        child_main(sys.argv[1], sys.argv[2:])
    else:
        main()
