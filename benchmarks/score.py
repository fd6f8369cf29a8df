"""`bwc score` throughput on a transcript table of a few thousand utterances (2-core CPU is the reference machine).

The table is assembled from the bundled demo scripts (officer and civilian lines of four traffic stops) repeated
over many encounters, then scored through the real command line, models loading included.

    python benchmarks/score.py --encounters 400        # appends to benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bwc.demo import load_scripts

RESULTS = Path(__file__).parent / "RESULTS.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encounters", type=int, default=400)
    args = parser.parse_args()
    scripts = load_scripts()
    templates = [group for _, group in scripts.groupby("encounter_id")]
    table = pd.concat(
        [templates[i % len(templates)].assign(encounter_id=f"E{i:05d}") for i in range(args.encounters)],
        ignore_index=True,
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "transcripts.csv"
        table.to_csv(path, index=False)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bwc.cli", "score", str(path), "--store", str(Path(scratch) / "store")], check=True
        )
        elapsed = time.perf_counter() - started
    officer = int((table["role"] == "officer").sum())
    section = (
        f"\n## `bwc score` throughput — {datetime.now(UTC):%Y-%m-%d}\n\n"
        f"`python benchmarks/score.py --encounters {args.encounters}` on {os.cpu_count()} CPU cores: "
        f"{len(table)} utterances ({officer} officer) in {args.encounters} encounters scored in {elapsed:.1f} s "
        f"wall, including start-up and model loading ({len(table) / elapsed:.0f} utterances/s).\n"
    )
    print(section)
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(section)


if __name__ == "__main__":
    main()
