"""Speech throughput per GPU, for `bwc plan`: the speech stage (VAD, whisper, pyannote, assembly) on one GPU.

A GPU node often has no espeak-ng or ffmpeg, and a lent one no network: the footage is made here, decoded to 16 kHz
float32 arrays (the same BWC-like recordings as benchmarks/capacity.py), and carried over. On the GPU node the stage
runs with random weights at the real sizes (whisper --whisper-size in fp16, PyanNet and WeSpeakerResNet34), one
recording after another in one process on the whole GPU: a conservative figure, since two actors sharing a GPU
(`run.gpus_per_speech_worker: 0.5`) keep it busier. Decoding is CPU work and is not in the figure.

    python benchmarks/capacity_gpu.py export DIR                     # here: DIR/*.npy
    python benchmarks/capacity_gpu.py measure DIR --out m.json       # on the GPU node
    python benchmarks/capacity_gpu.py record m.json                  # here: capacity.json and RESULTS.md
    # two processes sharing the GPU (run.gpus_per_speech_worker: 0.5): --shard 0/2 and --shard 1/2 at once, then
    python benchmarks/capacity_gpu.py record m0.json m1.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bwc.records import Recording

RESULTS = Path(__file__).parent / "RESULTS.md"
CAPACITY = Path(__file__).parent / "capacity.json"


def export(directory: Path, files: int, pad_s: float) -> None:
    from benchmarks.capacity import bwc_like_footage
    from bwc.audio import read_pcm

    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        paths, audio_s = bwc_like_footage(Path(scratch), files, pad_s)
        for path in paths:
            pcm = np.clip(read_pcm(path) * 32768.0, -32768, 32767).astype(np.int16)  # half the bytes to carry
            np.save(directory / f"{path.stem}.npy", pcm)
    print(f"{len(paths)} recordings, {audio_s / 60:.1f} min, in {directory}")


def measure(directory: Path, whisper_size: str, sample_len: int, out: Path, shard: str = "0/1") -> None:
    import torch

    from bwc.config import load_config
    from models.locate import ResolvedModels
    from models.tiny import make_tiny_models
    from pipelines.speech import SpeechStage

    models = Path(tempfile.mkdtemp(prefix="bwc-gpu-models-"))
    make_tiny_models(models, whisper_size, real_size_pyannote=True, sample_len=sample_len)
    config = load_config(models)
    stage = SpeechStage(config, ResolvedModels.resolve(config), device="cuda")
    index, count = (int(part) for part in shard.split("/"))
    arrays = sorted(directory.glob("*.npy"))[index::count]  # processes sharing one GPU each take a shard
    warm = _load(arrays[0])[: 16000 * 60]  # first call compiles kernels and sizes allocators
    stage.process(_recording(arrays[0], len(warm)), warm)
    torch.cuda.synchronize()
    audio_s = busy_s = 0.0
    stage_s: dict[str, float] = {}
    for path in arrays:
        audio = _load(path)
        started = time.perf_counter()
        result = stage.process(_recording(path, len(audio)), audio)
        torch.cuda.synchronize()
        busy_s += time.perf_counter() - started
        audio_s += len(audio) / 16000
        for name in ("vad_s", "asr_s", "diarization_s", "assembly_s"):
            stage_s[name] = stage_s.get(name, 0.0) + getattr(result.timings, name)
    measurement = {
        "device": "cuda",
        "speech_x_per_unit": audio_s / busy_s,
        "models": f"random weights at real sizes: whisper {whisper_size} (fp16, sample_len {sample_len}), "
        "PyanNet + WeSpeakerResNet34",
        "hardware": f"{torch.cuda.get_device_name(0)}, one process on the whole GPU",
        "audio_s": audio_s,
        "busy_s": busy_s,
        "stage_s": stage_s,
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 1024**3,
    }
    out.write_text(json.dumps(measurement, indent=2) + "\n")
    print(json.dumps(measurement, indent=2))


def _load(path: Path) -> np.ndarray:
    return np.load(path).astype(np.float32) / 32768.0


def _recording(path: Path, samples: int) -> Recording:
    """A stand-in catalog entry for audio carried as an array (the stage reads only ids and duration from it)."""
    from bwc.records import AudioInfo, Recording

    info = AudioInfo(duration_s=samples / 16000, sample_rate=16000, channels=1, format="npy", codec="f32",
                      has_video=False)  # fmt: skip
    return Recording(recording_id=path.stem, path=str(path), sha256=path.stem, size_bytes=samples * 4, audio=info)


def record(paths: list[Path], command: str) -> None:
    """Keep the GPU measurement beside the CPU one; language throughput per core comes from the CPU measurement.

    Several files are shards measured at the same time on one GPU: the GPU's throughput is all their audio over the
    longest of their busy times.
    """
    from bwc.capacity import Measurement, load_measurements, save_measurement

    shards = [json.loads(path.read_text()) for path in paths]
    audio_s = sum(shard["audio_s"] for shard in shards)
    busy_s = max(shard["busy_s"] for shard in shards)
    stage_s: dict[str, float] = {}
    for shard in shards:
        for name, seconds in shard["stage_s"].items():
            stage_s[name] = stage_s.get(name, 0.0) + seconds
    cpu = [m for m in load_measurements(CAPACITY) if m.device == "cpu"] if CAPACITY.exists() else []
    sharing = f", {len(shards)} processes sharing it" if len(shards) > 1 else ""
    gpu = Measurement(
        device="cuda",
        speech_x_per_unit=audio_s / busy_s,
        scoring_x_per_core=cpu[0].scoring_x_per_core if cpu else float("inf"),
        models=shards[0]["models"],
        hardware=shards[0]["hardware"].split(",")[0] + sharing,
        source=command,
    )
    save_measurement(gpu, CAPACITY)
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in stage_s.items())
    busy = ", ".join(f"{shard['busy_s']:.1f}" for shard in shards)
    peak = max(shard["peak_gpu_memory_gib"] for shard in shards)
    with open(RESULTS, "a", encoding="utf-8") as handle:
        handle.write(
            f"\n## Capacity: speech throughput per GPU — {gpu.measured_at}\n\n"
            f"`{command}` on {gpu.hardware}. {audio_s / 60:.1f} min of BWC-like audio (the recordings of "
            f"`benchmarks/capacity.py`), {gpu.models}.\n\n"
            f"| measure | value |\n|---|---|\n"
            f"| speech (VAD, whisper, pyannote, assembly): audio seconds per GPU-second | "
            f"{gpu.speech_x_per_unit:.2f} |\n"
            f"| busy seconds per process | {busy} |\n"
            f"| stage seconds, all processes | {stages} |\n"
            f"| peak GPU memory per process | {peak:.1f} GiB |\n\n"
            "Decoding (ffmpeg, CPU) is not included; language scoring per core is the CPU measurement's. Random "
            "whisper weights decode to the token cap in every speech window, and whisper runs one window at a time "
            "(unbatched), so ASR is almost all of the time.\n"
        )
    print(gpu.describe())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    make = verbs.add_parser("export")
    make.add_argument("directory", type=Path)
    make.add_argument("--files", type=int, default=4)
    make.add_argument("--pad-s", type=float, default=60.0)
    run = verbs.add_parser("measure")
    run.add_argument("directory", type=Path)
    run.add_argument("--whisper-size", default="large-v3")
    run.add_argument("--sample-len", type=int, default=96)
    run.add_argument("--out", type=Path, default=Path("gpu-measurement.json"))
    run.add_argument("--shard", default="0/1", help="I/N: this process takes every Nth recording from the Ith")
    keep = verbs.add_parser("record")
    keep.add_argument("measurements", type=Path, nargs="+", help="one file, or the shards of one GPU")
    keep.add_argument("--command", default="python benchmarks/capacity_gpu.py measure DIR --whisper-size large-v3")
    args = parser.parse_args()
    if args.verb == "export":
        export(args.directory, args.files, args.pad_s)
    elif args.verb == "measure":
        measure(args.directory, args.whisper_size, args.sample_len, args.out, args.shard)
    else:
        record(args.measurements, args.command)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
