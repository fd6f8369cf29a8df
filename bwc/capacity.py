"""Capacity planning: measured throughput per CPU core and per GPU turned into the nodes a night's footage needs.

Throughput comes from measurements, never from guesses: the benchmark ``benchmarks/capacity.py`` (kept in
``benchmarks/capacity.json``, one per device kind, each naming the command and machine that produced it), or a
department's own run reports (``STORE/runs/*.json``), which record the stage seconds and what each actor was given.

Speech throughput is counted per unit the speech actors hold (a CPU core, or a whole GPU), from the actors' busy
seconds, so it does not depend on how many actors shared a machine; language throughput per CPU core likewise.

Example
-------
>>> m = Measurement("cpu", speech_x_per_unit=0.5, scoring_x_per_core=200.0, models="whisper small",
...                 hardware="2 cores", source="benchmarks/capacity.py")
>>> plan = plan_nodes(audio_hours=100, measurement=m, window_hours=8, headroom=1.25, cores_per_node=32)
>>> round(plan.speech_units), plan.speech_nodes
(31, 1)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CAPACITY_FILE = "capacity.json"  # benchmarks/capacity.json: the benchmark's measurements
BENCHMARK_MEASUREMENTS = Path(__file__).resolve().parents[1] / "benchmarks" / CAPACITY_FILE
SPEECH_STAGES = ("decode_s", "vad_s", "asr_s", "diarization_s", "assembly_s")  # speech actor time
SCORING_STAGE = "scoring_s"  # language actor time


@dataclass(frozen=True)
class Measurement:
    """Measured throughput of one kind of speech hardware."""

    device: str  # "cpu" or "cuda": what the speech actors ran on
    speech_x_per_unit: float  # audio seconds processed per second of one CPU core ("cpu") or one GPU ("cuda")
    scoring_x_per_core: float  # audio seconds attributed and scored per second of one CPU core
    models: str  # the weights measured (sizes matter more than values)
    hardware: str  # the machine measured
    source: str  # the command or reports that produced it
    measured_at: str = field(default_factory=lambda: f"{datetime.now(UTC):%Y-%m-%d}")  # date, UTC

    @property
    def unit(self) -> str:
        return "GPU" if self.device == "cuda" else "CPU core"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"{self.device}: speech {self.speech_x_per_unit:.3f} audio s per {self.unit}-second, language "
            f"{self.scoring_x_per_core:.1f} per core-second ({self.models}; {self.hardware}; measured "
            f"{self.measured_at} by {self.source})"
        )


@dataclass(frozen=True)
class NodePlan:
    """What a night needs on one kind of speech hardware."""

    measurement: Measurement  # the throughput it rests on
    audio_hours: float  # footage per night
    window_hours: float  # hours the batch may run
    headroom: float  # multiplier for retries, peaks and slow nights
    speech_units: float  # CPU cores or GPUs for speech
    speech_nodes: int  # nodes holding them
    language_cores: float  # CPU cores for attribution and scoring
    language_nodes: int  # CPU nodes for them (0 when they fit beside speech on CPU nodes)


def measurement_from_report(report: dict[str, Any], source: str, hardware: str = "") -> Measurement:
    """A measurement from one run report (``STORE/runs/<id>.json``)."""
    return measurements_from_reports([report], source, hardware)[0]


def measurements_from_reports(reports: list[dict[str, Any]], source: str, hardware: str = "") -> list[Measurement]:
    """One measurement per device kind over run reports that processed audio and say what their actors had."""
    totals: dict[str, dict[str, float]] = {}
    models: dict[str, str] = {}
    for report in reports:
        resources, stages = report.get("resources") or {}, report.get("stage_s") or {}
        audio_s = float(report.get("audio_hours", 0.0)) * 3600
        if not resources or audio_s <= 0 or report.get("kind") == "rescore":
            continue
        device = resources["speech_device"]
        speech_units = (
            resources["gpus_per_speech_worker"] if device == "cuda" else max(1.0, resources["cpus_per_speech_worker"])
        )
        total = totals.setdefault(device, {"audio": 0.0, "speech": 0.0, "scoring": 0.0})
        total["audio"] += audio_s
        total["speech"] += sum(stages.get(name, 0.0) for name in SPEECH_STAGES) * speech_units
        total["scoring"] += stages.get(SCORING_STAGE, 0.0) * max(1.0, resources["cpus_per_scoring_worker"])
        whisper, diarization = (Path(str(resources.get(key))).name for key in ("whisper", "diarization"))
        models[device] = f"whisper {whisper}, diarization {diarization}"
    return [
        Measurement(
            device=device,
            speech_x_per_unit=total["audio"] / total["speech"],
            scoring_x_per_core=total["audio"] / total["scoring"] if total["scoring"] > 0 else math.inf,
            models=models[device],
            hardware=hardware or "as recorded",
            source=source,
        )
        for device, total in sorted(totals.items())
        if total["speech"] > 0
    ]


def load_measurements(path: Path = BENCHMARK_MEASUREMENTS) -> list[Measurement]:
    """The benchmark's measurements (``benchmarks/capacity.json``)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python benchmarks/capacity.py` (and on a GPU node)")
    return [Measurement(**entry) for entry in json.loads(path.read_text())["measurements"]]


def save_measurement(measurement: Measurement, path: Path = BENCHMARK_MEASUREMENTS) -> None:
    """Keep ``measurement`` in ``path``, replacing the one of the same device kind (the newest wins)."""
    kept = [m for m in load_measurements(path) if m.device != measurement.device] if path.is_file() else []
    path.write_text(json.dumps({"measurements": [m.as_dict() for m in [*kept, measurement]]}, indent=2) + "\n")


def store_measurements(store: Path) -> list[Measurement]:
    """Measurements from a store's own run reports: this department's machines and footage."""
    paths = sorted((store / "runs").glob("*.json"))
    reports = [json.loads(path.read_text()) for path in paths]
    return measurements_from_reports(reports, source=f"{store / 'runs'} ({len(paths)} reports)")


def plan_nodes(
    audio_hours: float,
    measurement: Measurement,
    window_hours: float = 8.0,
    headroom: float = 1.25,
    cores_per_node: int = 32,
    gpus_per_node: int = 1,
) -> NodePlan:
    """Nodes to process ``audio_hours`` of footage within ``window_hours`` on ``measurement``'s hardware."""
    if audio_hours < 0 or window_hours <= 0 or headroom < 1:
        raise ValueError("hours must be positive and headroom at least 1")
    audio_per_second = audio_hours / window_hours  # audio seconds that must be processed per wall second
    speech_units = audio_per_second / measurement.speech_x_per_unit * headroom
    language_cores = audio_per_second / measurement.scoring_x_per_core * headroom
    if measurement.device == "cuda":
        speech_nodes = math.ceil(speech_units / gpus_per_node)
        language_nodes = math.ceil(language_cores / cores_per_node)
    else:  # speech and language share the CPU nodes
        speech_nodes = math.ceil((speech_units + language_cores) / cores_per_node)
        language_nodes = 0
    return NodePlan(
        measurement=measurement,
        audio_hours=audio_hours,
        window_hours=window_hours,
        headroom=headroom,
        speech_units=speech_units,
        speech_nodes=speech_nodes,
        language_cores=language_cores,
        language_nodes=language_nodes,
    )
