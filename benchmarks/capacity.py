"""Throughput per CPU core (or per GPU) of `bwc run` on BWC-like footage: the numbers `bwc plan` turns into nodes.

The footage is the bundled demo encounters (espeak-ng voices, road noise, a dispatch radio burst) with long stretches
of road noise before and after, as body cameras record them (mostly not speech). The models are random weights at
the real sizes (whisper at --whisper-size, pyannote's PyanNet and WeSpeakerResNet34), so every forward pass costs
what the real one costs. Random whisper weights never stop at end-of-text: --sample-len caps tokens per 30 s window
(96, about what real speech yields per window) so decoding is not overstated. Real weights can be given instead
with --models.

Each speech actor gets one CPU (or --gpus-per-worker of a GPU) and one torch thread; throughput per unit is taken
from the actors' busy seconds per audio second, so Ray start-up and model loading are not in it (they are in the
wall time, reported beside it).

    python benchmarks/capacity.py                         # CPU, whisper small; appends RESULTS.md, capacity.json
    python benchmarks/capacity.py --gpus-per-worker 0.5 --whisper-size large-v3 --workers 2   # on a GPU node
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

from bwc.audio import SAMPLE_RATE, read_pcm, write_audio
from bwc.capacity import CAPACITY_FILE, Measurement, measurement_from_report, save_measurement
from bwc.demo import make_demo_footage, road_noise

RESULTS = Path(__file__).parent / "RESULTS.md"


def bwc_like_footage(folder: Path, files: int, pad_s: float, seed: int = 11) -> tuple[list[Path], float]:
    """Demo encounters padded with road noise on both sides; returns the files and their seconds of audio."""
    demo = make_demo_footage(folder / "demo", seed=seed)
    rng = np.random.default_rng(seed)
    paths, total_s = [], 0.0
    for index in range(files):
        scene = read_pcm(demo.files[index % len(demo.files)])
        audio = np.concatenate([road_noise(pad_s, rng), scene, road_noise(pad_s, rng)])
        path = folder / "intake" / f"BWC{index:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, audio, SAMPLE_RATE, "-c:a", "pcm_s16le")
        paths.append(path)
        total_s += len(audio) / SAMPLE_RATE
    return paths, total_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4, help="recordings (default 4)")
    parser.add_argument("--pad-s", type=float, default=60.0, help="road noise before and after each scene, seconds")
    parser.add_argument("--whisper-size", default="small", help="random whisper size (default small: bwc's default)")
    parser.add_argument("--sample-len", type=int, default=96, help="whisper tokens per 30 s window")
    parser.add_argument("--models", type=Path, help="a models directory with real weights instead of random ones")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="speech actors")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPU share per speech actor (0: CPU)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / CAPACITY_FILE)
    args = parser.parse_args()
    command = "python benchmarks/capacity.py " + " ".join(sys.argv[1:])

    with tempfile.TemporaryDirectory(prefix="bwc-capacity-") as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        paths, audio_s = bwc_like_footage(folder, args.files, args.pad_s)
        print(f"footage: {len(paths)} files, {audio_s / 60:.1f} min ({time.perf_counter() - started:.0f} s)")
        models = args.models
        if models is None:
            models = folder / "models"
            subprocess.run(
                [sys.executable, "-m", "bwc.cli", "models", "make-tiny", str(models), "--whisper-size",
                 args.whisper_size, "--full-size-pyannote", "--sample-len", str(args.sample_len)],
                check=True, capture_output=True,
            )  # fmt: skip
        config = folder / "bwc.yaml"
        run_settings = {
            "speech_workers": args.workers,
            "cpus_per_speech_worker": 1,
            "gpus_per_speech_worker": args.gpus_per_worker,
            "scoring_workers": 1,
            "cpus_per_scoring_worker": 0 if args.gpus_per_worker == 0 else 1,  # on CPU it would take an actor's core
            "settle_s": 0,
        }
        config.write_text(yaml.safe_dump({"run": run_settings}))
        store = folder / "store"
        completed = subprocess.run(
            [sys.executable, "-m", "bwc.cli", "run", str(folder / "intake"), "--store", str(store), "--models",
             str(models), "--config", str(config)],
            capture_output=True, text=True,
        )  # fmt: skip
        if completed.returncode != 0:
            sys.exit(f"bwc run failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
        report = json.loads(next((store / "runs").glob("*.json")).read_text())

    measurement = measurement_from_report(report, source=command, hardware=_hardware(args.gpus_per_worker))
    save_measurement(measurement, args.out)
    _append_results(measurement, report, audio_s, args)
    print(measurement.describe())


def _hardware(gpus_per_worker: float) -> str:
    if gpus_per_worker > 0:
        import torch

        return f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} cores"
    name = platform.processor() or platform.machine()
    try:  # the CPU's model name, where Linux gives it
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def _append_results(measurement: Measurement, report: dict, audio_s: float, args: argparse.Namespace) -> None:
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in report["stage_s"].items())
    speech_share = report["speech_hours"] * 3600 / audio_s if audio_s else 0.0
    unit = "GPU" if measurement.device == "cuda" else "CPU core"
    text = (
        f"\n## Capacity: `bwc run` throughput per {unit} — {datetime.now(UTC):%Y-%m-%d}\n\n"
        f"`{measurement.source}` on {measurement.hardware}. {report['processed']} BWC-like recordings, "
        f"{audio_s / 60:.1f} min of audio, {100 * (1 - speech_share):.0f}% not speech. Models: "
        f"{measurement.models}. {args.workers} speech actors, one torch thread each.\n\n"
        f"| measure | value |\n|---|---|\n"
        f"| speech (decode, VAD, whisper, pyannote, assembly): audio seconds per {unit}-second | "
        f"{measurement.speech_x_per_unit:.3f} |\n"
        f"| language (attribution, scoring): audio seconds per CPU-core-second | "
        f"{measurement.scoring_x_per_core:.1f} |\n"
        f"| whole run, wall clock (Ray start and model loading included) | {report['x_realtime']:.3f}x realtime |\n"
        f"| actor seconds by stage | {stages} |\n\n"
        "Random weights: whisper decodes to the token cap in every speech window and pyannote works as hard as on "
        "real speech, so these are what the real sizes cost, not what their transcripts would be.\n"
    )
    with open(RESULTS, "a", encoding="utf-8") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
