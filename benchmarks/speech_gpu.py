"""`benchmarks/speech.py` on a GPU: the speech stage against whisper + pyannote file by file, at large-v3 dimensions.

A lent GPU node has no espeak-ng, ffmpeg or Ray, and no network. So the BWC-like and speech-dense recordings of
`benchmarks/speech.py` are generated here and carried over as 16 kHz arrays; on the GPU node both sides run in one
process on the same arrays with the same random weights at real sizes (whisper --whisper-size in fp16, PyanNet +
WeSpeakerResNet34), identically configured: language en, temperature 0, word timestamps, condition_on_previous_text
off, the same sample_len.

- baseline: `whisper.transcribe` then the pyannote pipeline (in-memory waveform), one file after another.
- bwc: the speech stage `bwc run`'s speech actors run (`SpeechStage.process_arrays`: silero-vad, packed windows of
  all the set's recordings batched through whisper, pyannote on speech only, assembly), at each --batch size.

Both sides are warmed up first (CUDA kernels, allocators). Decoding (ffmpeg, CPU, overlapped with the GPU in `bwc
run`) is in neither figure. Audio hours per GPU hour is the set's audio over the wall time of the call.

    python benchmarks/speech_gpu.py export DIR                  # here: DIR/*.npz
    python benchmarks/speech_gpu.py measure DIR --out m.json                 # on the GPU node
    python benchmarks/speech_gpu.py record m.json               # here: RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "RESULTS.md"
CAPACITY = Path(__file__).parent / "capacity.json"
SAMPLE_RATE = 16_000
SEED = 2026
BWC_LIKE_FILES, BWC_LIKE_S = 4, (240.0, 300.0)
DENSE_FILES, DENSE_S = 2, 120.0
WARM_UP_S = 60.0  # audio of the first recording each side runs once before timing
DIARIZATION_BATCHES = {"segmentation_batch_size": 32, "embedding_batch_size": 48}  # as cluster/bwc.yaml


def export(directory: Path) -> None:
    """The two sets as int16 arrays (zip-compressed: the near-silence shrinks), with each recording's planted speech."""
    from benchmarks.speech import SEED as SPEECH_SEED
    from benchmarks.speech import bwc_like_recording, dense_recording

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SPEECH_SEED)
    lengths = rng.uniform(*BWC_LIKE_S, size=BWC_LIKE_FILES)
    sets = {
        "bwc-like": [bwc_like_recording(float(s), SPEECH_SEED + 100 * i) for i, s in enumerate(lengths)],
        "speech-dense": [dense_recording(DENSE_S, SPEECH_SEED + 10_000 + 100 * i) for i in range(DENSE_FILES)],
    }
    for name, recordings in sets.items():
        keys = [f"{name}-{i:02d}" for i in range(len(recordings))]
        arrays = {key: _int16(audio) for key, (audio, _) in zip(keys, recordings, strict=True)}
        np.savez_compressed(directory / f"{name}.npz", **arrays)
        speech = {key: speech_s for key, (_, speech_s) in zip(keys, recordings, strict=True)}
        (directory / f"{name}.json").write_text(json.dumps({"speech_s": speech}))
        audio_s = sum(len(audio) for audio, _ in recordings) / SAMPLE_RATE
        share = sum(speech.values()) / audio_s
        print(f"{name}: {len(recordings)} recordings, {audio_s / 60:.1f} min, {100 * share:.0f}% speech")


def _int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(audio * 32768.0, -32768, 32767).astype(np.int16)


def load_set(directory: Path, name: str) -> list[tuple[str, np.ndarray, float]]:
    """``(key, 16 kHz float32 audio, planted speech seconds)`` per recording of an exported set."""
    speech = json.loads((directory / f"{name}.json").read_text())["speech_s"]
    with np.load(directory / f"{name}.npz") as arrays:
        return [(key, arrays[key].astype(np.float32) / 32768.0, speech[key]) for key in sorted(arrays.files)]


def measure(directory: Path, whisper_size: str, sample_len: int, batches: list[int], baseline_files: int,
            device: str, out: Path) -> None:  # fmt: skip
    """The stage at each batch size on the first ``baseline_files`` recordings of each set and on all of them, then
    the baseline on those first ones; the JSON is rewritten after every run (a time limit loses only the last)."""
    import torch

    from models.tiny import make_tiny_models

    models = Path(tempfile.mkdtemp(prefix="bwc-gpu-models-"))
    started = time.perf_counter()
    make_tiny_models(models, whisper_size, real_size_pyannote=True, sample_len=sample_len)
    print(f"models made in {time.perf_counter() - started:.0f} s", flush=True)
    sets = {name: load_set(directory, name) for name in ("bwc-like", "speech-dense")}
    subsets = {name: recordings[:baseline_files] for name, recordings in sets.items()}
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "models": f"random weights at real sizes: whisper {whisper_size} ({'fp16' if device == 'cuda' else 'fp32'}, "
        f"sample_len {sample_len}), PyanNet + WeSpeakerResNet34",
        "runs": [],
    }

    def keep(runs: list[dict[str, Any]]) -> None:
        result["runs"] += runs
        out.write_text(json.dumps(result, indent=2) + "\n")
        for run in runs:
            print(json.dumps(run), flush=True)

    for batch in batches:
        keep(stage_runs(models, [subsets, sets], sample_len, batch, device))
    keep(baseline_runs(models, subsets, sample_len, device))
    print(f"written {out}")


def _synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _describe(name: str, recordings: list[tuple[str, np.ndarray, float]]) -> dict[str, Any]:
    return {
        "set": name,
        "files": len(recordings),
        "audio_s": sum(len(audio) for _, audio, _ in recordings) / SAMPLE_RATE,
        "speech_s": sum(speech for _, _, speech in recordings),
    }


def baseline_runs(models: Path, sets: dict, sample_len: int, device: str) -> list[dict[str, Any]]:
    """What a user runs today, per file: whisper.transcribe, then the pyannote pipeline."""
    import torch
    import whisper
    import yaml
    from pyannote.audio import Pipeline

    described = yaml.safe_load((models / "models.yaml").read_text())
    model = whisper.load_model(str(models / described["whisper"]["model"]), device=device)
    pipeline = Pipeline.from_pretrained(models / described["diarization"]["pipeline"])
    pipeline.to(torch.device(device))

    def one(audio: np.ndarray) -> tuple[float, float]:
        clock = time.perf_counter()
        whisper.transcribe(
            model, audio, language="en", temperature=0.0, word_timestamps=True, condition_on_previous_text=False,
            sample_len=sample_len, fp16=device == "cuda", verbose=None,
        )  # fmt: skip
        _synchronize(device)
        asr_s = time.perf_counter() - clock
        clock = time.perf_counter()
        pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": SAMPLE_RATE})
        _synchronize(device)
        return asr_s, time.perf_counter() - clock

    one(next(iter(sets.values()))[0][1][: int(WARM_UP_S * SAMPLE_RATE)])
    _free(device)
    runs = []
    for name, recordings in sets.items():
        asr_s = diarization_s = 0.0
        for _, audio, _ in recordings:
            asr, diarization = one(audio)
            asr_s, diarization_s = asr_s + asr, diarization_s + diarization
        runs.append({"side": "baseline", **_describe(name, recordings), "wall_s": asr_s + diarization_s,
                     "asr_s": asr_s, "diarization_s": diarization_s, **_peak(device)})  # fmt: skip
    return runs


def stage_runs(models: Path, groups: list[dict], sample_len: int, batch: int, device: str) -> list[dict[str, Any]]:
    """The speech stage on each set of each group in one call, whisper batching ``batch`` windows."""
    from bwc.config import load_config
    from bwc.records import AudioInfo, Recording
    from models.locate import ResolvedModels
    from pipelines.speech import SpeechStage

    overrides = {
        "whisper": {"language": "en", "temperature": 0.0, "sample_len": sample_len,
                    "fp16": True, "batch_size": batch},
        "diarization": DIARIZATION_BATCHES,
    }  # fmt: skip
    config = load_config(models, overrides=overrides)
    stage = SpeechStage(config, ResolvedModels.resolve(config), device=device)

    def recording(key: str, audio: np.ndarray) -> Recording:
        info = AudioInfo(duration_s=len(audio) / SAMPLE_RATE, sample_rate=SAMPLE_RATE, channels=1, format="npy",
                         codec="f32", has_video=False)  # fmt: skip
        return Recording(recording_id=key, path=key, sha256=key, size_bytes=audio.nbytes, audio=info)

    key, first, _ = next(iter(groups[0].values()))[0]
    warm = first[: int(WARM_UP_S * SAMPLE_RATE)]
    stage.process(recording(key, warm), warm)
    _free(device)
    runs = []
    for sets in groups:
        for name, recordings in sets.items():
            forward = stage.clock.seconds
            clock = time.perf_counter()
            outcomes = stage.process_arrays([(recording(key, audio), audio) for key, audio, _ in recordings])
            _synchronize(device)
            wall_s = time.perf_counter() - clock
            failed = [repr(outcome) for outcome in outcomes if isinstance(outcome, Exception)]
            if failed:
                raise RuntimeError(f"the stage failed on {failed}")
            stages: dict[str, float] = {}
            for outcome in outcomes:
                for stage_name, seconds in asdict(outcome.timings).items():
                    stages[stage_name] = stages.get(stage_name, 0.0) + seconds
            runs.append({"side": "bwc", "batch": batch, **_describe(name, recordings), "wall_s": wall_s,
                         "forward_share": (stage.clock.seconds - forward) / wall_s,
                         "words": sum(len(outcome.words) for outcome in outcomes), "stage_s": stages,
                         **_peak(device)})  # fmt: skip
            _free(device)
    del stage
    _free(device)
    return runs


def throughput(directory: Path, whisper_size: str, sample_len: int, batch: int, copies: int, per_call: int,
               shard: str, device: str, out: Path) -> None:  # fmt: skip
    """Sustained speech-stage throughput as a speech actor sees it: ``copies`` of the BWC-like set (each copy
    rotated, so windows fall differently), this process's ``shard`` of them, ``per_call`` recordings per call
    (`run.recordings_per_speech_call`). Processes sharing a GPU (`run.gpus_per_speech_worker: 0.5`) each take a
    shard at the same time; :func:`record_throughput` adds them up."""
    import torch

    from models.tiny import make_tiny_models

    models = Path(tempfile.mkdtemp(prefix="bwc-gpu-models-"))
    make_tiny_models(models, whisper_size, real_size_pyannote=True, sample_len=sample_len)
    base = load_set(directory, "bwc-like")
    recordings = [
        (f"{key}-copy{copy}", np.roll(audio, copy * len(audio) // copies), speech)
        for copy in range(copies)
        for key, audio, speech in base
    ]
    index, count = (int(part) for part in shard.split("/"))
    mine = recordings[index::count]
    calls = [mine[first : first + per_call] for first in range(0, len(mine), per_call)]
    runs = stage_runs(models, [{f"call {n}": call} for n, call in enumerate(calls)], sample_len, batch, device)
    result = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "models": f"random weights at real sizes: whisper {whisper_size} (fp16, sample_len {sample_len}), "
        "PyanNet + WeSpeakerResNet34",
        "batch": batch,
        "per_call": per_call,
        "shard": shard,
        "runs": runs,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    audio_s, wall_s = sum(run["audio_s"] for run in runs), sum(run["wall_s"] for run in runs)
    print(f"shard {shard}: {audio_s / 60:.1f} min of audio in {wall_s:.1f} s ({audio_s / wall_s:.0f}x)", flush=True)


def record_throughput(paths: list[Path], command: str) -> None:
    """Append the shards' GPU throughput (all their audio over the longest wall time) to RESULTS.md."""
    from datetime import UTC, datetime

    from benchmarks.speech import CAVEAT

    shards = [json.loads(path.read_text()) for path in paths]
    audio_s = sum(run["audio_s"] for shard in shards for run in shard["runs"])
    speech_s = sum(run["speech_s"] for shard in shards for run in shard["runs"])
    walls = [sum(run["wall_s"] for run in shard["runs"]) for shard in shards]
    stages: dict[str, float] = {}
    for shard in shards:
        for run in shard["runs"]:
            for name, seconds in run["stage_s"].items():
                stages[name] = stages.get(name, 0.0) + seconds
    first = shards[0]
    sharing = f"{len(shards)} processes sharing it" if len(shards) > 1 else "one process"
    text = (
        f"\n## Speech on a GPU: sustained speech-stage throughput — {datetime.now(UTC):%Y-%m-%d}\n\n"
        f"`{command}` on {first['device']}, {sharing}. Models: {first['models']}. Whisper batch {first['batch']}, "
        f"{first['per_call']} recordings per call (`run.recordings_per_speech_call`), VAD in the scanning thread "
        "beside whisper as in `bwc run`.\n\n"
        "| audio | planted speech | wall s per process | audio hours per GPU hour |\n|---|---|---|---|\n"
        f"| {audio_s / 3600:.2f} h | {100 * speech_s / audio_s:.0f}% | {', '.join(f'{w:.1f}' for w in walls)} | "
        f"**{audio_s / max(walls):.0f}** |\n\n"
        "Stage seconds, all processes: "
        + ", ".join(f"{name} {value:.1f}" for name, value in stages.items())
        + f"; peak GPU memory per process {max(r.get('peak_gpu_gib', 0) for s in shards for r in s['runs']):.1f} GiB."
        + f"\n\n{CAVEAT}\n"
    )
    with open(RESULTS, "a", encoding="utf-8") as handle:
        handle.write(text)
    print(text)
    keep_for_planning(audio_s / max(walls), first, sharing, command)


def keep_for_planning(speech_x: float, shard: dict[str, Any], sharing: str, command: str) -> None:
    """The GPU figure `bwc plan` sizes clusters with (benchmarks/capacity.json); language throughput per core is
    the CPU measurement's."""
    from bwc.capacity import Measurement, load_measurements, save_measurement

    cpu = [m for m in load_measurements(CAPACITY) if m.device == "cpu"] if CAPACITY.exists() else []
    save_measurement(
        Measurement(
            device="cuda",
            speech_x_per_unit=speech_x,
            scoring_x_per_core=cpu[0].scoring_x_per_core if cpu else float("inf"),
            models=shard["models"],
            hardware=f"{shard['device']}, {sharing}",
            source=command,
        ),
        CAPACITY,
    )


def _peak(device: str) -> dict[str, float]:
    import torch

    return {"peak_gpu_gib": torch.cuda.max_memory_allocated() / 1024**3} if device == "cuda" else {}


def _free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def record(path: Path, command: str) -> None:
    """Append the measurement to RESULTS.md."""
    from datetime import UTC, datetime

    from benchmarks.speech import CAVEAT

    result = json.loads(path.read_text())
    runs = result["runs"]
    baselines = {(run["set"], run["files"]): run for run in runs if run["side"] == "baseline"}
    rows = [
        "| set | files | audio min | planted speech | side | whisper batch | wall s | audio h per GPU h | "
        "ratio to baseline | forward share of wall | peak GPU GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines = []
    for run in sorted(runs, key=lambda r: (r["set"], r["files"], r["side"] != "baseline", r.get("batch", 0))):
        base = baselines.get((run["set"], run["files"]))
        audio_x = run["audio_s"] / run["wall_s"]
        ratio = "–" if base is None else f"**{audio_x / (base['audio_s'] / base['wall_s']):.1f}**"
        forward = f"{100 * run['forward_share']:.0f}%" if "forward_share" in run else "–"
        rows.append(
            f"| {run['set']} | {run['files']} | {run['audio_s'] / 60:.1f} | "
            f"{100 * run['speech_s'] / run['audio_s']:.0f}% | {run['side']} | {run.get('batch', '–')} | "
            f"{run['wall_s']:.1f} | {audio_x:.0f} | {ratio if run['side'] == 'bwc' else '1.0'} | {forward} | "
            f"{run.get('peak_gpu_gib', 0):.1f} |"
        )
        if run["side"] == "baseline":
            lines.append(f"- {run['set']}, {run['files']} file(s), baseline: whisper {run['asr_s']:.1f} s, "
                         f"pyannote {run['diarization_s']:.1f} s")  # fmt: skip
        else:
            stages = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in run["stage_s"].items())
            lines.append(f"- {run['set']}, {run['files']} file(s), bwc batch {run['batch']}: {run['words']} words; "
                         f"stage seconds {stages}")  # fmt: skip
    text = (
        f"\n## Speech on a GPU: the speech stage against whisper + pyannote file by file — {datetime.now(UTC):%Y-%m-%d}"
        f"\n\n`{command}` on {result['device']}, one process. Models: {result['models']}, the same checkpoints on "
        "both sides, language en, temperature 0, word timestamps, condition_on_previous_text off. Baseline: "
        "whisper.transcribe then the pyannote pipeline per file. bwc: the speech stage of `bwc run`'s speech actors "
        "(silero-vad, the packed windows of all the call's recordings batched through whisper, pyannote on speech "
        f"only with segmentation/embedding batches {DIARIZATION_BATCHES['segmentation_batch_size']}/"
        f"{DIARIZATION_BATCHES['embedding_batch_size']}, assembly), a set's recordings in one call. Both warmed up "
        "first; decoding (ffmpeg, CPU, overlapped with the GPU in `bwc run`) is in neither. Audio hours per GPU hour "
        "= audio seconds / wall seconds on the one GPU; the ratio compares the same files.\n\n"
        + "\n".join(rows)
        + "\n\n"
        + "\n".join(lines)
        + f"\n\n{CAVEAT}\n"
    )
    with open(RESULTS, "a", encoding="utf-8") as handle:
        handle.write(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    make = verbs.add_parser("export")
    make.add_argument("directory", type=Path)
    run = verbs.add_parser("measure")
    run.add_argument("directory", type=Path)
    run.add_argument("--whisper-size", default="large-v3")
    run.add_argument("--sample-len", type=int, default=96)
    run.add_argument("--batch", type=int, nargs="+", default=[16, 32], help="whisper windows per batch to try")
    run.add_argument("--baseline-files", type=int, default=1, help="recordings per set the baseline runs on")
    run.add_argument("--device", default="cuda")
    run.add_argument("--out", type=Path, default=Path("speech-gpu.json"))
    sustained = verbs.add_parser("throughput")
    sustained.add_argument("directory", type=Path)
    sustained.add_argument("--whisper-size", default="large-v3")
    sustained.add_argument("--sample-len", type=int, default=96)
    sustained.add_argument("--batch", type=int, default=32)
    sustained.add_argument("--copies", type=int, default=4)
    sustained.add_argument("--per-call", type=int, default=8)
    sustained.add_argument("--shard", default="0/1", help="I/N: this process takes every Nth recording from the Ith")
    sustained.add_argument("--device", default="cuda")
    sustained.add_argument("--out", type=Path, default=Path("speech-gpu-throughput.json"))
    kept = verbs.add_parser("record-throughput")
    kept.add_argument("measurements", type=Path, nargs="+", help="one file, or the shards of one GPU")
    kept.add_argument("--command", default="python benchmarks/speech_gpu.py throughput DIR")
    keep = verbs.add_parser("record")
    keep.add_argument("measurement", type=Path)
    keep.add_argument("--command", default="python benchmarks/speech_gpu.py measure DIR --whisper-size large-v3")
    args = parser.parse_args()
    if args.verb == "export":
        export(args.directory)
    elif args.verb == "measure":
        measure(
            args.directory, args.whisper_size, args.sample_len, args.batch, args.baseline_files, args.device, args.out
        )
    elif args.verb == "throughput":
        throughput(args.directory, args.whisper_size, args.sample_len, args.batch, args.copies, args.per_call,
                   args.shard, args.device, args.out)  # fmt: skip
    elif args.verb == "record-throughput":
        record_throughput(args.measurements, args.command)
    else:
        record(args.measurement, args.command)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
