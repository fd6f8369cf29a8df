"""whisper with dynamic int8 quantisation (``whisper.int8``) against fp32 on CPU: the same chunks and weights, one
run, a ratio, and how stable the output stays.

Stability is measured two ways on espeak-ng speech chunks: (1) teacher-forced, the share of positions where int8's
most likely next token equals fp32's given fp32's own transcript so far (no cascade: one flipped token does not
count twice), and (2) free-running, the share of windows whose whole decoded token sequence is identical. Random
weights sit near ties between tokens far more often than trained ones, so both are pessimistic for real weights.

    python benchmarks/asr_int8.py --whisper-size base --chunks 8          # appends a section to RESULTS.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "RESULTS.md"
LINES = (
    "Good evening, I stopped you because your registration sticker is expired.",
    "Can I see your license and registration please?",
    "Why did you pull me over, officer? I was going the speed limit.",
    "Step out of the vehicle and keep your hands where I can see them.",
    "Thank you for your patience, you are free to go, drive safely.",
    "Dispatch, unit twelve, show me out on a traffic stop on Fifth and Main.",
)


def speech_chunks(count: int, seconds: float) -> list[np.ndarray]:
    """``count`` chunks of espeak-ng lines back to back, ``seconds`` long each."""
    from bwc.demo import Line, render_scene

    chunks = []
    for index in range(count):
        lines = [Line("officer" if i % 2 else "civilian", LINES[(index + i) % len(LINES)], 0.4) for i in range(4)]
        audio, _ = render_scene(lines, lead_in_s=0.3, tail_s=0.3, seed=index)
        chunks.append(np.resize(audio, int(seconds * 16_000)).astype(np.float32))
    return chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper-size", default="base")
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--chunk-s", type=float, default=20.0)
    parser.add_argument("--sample-len", type=int, default=96)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()

    import torch

    from bwc.config import WhisperConfig
    from models.asr import SpeechChunk, WhisperTranscriber
    from models.tiny import make_tiny_whisper

    checkpoint = Path(tempfile.mkdtemp(prefix="bwc-int8-")) / f"{args.whisper_size}-random.pt"
    make_tiny_whisper(checkpoint, size=args.whisper_size)
    audio = speech_chunks(args.chunks, args.chunk_s)
    chunks = [SpeechChunk(f"c{i}", 0.0, args.chunk_s, samples) for i, samples in enumerate(audio)]
    runs: dict[str, dict[str, object]] = {}
    models = {}
    for name, int8 in (("fp32", False), ("int8", True)):
        config = WhisperConfig(
            model=str(checkpoint), language="en", temperature=0.0, sample_len=args.sample_len, int8=int8
        )
        asr = WhisperTranscriber(config, checkpoint)
        asr.transcribe_chunks(chunks[:2], batch_size=8)  # warm-up
        started = time.perf_counter()
        words = asr.transcribe_chunks(chunks, batch_size=8)
        seconds = time.perf_counter() - started
        runs[name] = {"seconds": seconds, "words": {k: [w.text for w in v] for k, v in words.items()}}
        models[name] = asr.model
        print(f"{name}: {seconds:.1f} s", flush=True)

    # teacher-forced agreement: fp32's greedy transcript of each chunk's first window, scored by both models
    import whisper
    from whisper.audio import N_FRAMES, log_mel_spectrogram, pad_or_trim

    agree = total = identical = 0
    options = whisper.DecodingOptions(language="en", temperature=0.0, sample_len=args.sample_len, fp16=False)
    with torch.inference_mode():
        for samples in audio:
            mel = pad_or_trim(log_mel_spectrogram(torch.from_numpy(samples)), N_FRAMES)[None]
            reference = whisper.decode(models["fp32"], mel, options)[0]
            other = whisper.decode(models["int8"], mel, options)[0]
            identical += reference.tokens == other.tokens
            tokenizer = whisper.tokenizer.get_tokenizer(True, num_languages=models["fp32"].num_languages, language="en")
            prompt = list(tokenizer.sot_sequence_including_notimestamps[:3]) + list(reference.tokens)
            tokens = torch.tensor([prompt])
            top = [models[name](mel, tokens)[0, 2:-1].argmax(-1) for name in ("fp32", "int8")]
            agree += int((top[0] == top[1]).sum())
            total += top[0].numel()
    speedup = runs["fp32"]["seconds"] / runs["int8"]["seconds"]  # type: ignore[operator]
    forced = agree / max(total, 1)
    summary = (
        f"int8 vs fp32: {speedup:.2f}x faster; teacher-forced next-token agreement {forced:.1%} over {total} "
        f"positions; windows decoded identically {identical}/{len(audio)}"
    )
    print(summary)
    if args.no_record:
        return
    lines = [
        "",
        f"## whisper int8 (dynamic quantisation) vs fp32 on CPU — {datetime.now(UTC):%Y-%m-%d}",
        "",
        f"`python benchmarks/asr_int8.py {' '.join(sys.argv[1:])}` on {platform.machine()}, "
        f"{torch.get_num_threads()} torch threads: {args.chunks} chunks of {args.chunk_s:g} s of espeak-ng speech, "
        f"whisper {args.whisper_size} with random weights, `sample_len` {args.sample_len}, batch 8, the same "
        "chunks and weights for both.",
        "",
        "| | fp32 | int8 |",
        "|---|---|---|",
        f"| seconds | {runs['fp32']['seconds']:.1f} | {runs['int8']['seconds']:.1f} |",
        f"| speed ratio | 1 | {speedup:.2f} |",
        "",
        f"- Teacher-forced next-token agreement (int8's argmax equals fp32's, given fp32's transcript): "
        f"**{forced:.1%}** of {total} positions.",
        f"- Windows whose free-running greedy decode is token-for-token identical: {identical} of {len(audio)}.",
        "- Random weights sit near ties between tokens much more often than trained ones, so these are pessimistic "
        "for real weights; `whisper.int8` stays off by default until it is measured on real weights.",
    ]
    with open(RESULTS, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
