"""Batched whisper: the same VAD-sized chunks through ``WhisperTranscriber.transcribe_chunks`` one at a time and in
batches, with the same weights, on a CPU or a GPU. One run, one file of chunks, a ratio.

Random weights at a real size (``--whisper-size``) cost what real weights cost, and decode to the token cap in every
chunk (``--sample-len``), so the figures are an upper bound on decoding work per chunk, not what real speech takes.
The chunks are noise: what whisper decodes does not matter here, only how long the same work takes.

    python benchmarks/asr_batch.py --whisper-size large-v3 --device cuda --batch 1 8 16 32 --out asr.json
    python benchmarks/asr_batch.py record asr.json          # appends a section to benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "RESULTS.md"
SAMPLE_RATE = 16_000


def measure(args: argparse.Namespace) -> dict[str, object]:
    import torch

    from bwc.config import WhisperConfig
    from models.asr import SpeechChunk, WhisperTranscriber
    from models.tiny import make_tiny_whisper

    checkpoint = Path(tempfile.mkdtemp(prefix="bwc-asr-")) / f"{args.whisper_size}-random.pt"
    make_tiny_whisper(checkpoint, size=args.whisper_size)
    config = WhisperConfig(model=str(checkpoint), language="en", temperature=0.0, sample_len=args.sample_len)
    asr = WhisperTranscriber(config, checkpoint, device=args.device)
    rng = np.random.default_rng(0)
    chunks = [
        SpeechChunk(
            key=f"r{index % 4}",
            start=float(index * 40),
            end=float(index * 40 + args.chunk_s),
            audio=(0.05 * rng.standard_normal(int(args.chunk_s * SAMPLE_RATE))).astype(np.float32),
        )
        for index in range(args.chunks)
    ]
    audio_s = args.chunks * args.chunk_s
    asr.transcribe_chunks(chunks[: max(args.batch)], batch_size=max(args.batch))  # warm-up: kernels, allocator
    runs, reference = [], None
    for batch_size in args.batch:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        words = asr.transcribe_chunks(chunks, batch_size=batch_size)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        texts = {key: [w.text for w in found] for key, found in words.items()}
        reference = reference or texts
        same = sum(texts.get(key) == value for key, value in reference.items()) / max(len(reference), 1)
        runs.append(
            {
                "batch_size": batch_size,
                "seconds": round(seconds, 2),
                "audio_s_per_s": round(audio_s / seconds, 2),
                "words": sum(len(found) for found in words.values()),
                "same_words_as_first": round(same, 3),
                "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                if args.device.startswith("cuda")
                else None,
            }
        )
        print(runs[-1], flush=True)
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"{platform.machine()} CPU"
    return {
        "command": "python benchmarks/asr_batch.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "device": device,
        "threads": torch.get_num_threads(),
        "whisper_size": args.whisper_size,
        "sample_len": args.sample_len,
        "fp16": args.device.startswith("cuda"),
        "chunks": args.chunks,
        "chunk_s": args.chunk_s,
        "runs": runs,
    }


def record(paths: list[Path]) -> None:
    for path in paths:
        m = json.loads(path.read_text())
        first = m["runs"][0]
        lines = [
            "",
            f"## Batched whisper over VAD chunks ({m['device']}) — {m['date']}",
            "",
            f"`{m['command']}`: {m['chunks']} chunks of {m['chunk_s']:g} s of noise (as VAD-cut speech would be), "
            f"whisper {m['whisper_size']} with random weights{' in fp16' if m['fp16'] else ''}, `sample_len` "
            f"{m['sample_len']} (random weights decode to the cap in every chunk), {m['threads']} torch threads. "
            "The same chunks and weights at every batch size, in one process.",
            "",
            "| batch size | seconds | audio s per s | ratio to batch " + str(first["batch_size"]) + " | words equal to "
            "batch " + str(first["batch_size"]) + " | peak GPU GiB |",
            "|---|---|---|---|---|---|",
        ]
        for run in m["runs"]:
            lines.append(
                f"| {run['batch_size']} | {run['seconds']} | {run['audio_s_per_s']} | "
                f"{first['seconds'] / run['seconds']:.2f} | {run['same_words_as_first']:.0%} | "
                f"{run['peak_gpu_gib'] if run['peak_gpu_gib'] is not None else '–'} |"
            )
        with open(RESULTS, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        print("\n".join(lines))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "record":
        record([Path(p) for p in sys.argv[2:]])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper-size", default="base")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunks", type=int, default=32)
    parser.add_argument("--chunk-s", type=float, default=20.0)
    parser.add_argument("--sample-len", type=int, default=96)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
