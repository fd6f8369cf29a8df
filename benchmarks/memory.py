"""Peak memory of the speech stage on a 10-minute and a 4-hour recording, with the installed model set.

The speech stage alone (``SpeechStage`` on one ingested WAV, no Ray), each recording in a fresh process; peak RSS
of that process (``ru_maxrss``) and of its ffmpeg children. The recordings are near-silence and road noise with 5%
sparse espeak-ng speech (``benchmarks/speech.py``'s memory-check WAVs), written block by block. The target: the 4 h
peak at most 1.3x the 10 min one (memory flat in recording length). With the starter set installed, this measures
the CTranslate2 whisper engine, the segmentation VAD and the starter diarization; ``--models`` names another set
(``bwc models make-tiny DIR`` for the tiny random one, or a set with ``whisper.engine: openai`` in its models.yaml).

    .venv/bin/python benchmarks/memory.py                        # about 10 minutes on 2 cores; appends to RESULTS.md
    .venv/bin/python benchmarks/memory.py --models DIR --results /tmp/results.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).absolute().parent.parent))  # `python benchmarks/memory.py` from the root
from benchmarks.capacity import _hardware
from benchmarks.speech import (
    MEMORY_LENGTHS_S,
    RESULTS,
    SEED,
    Phase,
    child_result,
    memory_lines,
    phase_summary,
    speech_clips,
    timed,
    write_sparse_wav,
)
from bwc.config import DEFAULT_MODELS_DIR, load_config
from models.locate import ResolvedModels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS_DIR.expanduser(), help="models directory")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to append to")
    args = parser.parse_args()
    versions = ResolvedModels.resolve(load_config(args.models)).versions()
    print(f"{_hardware(0.0)}; models: {versions}", flush=True)
    phases: dict[str, Phase] = {}
    peaks: dict[str, dict] = {}
    script = str(Path(__file__).absolute().parent / "speech.py")
    with tempfile.TemporaryDirectory(prefix="bwc-memory-") as scratch:
        with timed(phases, "WAVs"):
            clips = speech_clips(np.random.default_rng(SEED))
            recordings = {}
            for index, (label, seconds) in enumerate(MEMORY_LENGTHS_S.items()):
                path = Path(scratch) / f"memory-{index}.wav"
                recordings[label] = (path, seconds, write_sparse_wav(path, seconds, clips, SEED + index))
        for label, (path, seconds, planted) in recordings.items():
            with timed(phases, f"speech stage {label}"):
                peaks[label] = child_result([sys.executable, script, "_speech-memory", str(path), str(args.models)])
            peaks[label] |= {"audio_s": seconds, "speech_share": planted / seconds}
            print(f"{label}: {peaks[label]}", flush=True)
    lines = memory_lines(peaks)
    print("\n".join(lines))
    section = [
        f"\n## Speech stage memory, {datetime.now(UTC):%Y-%m-%d} (`.venv/bin/python benchmarks/memory.py "
        + " ".join(sys.argv[1:])
        + "`)\n",
        f"Machine: {_hardware(0.0)}. Models: asr `{versions['asr']}`, vad `{versions['vad']}`, diarization "
        f"`{versions['diarization']}`. Each recording in a fresh process, the speech stage alone.\n",
        *lines,
        "",
        phase_summary(phases),
        "",
    ]
    with open(args.results, "a", encoding="utf-8") as results:
        results.write("\n".join(section))
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
