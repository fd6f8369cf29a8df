"""bwc's whole speech pipeline (VAD, ASR, diarization) against the peers a department would otherwise run, on the
same weights and the same files, in one run.

Systems
-------
- **bwc**: ``pipelines.speech.SpeechStage`` from ``bwc.config.load_config(models_dir)``, all recordings of a set in
  one ``process_batch`` call (bwc batches whisper windows across recordings); hashing and probing each file first,
  as ingest does, is counted in its time. Whichever whisper engine the configuration selects;
  ``--bwc-set SECTION.KEY=VALUE`` overrides a setting (e.g. ``whisper.engine=openai``).
- **whisperx** (3.8.6): installed for the benchmark only, ``pip install --no-deps --target .bench/whisperx`` (its
  pins want an old torch; its code runs on ours), and put at the end of ``sys.path``. ``whisperx.asr.load_model``
  on the CTranslate2 copy of the same whisper weights, on CPU, ``compute_type`` int8 (its README's advice for CPU),
  its default pyannote VAD (its bundled segmentation asset: the same weights as the starter set's segmentation),
  ``transcribe(audio, batch_size=8)`` (its CLI's default), then ``whisperx.diarize.DiarizationPipeline`` on the same
  local pyannote pipeline directory as bwc's, then ``assign_word_speakers``. Its defaults (beam 5) and a greedy
  variant (``asr_options={"beam_size": 1}``). Without its wav2vec2 word aligner (a hub download): speakers are
  assigned per segment.
- **whisper + pyannote file by file**: ``whisper.transcribe(model, audio, language="en", word_timestamps=True)``
  with its defaults (temperature fallback, greedy at 0, ``condition_on_previous_text``) on the openai checkpoint of
  the same weights, loaded with ``models.ctranslate2_whisper.load_whisper`` (alignment heads restored), then the
  same pyannote pipeline on the file, words given the speaker they overlap most.

Each system runs in its own fresh subprocess, one after another (never two at once), with
``torch.set_num_threads(cores)``: models loaded once, then every file of both sets, each system reading the WAV files
itself. After loading, each system processes one 15 s warm-up clip (the start of the first dense recording), counted
as loading: first calls allocate memory, pick kernels and start thread pools. Wall time is reported without and with
the loading; realtime factor = audio seconds / wall seconds;
"bwc speed-up" = the peer's wall / bwc's wall on the same set (throughput ratio). Before each system the script waits
(``--idle-wait``, up to 300 s) for other processes to leave the CPUs; the CPU they used while each system ran is
measured (``/proc/stat`` minus the child's own) and reported, with a warning in the results when it was more than a
quarter of a core: on two cores a shared CPU distorts the timings far beyond its share.

Audio
-----
Real voices with known text from ``../shared/data/speech`` (``refs.tsv``, ``utterances/``), mixed into 16 kHz mono
WAVs in a work folder (``.bench/peers`` by default):

- **BWC-like**: a body-camera scene of :mod:`bwc.scenes` (wearer near, community members farther, a dispatch radio
  burst, overlaps, road noise, one long pause), padded in the gaps between lines with long non-speech stretches
  (near-silence, louder road noise with radio squelch) until at least 60% of each recording is not speech.
- **speech-dense**: the utterances back to back, 0.15-0.4 s apart, over light road noise: at least 80% speech.

Speech shares are measured from the lines' spans. A recording's reference is its lines' texts in time order, the
radio's included ("WER": the radio burst is a real utterance, clearly audible, and every system transcribes it);
"WER talk" leaves the radio's lines out of the reference (its words then count as insertions). WER is pooled over a
set's recordings on whisper's English normaliser (``bwc.evaluation``); DER (collar 0.25 s, overlap scored) against
every line's speaker, the radio's included.

Usage
-----
::

    .venv/bin/python benchmarks/peers.py                    # 4 BWC-like (3-5 min) + 3 dense (1-2 min); appends
    .venv/bin/python benchmarks/peers.py --quick --results /tmp/peers_results.md     # 1 + 1 recordings, ~3 min
    .venv/bin/python benchmarks/peers.py --systems bwc,whisperx --no-record          # a subset, print only
    .venv/bin/python benchmarks/peers.py --bwc-set whisper.engine=openai --systems bwc     # bwc's other engine
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: bwc, models, pipelines
os.environ["PYANNOTE_METRICS_ENABLED"] = "0"
os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np

from benchmarks.capacity import _hardware
from benchmarks.speech import _machine_busy_s, near_silence
from bwc.audio import SAMPLE_RATE, read_pcm, write_audio
from bwc.config import setting_overrides
from bwc.demo import place, road_noise
from bwc.scenes import Scene, SceneLine, Voice, load_voices, noise_only, real_voice_scene, speech_level_db

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
DEFAULT_SHARED = ROOT.parent / "shared"
DEFAULT_WORK = ROOT / ".bench" / "peers"
WHISPERX_VERSION = "3.8.6"
WHISPERX_DIR = ROOT / ".bench" / "whisperx"  # pip --no-deps --target: whisperx's own files only
CORES = os.cpu_count() or 1
SEED = 2027

MIN_NON_SPEECH = 0.6  # BWC-like recordings: at least this share not speech
MIN_DENSE_SPEECH = 0.8  # speech-dense recordings: at least this share speech
PAD_MARGIN = 1.05  # BWC-like padding aims this much past the minimum non-speech share
MIN_CUT_GAP_S = 0.5  # padding goes only into gaps between lines at least this long
STRETCH_S = (6.0, 30.0)  # one non-speech stretch of the padding
LOUD_ROAD_RMS = 0.03  # padding's road noise, louder than the 0.01 under the scene (a passing car, the engine)
SQUELCH_S = (0.3, 1.2)  # radio static burst at the start of a road stretch
SQUELCH_RMS = 0.03
DENSE_PAUSE_S = (0.15, 0.4)
DENSE_LEVEL_DB = (-28.0, -18.0)  # speech level of each dense line, dBFS
DENSE_LEAD_S = 0.3

COLLAR_S = 0.25
WARMUP_S = 15.0  # the untimed clip every system processes once after loading (from the first dense recording)
BUSY_CORES = 0.25  # other processes using more than this many cores on average make a system's timing suspect
IDLE_WINDOW_S = 3.0  # how long the machine is watched before a system starts
RESULT_CHILD = "_child"
SYSTEMS = ("bwc", "whisperx", "whisperx-greedy", "whisper-file-by-file")
SYSTEM_TITLES = {
    "bwc": "bwc SpeechStage (batched)",
    "whisperx": "WhisperX (beam 5, no alignment)",
    "whisperx-greedy": "WhisperX (greedy, no alignment)",
    "whisper-file-by-file": "whisper.transcribe + pyannote, file by file",
}
SETS = ("bwc-like", "speech-dense")


@dataclass(frozen=True)
class Sizes:
    """How much audio a mode makes."""

    bwc_like_files: int
    bwc_like_s: tuple[float, float]  # length range of a BWC-like recording (longer if its speech needs it)
    lines_per_speaker: int  # scene lines per talker at most
    max_civilians: int  # community members per scene at most (at least one)
    dense_files: int
    dense_s: tuple[float, float]  # length range of a speech-dense recording


FULL = Sizes(4, (180.0, 300.0), 2, 2, 3, (60.0, 120.0))
QUICK = Sizes(1, (70.0, 70.0), 2, 1, 1, (30.0, 30.0))


@dataclass(frozen=True)
class Truth:
    """One generated recording and what is said in it."""

    name: str
    path: str  # the WAV
    duration_s: float
    lines: list[dict[str, Any]]  # SceneLine fields, sorted by start

    @property
    def speech_s(self) -> float:
        return union_s([(line["start"], line["end"]) for line in self.lines])

    def reference(self, with_radio: bool) -> str:
        return " ".join(line["text"] for line in self.lines if with_radio or line["role"] != "radio")

    def turns(self) -> list[tuple[float, float, str]]:
        return [(line["start"], line["end"], line["speaker"]) for line in self.lines]


# ------------------------------------------------------------------------------------------------------------ audio


def union_s(spans: Sequence[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``spans``."""
    total, covered_to = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > covered_to:
            total += end - max(start, covered_to)
            covered_to = end
    return total


def filler(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Non-speech, ``seconds`` long: stretches of near-silence and of loud road noise (a radio squelch burst at the
    start of each), alternating."""
    pieces: list[np.ndarray] = []
    left, quiet = seconds, bool(rng.integers(2))
    while left > 1e-3:
        length = min(left, float(rng.uniform(*STRETCH_S)))
        if quiet:
            pieces.append(near_silence(length, rng))
        else:
            road = noise_only("road", length, seed=int(rng.integers(1 << 30))) * np.float32(LOUD_ROAD_RMS / 0.1)
            squelch_s = min(length, float(rng.uniform(*SQUELCH_S)))
            squelch = noise_only("static", squelch_s, seed=int(rng.integers(1 << 30))) * np.float32(SQUELCH_RMS / 0.1)
            road[: len(squelch)] += squelch
            pieces.append(road)
        left -= length
        quiet = not quiet
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def pad_scene(scene: Scene, target_s: float, rng: np.random.Generator) -> tuple[np.ndarray, list[SceneLine]]:
    """Insert non-speech into the gaps between a scene's lines (and before and after them) until the recording is at
    least ``target_s`` long and at least :data:`MIN_NON_SPEECH` of it is not speech; the lines move with it."""
    lines = sorted(scene.lines, key=lambda line: line.start)
    speech_s = union_s([(line.start, line.end) for line in lines])
    duration_s = len(scene.audio) / SAMPLE_RATE
    total_s = max(target_s, speech_s / (1 - MIN_NON_SPEECH) * PAD_MARGIN)
    extra_s = max(0.0, total_s - duration_s)
    cuts = [0]  # sample offsets where padding goes in, each in a gap no line covers
    covered_to = 0.0
    for line in lines:
        if line.start - covered_to >= MIN_CUT_GAP_S and covered_to > 0:
            cuts.append(round((covered_to + line.start) / 2 * SAMPLE_RATE))
        covered_to = max(covered_to, line.end)
    cuts.append(len(scene.audio))
    shares = rng.dirichlet(np.ones(len(cuts))) * extra_s
    pieces: list[np.ndarray] = []
    shifts: list[tuple[float, float]] = []  # (cut time in scene seconds, padding inserted at or before it)
    inserted = 0.0
    previous = 0
    for cut, pad_s in zip(cuts, shares, strict=True):
        pieces.append(scene.audio[previous:cut])
        pad = filler(float(pad_s), rng)
        pieces.append(pad)
        inserted += len(pad) / SAMPLE_RATE
        shifts.append((cut / SAMPLE_RATE, inserted))
        previous = cut

    def moved(line: SceneLine) -> SceneLine:
        shift = max((offset for at, offset in shifts if at <= line.start), default=0.0)
        return SceneLine(line.role, line.speaker, round(line.start + shift, 3), round(line.end + shift, 3), line.text)

    audio = np.clip(np.concatenate(pieces), -1.0, 1.0).astype(np.float32)
    return audio, [moved(line) for line in lines]


def bwc_like_recording(
    voices: dict[str, list[Voice]], target_s: float, seed: int, sizes: Sizes
) -> tuple[np.ndarray, list[SceneLine]]:
    """A :mod:`bwc.scenes` scene (officer, one or more community members, a radio burst) padded to BWC-like."""
    rng = np.random.default_rng(seed)
    talkers = sorted(speaker for speaker, own in voices.items() if len(own) >= 2)
    radios = sorted(speaker for speaker, own in voices.items() if len(own) == 1 and len(own[0].text.split()) >= 5)
    chosen = [
        str(s) for s in rng.choice(talkers, size=1 + int(rng.integers(1, sizes.max_civilians + 1)), replace=False)
    ]
    radio = str(rng.choice(radios)) if radios else None
    scene = real_voice_scene(
        voices, chosen[0], chosen[1:], seed=seed, radio=radio, lines_per_speaker=sizes.lines_per_speaker
    )
    return pad_scene(scene, target_s, rng)


def dense_recording(voices: dict[str, list[Voice]], target_s: float, seed: int) -> tuple[np.ndarray, list[SceneLine]]:
    """Utterances (none twice) back to back, levelled by speech, short pauses, light road noise under them."""
    rng = np.random.default_rng(seed)
    utterances = sorted((voice for own in voices.values() for voice in own), key=lambda voice: str(voice.path))
    order = rng.permutation(len(utterances))
    placed: list[tuple[int, np.ndarray]] = []
    lines: list[SceneLine] = []
    cursor = DENSE_LEAD_S
    for index in order:
        if cursor >= target_s:
            break
        voice = utterances[int(index)]
        samples = place(read_pcm(voice.path), "officer", rng, 1.0)
        samples = samples * np.float32(10 ** ((float(rng.uniform(*DENSE_LEVEL_DB)) - speech_level_db(samples)) / 20))
        start = cursor if not lines else cursor + float(rng.uniform(*DENSE_PAUSE_S))
        end = start + len(samples) / SAMPLE_RATE
        placed.append((round(start * SAMPLE_RATE), samples))
        lines.append(SceneLine("civilian", voice.speaker, round(start, 3), round(end, 3), voice.text))
        cursor = end
    total = round((cursor + DENSE_LEAD_S) * SAMPLE_RATE)
    mix = road_noise(total / SAMPLE_RATE, rng)
    for offset, samples in placed:
        end = min(total, offset + len(samples))
        mix[offset:end] += samples[: end - offset]
    return np.clip(mix, -1.0, 1.0).astype(np.float32), lines


def make_sets(speech_dir: Path, work: Path, sizes: Sizes) -> dict[str, list[Truth]]:
    """Write both sets' WAVs and truth into ``work``; checks the speech shares."""
    voices = load_voices(speech_dir)
    rng = np.random.default_rng(SEED)
    made: dict[str, list[tuple[np.ndarray, list[SceneLine]]]] = {
        "bwc-like": [
            bwc_like_recording(voices, float(rng.uniform(*sizes.bwc_like_s)), SEED + 100 * index, sizes)
            for index in range(sizes.bwc_like_files)
        ],
        "speech-dense": [
            dense_recording(voices, float(rng.uniform(*sizes.dense_s)), SEED + 10_000 + 100 * index)
            for index in range(sizes.dense_files)
        ],
    }
    sets: dict[str, list[Truth]] = {}
    for name, recordings in made.items():
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.wav"):
            stale.unlink()
        truths = []
        for index, (audio, lines) in enumerate(recordings):
            path = folder / f"{name}-{index:02d}.wav"
            write_audio(path, audio, SAMPLE_RATE, "-c:a", "pcm_s16le")
            truths.append(Truth(path.stem, str(path), len(audio) / SAMPLE_RATE, [asdict(line) for line in lines]))
        sets[name] = truths
        (folder / "truth.json").write_text(json.dumps([asdict(t) for t in truths], indent=1), encoding="utf-8")
    for truth in sets["bwc-like"]:
        if truth.speech_s / truth.duration_s > 1 - MIN_NON_SPEECH:
            raise RuntimeError(f"{truth.name}: {truth.speech_s / truth.duration_s:.0%} speech, want <= 40%")
    for truth in sets["speech-dense"]:
        if truth.speech_s / truth.duration_s < MIN_DENSE_SPEECH:
            raise RuntimeError(f"{truth.name}: {truth.speech_s / truth.duration_s:.0%} speech, want >= 80%")
    return sets


def write_warmup(sets: dict[str, list[Truth]], work: Path) -> Path:
    """The first :data:`WARMUP_S` seconds of the first speech-dense recording, as ``work/warmup.wav``."""
    source = sets["speech-dense"][0]
    path = work / "warmup.wav"
    write_audio(path, read_pcm(Path(source.path), 0.0, WARMUP_S), SAMPLE_RATE, "-c:a", "pcm_s16le")
    return path


# ----------------------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelPaths:
    """The same weights in the forms each system loads."""

    models_dir: Path
    whisper_pt: Path  # openai-whisper checkpoint (the file-by-file baseline)
    whisper_ct2: Path  # CTranslate2 directory of the same weights (WhisperX)
    pipeline_dir: Path  # pyannote pipeline directory (all three)


def find_models(models_dir: Path | None, whisper_pt: Path | None, whisper_ct2: Path | None) -> ModelPaths:
    """bwc's models directory and the weights its configuration resolves to, in both formats (``whisper.engine``
    openai and ctranslate2: the ``.pt`` and its ``-ct2`` copy, as the starter set and ``bwc models fetch`` lay
    them out), unless given."""
    from bwc.config import default_models_dir, load_config
    from models.locate import ModelNotFoundError, ResolvedModels

    directory = (models_dir or default_models_dir()).expanduser()
    config = load_config(directory)
    try:
        if whisper_pt is None:
            whisper_pt = ResolvedModels.resolve(config.merged({"whisper": {"engine": "openai"}})).whisper_checkpoint
        if whisper_ct2 is None:
            whisper_ct2 = ResolvedModels.resolve(
                config.merged({"whisper": {"engine": "ctranslate2"}})
            ).whisper_checkpoint
    except ModelNotFoundError as error:
        sys.exit(f"{error}\n(or pass --baseline-checkpoint FILE / --whisperx-model DIR)")
    return ModelPaths(directory, whisper_pt, whisper_ct2, ResolvedModels.resolve(config).pyannote_pipeline)


def ensure_whisperx() -> None:
    """Install whisperx's own files (no dependencies) into :data:`WHISPERX_DIR` unless already there."""
    if (WHISPERX_DIR / "whisperx" / "__init__.py").is_file():
        return
    print(f"installing whisperx=={WHISPERX_VERSION} (--no-deps) into {WHISPERX_DIR}", flush=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(WHISPERX_DIR)]
    subprocess.run([*command, f"whisperx=={WHISPERX_VERSION}"], check=True)


# --------------------------------------------------------------------------------------------------- child processes


def child_main(spec_path: Path, out_path: Path) -> None:
    """Run one system on every set of the spec, write its result JSON."""
    import torch

    torch.set_num_threads(CORES)
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    system = spec["system"]
    runner = {
        "bwc": run_bwc,
        "whisperx": run_whisperx,
        "whisperx-greedy": run_whisperx,
        "whisper-file-by-file": run_file_by_file,
    }[system]
    started = time.perf_counter()
    load, process, versions = runner(spec)
    # First calls allocate, pick kernels and start thread pools: once, on a clip of neither set, counted as load.
    process([Path(spec["warmup"])])
    load_s = time.perf_counter() - started
    sets = {}
    for name, files in spec["sets"].items():
        clock = time.perf_counter()
        outputs = process([Path(f) for f in files])
        sets[name] = {"wall_s": time.perf_counter() - clock, "outputs": outputs}
    del load
    result = {
        "system": system,
        "load_s": load_s,
        "sets": sets,
        "versions": versions,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    out_path.write_text(json.dumps(result), encoding="utf-8")


Output = dict[str, Any]  # a file's "text" and diarization "turns" [(start, end, speaker)]
Processor = Callable[[list[Path]], list[Output]]


def run_bwc(spec: dict[str, Any]) -> tuple[object, Processor, str]:
    from bwc.audio import probe, sha256_file
    from bwc.config import load_config
    from bwc.records import Recording
    from pipelines.speech import SpeechStage

    overrides = setting_overrides(spec["bwc_set"])  # checked in the parent already
    config = load_config(Path(spec["models_dir"]), overrides=overrides or None)
    stage = SpeechStage.from_config(config, device="cpu")

    def process(files: list[Path]) -> list[Output]:
        recordings = []
        for path in files:  # what ingest does before the speech stage: hash and probe
            digest = sha256_file(path)
            recordings.append(Recording(digest[:16], str(path), digest, path.stat().st_size, probe(path)))
        outputs = []
        for path, outcome in zip(files, stage.process_batch(recordings), strict=True):
            if isinstance(outcome, BaseException):
                raise RuntimeError(f"{path}: {outcome}") from outcome
            timings = outcome.timings
            outputs.append(
                {
                    "text": " ".join(word.text for word in outcome.words),
                    "turns": [(t.start, t.end, t.speaker) for t in outcome.diarization.turns],
                    "stages_s": {
                        "decode": timings.decode_s,
                        "VAD": timings.vad_s,
                        "ASR": timings.asr_s,
                        "diarization": timings.diarization_s,
                        "assembly": timings.assembly_s,
                    },
                }
            )
        return outputs

    versions = ", ".join(f"{key} {value}" for key, value in stage.model_versions.items())
    if overrides:
        versions += f" (settings {', '.join(spec['bwc_set'])})"
    return stage, process, versions


def run_whisperx(spec: dict[str, Any]) -> tuple[object, Processor, str]:
    sys.path.append(str(WHISPERX_DIR))  # last: whisperx never shadows an installed package
    import ctranslate2
    import faster_whisper
    import whisperx
    import whisperx.asr
    import whisperx.audio
    import whisperx.diarize

    if not Path(whisperx.__file__).is_relative_to(WHISPERX_DIR):
        raise RuntimeError(f"whisperx imported from {whisperx.__file__}, not from {WHISPERX_DIR}")
    greedy = spec["system"] == "whisperx-greedy"
    asr_options = {"beam_size": 1} if greedy else None
    model = whisperx.asr.load_model(
        spec["whisper_ct2"],
        device="cpu",
        compute_type=spec["compute_type"],
        language="en",
        vad_method="pyannote",
        threads=CORES,
        asr_options=asr_options,
    )
    diarizer = whisperx.diarize.DiarizationPipeline(model_name=spec["pipeline_dir"], device="cpu")
    batch_size = int(spec["batch_size"])

    def process(files: list[Path]) -> list[Output]:
        outputs = []
        for path in files:
            clock = time.perf_counter()
            audio = whisperx.audio.load_audio(str(path))
            decoded = time.perf_counter()
            result = model.transcribe(audio, batch_size=batch_size)
            transcribed = time.perf_counter()
            frame = diarizer(audio)
            diarized = time.perf_counter()
            result = whisperx.diarize.assign_word_speakers(frame, result)
            outputs.append(
                {
                    "text": " ".join(segment["text"].strip() for segment in result["segments"]),
                    "turns": [(float(r.start), float(r.end), str(r.speaker)) for r in frame.itertuples()],
                    "stages_s": {
                        "decode": decoded - clock,
                        "VAD + ASR": transcribed - decoded,
                        "diarization": diarized - transcribed,
                        "assignment": time.perf_counter() - diarized,
                    },
                }
            )
        return outputs

    asset = Path(whisperx.__file__).parent / "assets" / "pytorch_model.bin"
    same = same_weights(asset, Path(spec["pipeline_dir"]) / "segmentation" / "pytorch_model.bin")
    versions = (
        f"whisperx {WHISPERX_VERSION} (faster-whisper {faster_whisper.__version__}, ctranslate2 "
        f"{ctranslate2.__version__}), {Path(spec['whisper_ct2']).name} {spec['compute_type']}, "
        f"beam {1 if greedy else 5}, batch {batch_size}, VAD its bundled segmentation asset "
        + ("(the same weights as bwc's segmentation model)" if same else "(weights differ from bwc's segmentation)")
    )
    return (model, diarizer), process, versions


def same_weights(first: Path, second: Path) -> bool:
    """Whether two pyannote checkpoints hold the same tensors (the files differ: the starter set's copy was saved
    again without the training state)."""
    import torch

    if not (first.is_file() and second.is_file()):
        return False
    # pyannote checkpoints pickle pyannote objects (specifications): trusted files, the ones the systems load anyway
    a, b = (torch.load(path, map_location="cpu", weights_only=False)["state_dict"] for path in (first, second))
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def run_file_by_file(spec: dict[str, Any]) -> tuple[object, Processor, str]:
    import torch
    import whisper
    from pyannote.audio import Pipeline

    from models.ctranslate2_whisper import load_whisper

    model = load_whisper(Path(spec["whisper_pt"]))
    pipeline = Pipeline.from_pretrained(spec["pipeline_dir"])

    def process(files: list[Path]) -> list[Output]:
        outputs = []
        for path in files:
            clock = time.perf_counter()
            audio = whisper.load_audio(str(path))
            decoded = time.perf_counter()
            # whisper's defaults; fp16=False is what it falls back to on CPU anyway (without the warning)
            result = whisper.transcribe(model, audio, language="en", word_timestamps=True, fp16=False)
            transcribed = time.perf_counter()
            output = pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": SAMPLE_RATE})
            diarized = time.perf_counter()
            annotation = getattr(output, "speaker_diarization", output)  # pyannote 4: DiarizeOutput
            turns = [(float(s.start), float(s.end), str(label)) for s, _, label in annotation.itertracks(True)]
            words = [word for segment in result["segments"] for word in segment.get("words", [])]
            for word in words:  # as whisperx.assign_word_speakers: the speaker overlapping the word most
                overlaps = [(min(word["end"], end) - max(word["start"], start), who) for start, end, who in turns]
                best = max(overlaps, default=(0.0, None))
                word["speaker"] = best[1] if best[0] > 0 else None
            stages = {"decode": decoded - clock, "ASR": transcribed - decoded, "diarization": diarized - transcribed}
            stages["assignment"] = time.perf_counter() - diarized
            outputs.append({"text": str(result["text"]), "turns": turns, "stages_s": stages})
        return outputs

    return (model, pipeline), process, f"openai-whisper {whisper.__version__}, {Path(spec['whisper_pt']).name} fp32"


# ---------------------------------------------------------------------------------------------------------- parent


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_idle(max_wait_s: float) -> float:
    """Wait (at most ``max_wait_s``) until the machine's other processes use under :data:`BUSY_CORES` for
    :data:`IDLE_WINDOW_S`; returns the cores they used in the last window."""
    deadline = time.monotonic() + max_wait_s
    told = False
    while True:
        before = _machine_busy_s()
        time.sleep(IDLE_WINDOW_S)
        cores = (_machine_busy_s() - before) / IDLE_WINDOW_S
        if cores < BUSY_CORES or time.monotonic() >= deadline:
            return cores
        if not told:
            print(f"  the machine is busy ({cores:.1f} cores in use): waiting up to {max_wait_s:.0f} s", flush=True)
            told = True


def run_child(system: str, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """One system in a fresh process; its result, with the cores other processes used meanwhile."""
    spec_path, out_path, log_path = (work / f"{system}.{suffix}" for suffix in ("spec.json", "result.json", "log"))
    spec_path.write_text(json.dumps({**spec, "system": system}), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    busy, own, clock = _machine_busy_s(), children_cpu_s(), time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        completed = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), RESULT_CHILD, str(spec_path), str(out_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            check=False,
        )
    wall = time.perf_counter() - clock
    others = (_machine_busy_s() - busy) - (children_cpu_s() - own)
    if completed.returncode != 0 or not out_path.is_file():
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        sys.exit(f"{system} failed ({completed.returncode}); its log {log_path} ends:\n{tail}")
    result = json.loads(out_path.read_text(encoding="utf-8"))
    result["process_s"] = wall
    result["others_cores"] = max(0.0, others) / wall
    return result


@dataclass(frozen=True)
class Row:
    system: str
    set_name: str
    files: int
    audio_s: float
    load_s: float
    wall_s: float
    wer: float
    wer_talk: float
    der: float
    others_cores: float


def score(system: str, result: dict[str, Any], sets: dict[str, list[Truth]]) -> list[Row]:
    from bwc.evaluation import diarization_error_rate, word_error_rate

    rows = []
    for name, truths in sets.items():
        outputs = result["sets"][name]["outputs"]
        texts = [output["text"] for output in outputs]
        errors = speech = 0.0
        for truth, output in zip(truths, outputs, strict=True):
            with warnings.catch_warnings():  # "'uem' was approximated by the union of the extents": as meant
                warnings.simplefilter("ignore", UserWarning)
                rate, seconds = diarization_error_rate(truth.turns(), [tuple(t) for t in output["turns"]], COLLAR_S)
            errors += rate * seconds
            speech += seconds
        rows.append(
            Row(
                system=system,
                set_name=name,
                files=len(truths),
                audio_s=sum(truth.duration_s for truth in truths),
                load_s=result["load_s"],
                wall_s=result["sets"][name]["wall_s"],
                wer=word_error_rate([t.reference(True) for t in truths], texts).wer,
                wer_talk=word_error_rate([t.reference(False) for t in truths], texts).wer,
                der=errors / speech if speech else float("nan"),
                others_cores=result["others_cores"],
            )
        )
    return rows


def table(rows: list[Row]) -> str:
    """The markdown table: per set, and both sets together (the model loading counted once)."""
    bwc_wall = {row.set_name: row.wall_s for row in rows if row.system == "bwc"}
    bwc_loaded = {row.set_name: row.wall_s + row.load_s for row in rows if row.system == "bwc"}
    lines = [
        "| system | set | files | audio s | load s | wall s | x realtime | bwc speed-up | wall+load s | "
        "x realtime with load | bwc speed-up with load | WER | WER talk | DER@0.25 | others' cores |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    every = list(rows)
    for system in dict.fromkeys(row.system for row in rows):
        own = [row for row in rows if row.system == system]
        every.append(
            Row(system, "both", sum(r.files for r in own), sum(r.audio_s for r in own), own[0].load_s,
                sum(r.wall_s for r in own), float("nan"), float("nan"), float("nan"), own[0].others_cores)
        )  # fmt: skip
    if bwc_wall:
        bwc_wall["both"] = sum(bwc_wall.values())
        bwc_loaded["both"] = bwc_wall["both"] + next(row.load_s for row in rows if row.system == "bwc")
    order = {name: index for index, name in enumerate([*SETS, "both"])}
    for row in sorted(every, key=lambda row: (order[row.set_name], SYSTEMS.index(row.system))):
        loaded = row.wall_s + row.load_s
        ratio = ratio_loaded = "—"
        if row.system != "bwc" and row.set_name in bwc_wall:
            ratio = f"{row.wall_s / bwc_wall[row.set_name]:.2f}"
            ratio_loaded = f"{loaded / bwc_loaded[row.set_name]:.2f}"
        lines.append(
            f"| {SYSTEM_TITLES[row.system]} | {row.set_name} | {row.files} | {row.audio_s:.0f} | {row.load_s:.1f} | "
            f"{row.wall_s:.1f} | {row.audio_s / row.wall_s:.1f} | {ratio} | {loaded:.1f} | "
            f"{row.audio_s / loaded:.1f} | {ratio_loaded} | {fmt(row.wer)} | {fmt(row.wer_talk)} | {fmt(row.der)} | "
            f"{row.others_cores:.2f} |"
        )
    return "\n".join(lines)


def fmt(value: float) -> str:
    return "—" if value != value else f"{value:.3f}"


def busy_caveat(results: dict[str, dict[str, Any]]) -> list[str]:
    """A warning paragraph when other processes shared the CPUs while a system ran."""
    busy = {system: r["others_cores"] for system, r in results.items() if r["others_cores"] > BUSY_CORES}
    if not busy:
        return []
    which = ", ".join(f"{SYSTEM_TITLES[system]} {cores:.2f}" for system, cores in busy.items())
    return [
        f"**The machine was busy: other processes used on average {which} cores while these systems ran. Their "
        "timings (and the speed-ups) are not representative; rerun on an idle machine.** On two cores a torch job "
        "sharing its CPUs can slow down far more than in proportion (pyannote's diarization in the file-by-file "
        "process was seen 100 times slower on a busy machine than on an idle one).",
        "",
    ]


def stage_seconds(result: dict[str, Any]) -> str:
    totals: dict[str, float] = {}
    for done in result["sets"].values():
        for output in done["outputs"]:
            for stage, seconds in output.get("stages_s", {}).items():
                totals[stage] = totals.get(stage, 0.0) + seconds
    return ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in totals.items())


def report(
    command: str,
    sets: dict[str, list[Truth]],
    results: dict[str, dict[str, Any]],
    rows: list[Row],
    models: ModelPaths,
    spec: dict[str, Any],
    total_s: float,
) -> str:
    shares = {
        name: ", ".join(f"{t.duration_s:.0f} s at {t.speech_s / t.duration_s:.0%}" for t in truths)
        for name, truths in sets.items()
    }
    radio_words = sum(
        len(line["text"].split()) for t in sets["bwc-like"] for line in t.lines if line["role"] == "radio"
    )
    speakers = {
        name: "; ".join(
            f"{t.name} truth {len({line['speaker'] for line in t.lines})}, "
            + ", ".join(
                f"{system} {len({turn[2] for turn in results[system]['sets'][name]['outputs'][i]['turns']})}"
                for system in results
            )
            for i, t in enumerate(truths)
        )
        for name, truths in sets.items()
    }
    lines = [
        f"\n## Peers: bwc's speech pipeline against WhisperX and whisper + pyannote — {datetime.now(UTC):%Y-%m-%d}\n",
        f"`{command}` on {_hardware(0.0)} ({total_s:.0f} s in all). Same weights for every system: whisper "
        f"{models.whisper_pt.name} (WhisperX: its CTranslate2 copy {models.whisper_ct2.name}), diarization "
        f"{models.pipeline_dir.name} (pyannote pipeline directory), from {models.models_dir}. Each system in its own "
        f"process, one after another, torch threads = {CORES}, models loaded once and warmed up on a {WARMUP_S:.0f} s "
        "clip (counted as load), then both sets; every system reads the WAVs itself. Every process imports "
        "ctranslate2 before torch (bwc's package does, and `import whisperx` then `whisperx.load_model`, its API, "
        "does too), so CTranslate2 keeps its own OpenMP runtime; whisperx's CLI imports torch first (not measured).",
        "",
        "Systems and versions:",
        "",
        *[
            f"- {SYSTEM_TITLES[system]}: {result['versions']}; peak RSS {result['peak_rss_mb']:.0f} MB"
            for system, result in results.items()
        ],
        "",
        f"WhisperX {WHISPERX_VERSION} was installed for this benchmark with `pip install --no-deps --target "
        ".bench/whisperx` (its pins want an older torch; it ran on this venv's torch, faster-whisper, ctranslate2 and "
        "pyannote.audio) and ran without its wav2vec2 word alignment (a hub download): its text and its segment-level "
        "speakers are scored. Its VAD is its default, pyannote with its bundled segmentation asset; compute type "
        f"{spec['compute_type']}, batch size {spec['batch_size']}; its diarization is "
        "`whisperx.diarize.DiarizationPipeline(model_name=<the same local pipeline directory>)`.",
        "",
        "Audio: real voices from ../shared/data/speech (refs.tsv) mixed into 16 kHz mono WAVs. BWC-like: a "
        "bwc.scenes body-camera scene (officer near, community members farther, a radio burst, overlaps, road noise, "
        "a long pause) padded in its gaps with near-silence and loud road noise with radio squelch, "
        f"length and speech share (from the lines) {shares['bwc-like']}. Speech-dense: utterances back to back "
        f"0.15-0.4 s apart, {shares['speech-dense']}.",
        "",
        table(rows),
        "",
        *busy_caveat(results),
        "x realtime: audio seconds per wall second. bwc speed-up: the peer's wall over bwc's on the same audio "
        "(throughput ratio bwc/peer); 'with load' adds each system's one model load and warm-up (per set rows: "
        "the whole load each). WER pooled over the set on whisper's English normaliser against every line, the "
        "radio's included; "
        f"WER talk: the radio's lines ({radio_words} words) left out of the reference. DER pooled, collar "
        f"{COLLAR_S} s, overlap scored, against every line's speaker. others' cores: CPU other processes used on "
        "average while the system ran (0 on an idle machine).",
        "",
        "Speakers found per recording: " + " | ".join(speakers.values()) + ".",
        "",
        "Where the time went, seconds summed over both sets' files: "
        + "; ".join(f"{SYSTEM_TITLES[system]}: {stage_seconds(result)}" for system, result in results.items())
        + ".",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == RESULT_CHILD:
        child_main(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--quick", action="store_true", help="one ~70 s BWC-like and one ~30 s dense recording")
    parser.add_argument("--models", type=Path, help="models directory (default: $BWC_MODELS or ~/.cache/bwc/models)")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the folder holding data/speech")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="where the WAVs and child results go")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to append to")
    parser.add_argument("--no-record", action="store_true", help="print only, append nothing")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    parser.add_argument("--whisperx-compute-type", default="int8", help="ctranslate2 compute type for WhisperX")
    parser.add_argument("--whisperx-batch-size", type=int, default=8, help="WhisperX batch size (its CLI's default)")
    parser.add_argument("--whisperx-model", type=Path, help="CTranslate2 whisper directory (default: <pt>-ct2)")
    parser.add_argument("--baseline-checkpoint", type=Path, help="openai-whisper .pt for the file-by-file baseline")
    parser.add_argument(
        "--bwc-set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="a bwc setting for its run"
    )
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=300.0,
        metavar="S",
        help="before each system, wait up to S seconds for other processes to leave the CPUs (0: do not wait)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    speech_dir = args.shared / "data" / "speech"
    if not (speech_dir / "refs.tsv").is_file():
        sys.exit(f"no development data at {speech_dir}: this benchmark needs its real voices (pass --shared)")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if unknown := [s for s in systems if s not in SYSTEMS]:
        sys.exit(f"unknown systems {unknown}: choose from {', '.join(SYSTEMS)}")
    try:
        setting_overrides(args.bwc_set)
    except ValueError as error:
        sys.exit(f"--bwc-set: {error}")
    models = find_models(args.models, args.baseline_checkpoint, args.whisperx_model)
    if any(s.startswith("whisperx") for s in systems):
        ensure_whisperx()

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    sizes = QUICK if args.quick else FULL
    print(f"models: {models.whisper_pt}, {models.whisper_ct2}, {models.pipeline_dir}", flush=True)
    sets = make_sets(speech_dir, work, sizes)
    for name, truths in sets.items():
        for truth in truths:
            print(f"{name}: {truth.name} {truth.duration_s:.1f} s, speech {truth.speech_s / truth.duration_s:.0%} "
                  f"({len(truth.lines)} lines)", flush=True)  # fmt: skip
    spec = {
        "models_dir": str(models.models_dir),
        "whisper_pt": str(models.whisper_pt),
        "whisper_ct2": str(models.whisper_ct2),
        "pipeline_dir": str(models.pipeline_dir),
        "compute_type": args.whisperx_compute_type,
        "batch_size": args.whisperx_batch_size,
        "bwc_set": args.bwc_set,
        "sets": {name: [truth.path for truth in truths] for name, truths in sets.items()},
        "warmup": str(write_warmup(sets, work)),
    }
    results: dict[str, dict[str, Any]] = {}
    rows: list[Row] = []
    for system in systems:
        if args.idle_wait > 0:
            wait_for_idle(args.idle_wait)
        print(f"running {system} ...", flush=True)
        results[system] = run_child(system, spec, work)
        rows += score(system, results[system], sets)
        done = results[system]
        print(f"  {system}: load {done['load_s']:.1f} s, "
              + ", ".join(f"{n} {s['wall_s']:.1f} s" for n, s in done["sets"].items())
              + f"; {done['versions']}", flush=True)  # fmt: skip
    command = " ".join([".venv/bin/python benchmarks/peers.py", *sys.argv[1:]])
    text = report(command, sets, results, rows, models, spec, time.perf_counter() - started)
    print(text)
    if not args.no_record:
        with open(args.results, "a", encoding="utf-8") as handle:
            handle.write(text)
        print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
