"""Per-act precision and recall of :func:`models.acts.detect_acts` on a labelled set, written into the model card.

The labelled set (``models/acts/eval.csv``: ``text, acts`` with acts separated by ``;``) was written apart from the
rules, as officer lines a trainer would label, and is not used to build them.

Example
-------
>>> python -m models.acts.evaluate            # rewrites models/acts/CARD.md           # doctest: +SKIP
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from models.acts import ACT_NAMES, ACTS, ACTS_VERSION, detect_acts

EVAL_SET = Path(__file__).parent / "eval.csv"
CARD = Path(__file__).parent / "CARD.md"


def read_labels(path: Path = EVAL_SET) -> pd.DataFrame:
    table = pd.read_csv(path, keep_default_na=False)
    unknown = {act for acts in table["acts"] for act in acts.split(";") if act} - set(ACT_NAMES)
    if unknown:
        raise ValueError(f"{path}: unknown acts {sorted(unknown)}")
    return table


def evaluate(path: Path = EVAL_SET) -> pd.DataFrame:
    """One row per act: support, true/false positives, false negatives, precision, recall."""
    table = read_labels(path)
    truth = [set(filter(None, acts.split(";"))) for acts in table["acts"]]
    predicted = [set(detect_acts(text)) for text in table["text"]]
    rows = []
    for act in ACT_NAMES:
        tp = sum(act in t and act in p for t, p in zip(truth, predicted, strict=True))
        fp = sum(act not in t and act in p for t, p in zip(truth, predicted, strict=True))
        fn = sum(act in t and act not in p for t, p in zip(truth, predicted, strict=True))
        rows.append(
            {
                "act": act,
                "support": tp + fn,
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "precision": tp / (tp + fp) if tp + fp else float("nan"),
                "recall": tp / (tp + fn) if tp + fn else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def errors(path: Path = EVAL_SET) -> list[str]:
    """Lines where detection and labels disagree, for reading."""
    table = read_labels(path)
    lines = []
    for text, acts in zip(table["text"], table["acts"], strict=True):
        truth, found = set(filter(None, acts.split(";"))), set(detect_acts(text))
        if truth != found:
            lines.append(f"{text!r}: missed {sorted(truth - found)}, extra {sorted(found - truth)}")
    return lines


def model_card(results: pd.DataFrame, n_lines: int) -> str:
    descriptions = {act.name: act.description for act in ACTS}
    rows = "\n".join(
        f"| {r.act} | {descriptions[r.act]} | {r.support} | {r.precision:.2f} | {r.recall:.2f} |"
        for r in results.itertuples()
    )
    tp, fp, fn = results["tp"].sum(), results["fp"].sum(), results["fn"].sum()
    return f"""# Officer speech acts — `{ACTS_VERSION}`

Multi-label detection of {len(ACT_NAMES)} acts per officer utterance (`act_<name>` columns), by rules: short lists of
phrasings in `models/acts/__init__.py`, several shared with the respect markers (`models/respect/features.py`). Each
detection keeps the words that triggered it, which the review UI and the `reasons` column show.

## Why rules
The acts are defined by phrasings trainers name ("the reason I stopped you", "I need you to", "sir"); no labelled
police-stop corpus is available to train on; rules are auditable, and a department can extend them. The trade-off is
recall on phrasings nobody listed (see the errors below).

## Evaluation
`models/acts/eval.csv`: {n_lines} officer lines written and labelled by the bwc authors apart from the rules (typical
traffic-stop phrasings, polite and hostile, and lines with no act), never used to write the patterns. Micro-averaged
precision {tp / (tp + fp):.2f}, recall {tp / (tp + fn):.2f}. Rebuild this card: `python -m models.acts.evaluate`.

| act | what counts | support | precision | recall |
|---|---|---|---|---|
{rows}

## Limits
- Whisper transcripts of real stops contain errors; a misheard word loses an act.
- Sarcasm ("you're a real genius") and indirect threats are beyond patterns.
- `explanation` also fires on the words that give the reason for the stop ("because", "that's why"), which the
  labelled set counts as `reason_for_stop` only; most of its false positives are those.
- The labelled set is small and author-written: treat per-act numbers with support under 10 as rough.
"""


def main() -> None:
    results = evaluate()
    table = read_labels()
    CARD.write_text(model_card(results, len(table)), encoding="utf-8")
    print(results.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    for line in errors():
        print(line, file=sys.stderr)


if __name__ == "__main__":
    main()
