"""Recall and precision of :mod:`bwc.research.redact` on labelled police-stop utterances, written into ``CARD.md``.

The labelled sets (``dev.csv``, used while writing the rules, and ``test.csv``, written first and held out) have one
row per utterance: ``id, role, context, text``. ``role`` is officer, civilian or dispatch; ``context`` is the utterance
before it (or empty), which the redactor reads for context words, as the export does; ``text`` marks each PII span
inline as ``[[TYPE:words]]``, e.g. ``My name is [[PERSON:Maria Gonzalez]].`` with TYPE one of
:data:`~bwc.research.redact.PII_TYPES`. :func:`parse_markup` turns that into the plain text and its spans.

Matching:

- a gold span is *found* when predicted spans of any type cover at least :data:`COVERAGE` of its non-space
  characters (it is then redacted, whatever its placeholder says); *found as its type* when spans of its own type do;
- a predicted span is *correct* when it overlaps a gold span of any type by at least one character, and *correct as
  its type* when it overlaps one of its own type. Precision per type counts the predicted spans of that type.

Example
-------
>>> parse_markup("I'm [[PERSON:Keisha]], call [[PHONE:510-555-2341]].")
("I'm Keisha, call 510-555-2341.", ((4, 10, 'PERSON'), (17, 29, 'PHONE')))
>>> python -m bwc.research.pii_eval.evaluate          # rewrites bwc/research/pii_eval/CARD.md  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bwc.research.redact import PII_TYPES, REDACTION_VERSION, PiiSpan, Redactor

HERE = Path(__file__).parent
DEV_SET = HERE / "dev.csv"
TEST_SET = HERE / "test.csv"
CARD = HERE / "CARD.md"
COVERAGE = 0.9  # share of a gold span's non-space characters that redacted spans must cover
TARGET_RECALL = 0.95  # per type, on the held-out test set
MARKUP = re.compile(r"\[\[([A-Z]+):(.+?)\]\]")
ROLES = ("officer", "civilian", "dispatch")
MAX_EXAMPLES = 40  # misses and false alarms listed in the card, per set
SPEED_REPEATS = 3  # passes over the test set when measuring speed
# The test set's first evaluation, run once the rules were frozen (redact.py sha256 5263c6de23d9...): the clean
# held-out estimate, per type (found, gold spans, correct predicted spans, predicted spans). One bug its errors showed
# was fixed afterwards ("born November 1st": the month was read as the spelling-alphabet letter N), so the current
# test numbers are no longer a clean estimate for DOB (see the card).
FIRST_HELD_OUT_RUN = {
    "PERSON": (100, 101, 100, 111),
    "ADDRESS": (49, 50, 49, 49),
    "PHONE": (44, 44, 44, 44),
    "PLATE": (47, 47, 47, 47),
    "DOB": (41, 44, 41, 41),
    "SSN": (42, 42, 42, 42),
    "EMAIL": (43, 43, 43, 43),
}


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance."""

    id: str  # row id, e.g. t001
    role: str  # officer | civilian | dispatch
    context: str | None  # the utterance before it, when there is one
    text: str  # plain text, markup removed
    spans: tuple[tuple[int, int, str], ...]  # gold PII spans: (start, end, type)


@dataclass(frozen=True)
class TypeScore:
    """Evaluation numbers for one PII type (or all of them)."""

    type: str  # a PII type, or "all"
    support: int  # gold spans
    found: int  # gold spans covered by redacted spans of any type
    found_typed: int  # ... by spans of their own type
    predicted: int  # predicted spans of this type
    correct: int  # predicted spans overlapping a gold span of any type
    correct_typed: int  # ... overlapping a gold span of this type

    @property
    def recall(self) -> float:
        return self.found / self.support if self.support else float("nan")

    @property
    def recall_typed(self) -> float:
        return self.found_typed / self.support if self.support else float("nan")

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else float("nan")

    @property
    def precision_typed(self) -> float:
        return self.correct_typed / self.predicted if self.predicted else float("nan")

    @property
    def f1(self) -> float:
        recall, precision = self.recall, self.precision
        return 2 * recall * precision / (recall + precision) if recall + precision > 0 else float("nan")


@dataclass(frozen=True)
class Evaluation:
    """The redactor on one labelled set."""

    name: str  # dev | test
    utterances: int  # rows
    no_pii: int  # rows without any PII
    no_pii_redacted: int  # ... of which the redactor redacted something
    scores: tuple[TypeScore, ...]  # one per PII type, then "all"
    misses: tuple[str, ...]  # gold spans not found, for reading
    false_alarms: tuple[str, ...]  # predicted spans overlapping no gold span, for reading
    seconds: float  # wall time of redacting every utterance once (redactor already loaded)

    def score(self, kind: str) -> TypeScore:
        return next(score for score in self.scores if score.type == kind)

    @property
    def utterances_per_second(self) -> float:
        return self.utterances / self.seconds if self.seconds else float("nan")


def parse_markup(marked: str) -> tuple[str, tuple[tuple[int, int, str], ...]]:
    """Plain text and gold spans of a marked-up utterance; raises ValueError on an unknown type."""
    pieces: list[str] = []
    spans: list[tuple[int, int, str]] = []
    position, length = 0, 0
    for match in MARKUP.finditer(marked):
        kind, words = match.group(1), match.group(2)
        if kind not in PII_TYPES:
            raise ValueError(f"unknown PII type {kind!r} in {marked!r}")
        before = marked[position : match.start()]
        pieces.append(before)
        length += len(before)
        spans.append((length, length + len(words), kind))
        pieces.append(words)
        length += len(words)
        position = match.end()
    pieces.append(marked[position:])
    text = "".join(pieces)
    if "[[" in text or "]]" in text:
        raise ValueError(f"unbalanced markup in {marked!r}")
    return text, tuple(spans)


def read_set(path: Path) -> list[Utterance]:
    """The labelled utterances of a CSV file (see the module docstring)."""
    utterances = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["role"] not in ROLES:
                raise ValueError(f"{path}: row {row['id']}: role must be one of {ROLES}")
            text, spans = parse_markup(row["text"])
            utterances.append(Utterance(row["id"], row["role"], row["context"] or None, text, spans))
    return utterances


def coverage(text: str, gold: tuple[int, int, str], predicted: Sequence[PiiSpan], same_type: bool) -> float:
    """Share of the gold span's non-space characters inside predicted spans (of its type, when ``same_type``)."""
    start, end, kind = gold
    positions = [index for index in range(start, end) if not text[index].isspace()]
    spans = [span for span in predicted if not same_type or span.type == kind]
    covered = sum(any(span.start <= index < span.end for span in spans) for index in positions)
    return covered / len(positions) if positions else 1.0


def evaluate(utterances: Sequence[Utterance], redactor: Redactor, name: str) -> Evaluation:
    """Per-type recall and precision of ``redactor`` on ``utterances`` (see the module docstring for matching)."""
    started = time.perf_counter()
    predictions = [redactor.find(utterance.text, utterance.context) for utterance in utterances]
    seconds = time.perf_counter() - started
    counts = {
        kind: dict.fromkeys(("support", "found", "found_typed", "predicted", "correct", "typed"), 0)
        for kind in PII_TYPES
    }
    misses, false_alarms = [], []
    for utterance, predicted in zip(utterances, predictions, strict=True):
        text = utterance.text
        for gold in utterance.spans:
            count = counts[gold[2]]
            count["support"] += 1
            found = coverage(text, gold, predicted, same_type=False) >= COVERAGE
            count["found"] += found
            count["found_typed"] += coverage(text, gold, predicted, same_type=True) >= COVERAGE
            if not found:
                misses.append(f"{utterance.id} {gold[2]} {text[gold[0] : gold[1]]!r} in {_shown(text, predicted)!r}")
        for span in predicted:
            count = counts[span.type]
            count["predicted"] += 1
            overlapping = [gold for gold in utterance.spans if gold[0] < span.end and span.start < gold[1]]
            count["correct"] += bool(overlapping)
            count["typed"] += any(gold[2] == span.type for gold in overlapping)
            if not overlapping:
                false_alarms.append(f"{utterance.id} {span.type} {text[span.start : span.end]!r} in {text!r}")
    scores = [
        TypeScore(kind, c["support"], c["found"], c["found_typed"], c["predicted"], c["correct"], c["typed"])
        for kind, c in counts.items()
    ]
    total = TypeScore("all", *(sum(getattr(score, field) for score in scores) for field in (
        "support", "found", "found_typed", "predicted", "correct", "correct_typed")))  # fmt: skip
    no_pii = [index for index, utterance in enumerate(utterances) if not utterance.spans]
    return Evaluation(
        name=name,
        utterances=len(utterances),
        no_pii=len(no_pii),
        no_pii_redacted=sum(bool(predictions[index]) for index in no_pii),
        scores=(*scores, total),
        misses=tuple(misses),
        false_alarms=tuple(false_alarms),
        seconds=seconds,
    )


def _shown(text: str, spans: Sequence[PiiSpan]) -> str:
    """``text`` with the predicted spans in brackets, for reading errors."""
    for span in sorted(spans, key=lambda span: span.start, reverse=True):
        text = f"{text[: span.start]}<{span.type}:{text[span.start : span.end]}>{text[span.end :]}"
    return text


def score_table(evaluation: Evaluation) -> str:
    rows = [
        "| type | gold spans | recall | recall, type-exact | predicted spans | precision | precision, type-exact "
        "| F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in evaluation.scores:
        rows.append(
            f"| {s.type} | {s.support} | {s.recall:.3f} ({s.found}/{s.support}) | {s.recall_typed:.3f} | {s.predicted} "
            f"| {s.precision:.3f} ({s.correct}/{s.predicted}) | {s.precision_typed:.3f} | {s.f1:.3f} |"
        )
    return "\n".join(rows)


def _examples(lines: Sequence[str]) -> str:
    shown = [f"- `{line}`" for line in lines[:MAX_EXAMPLES]]
    if len(lines) > MAX_EXAMPLES:
        shown.append(f"- ... and {len(lines) - MAX_EXAMPLES} more (run the evaluation to see them all)")
    return "\n".join(shown) if shown else "- none"


def card(
    test: Evaluation,
    dev: Evaluation,
    test_set: Sequence[Utterance],
    dev_set: Sequence[Utterance],
    speed: float,
    load_seconds: float,
    import_seconds: float,
) -> str:
    """CARD.md: what the redactor is, the data, the numbers on both sets, failure modes and speed."""
    first_below = [
        kind for kind, (found, support, _, _) in FIRST_HELD_OUT_RUN.items() if found / support < TARGET_RECALL
    ]
    below = [s.type for s in test.scores if s.type != "all" and s.recall < TARGET_RECALL]
    verdict = (
        f"**On the first, clean run of the held-out test set, {', '.join(first_below) or 'no type'} missed the target "
        f"recall of {TARGET_RECALL:.2f}.** "
        + (
            "With the current rules every type reaches it on the test set, after a bug fix made by reading that run's "
            "errors: read those numbers as optimistic."
            if not below
            else f"With the current rules, below target on the test set: {', '.join(below)}."
        )
    )
    first_rows = "\n".join(
        f"| {kind} | {support} | {found / support:.3f} ({found}/{support}) | {correct / predicted:.3f} "
        f"({correct}/{predicted}) |"
        for kind, (found, support, correct, predicted) in FIRST_HELD_OUT_RUN.items()
    )

    def composition(utterances: Sequence[Utterance]) -> str:
        roles = ", ".join(f"{sum(u.role == role for u in utterances)} {role}" for role in ROLES)
        per_type = ", ".join(f"{kind} {sum(s[2] == kind for u in utterances for s in u.spans)}" for kind in PII_TYPES)
        with_context = sum(u.context is not None for u in utterances)
        return (
            f"{len(utterances)} utterances ({roles}); {sum(not u.spans for u in utterances)} without PII; "
            f"{with_context} with the preceding utterance as context. Gold spans: {per_type}."
        )

    return f"""# PII redaction for research exports — `{REDACTION_VERSION}`

`bwc/research/redact.py` finds person names, street addresses, phone numbers, licence plates, dates of birth, social
security numbers and email addresses in transcript text and replaces each with a typed placeholder (`[PERSON]`,
`[ADDRESS]`, `[PHONE]`, `[PLATE]`, `[DOB]`, `[SSN]`, `[EMAIL]`). It is rules, not a trained model: presidio-analyzer
runs the recognizers and raises weak candidates that have context words near them (in the utterance or the one before
it), on a blank spaCy English pipeline; `phonenumbers` reads written phone numbers, `usaddress` parses street
addresses, `tldextract`'s bundled public-suffix list validates email domains. Spoken numbers and spelled plates
("six Tom Ocean Mary four four two") are rewritten as digits and letters before recognition. Without a trained NER
model, names are found from what whisper transcripts show: capitalised words that are not common words, places,
brands or titles, words after titles and introductions, spelled names, and answers to "what's your name?". It never
opens a network connection. Rebuild this card: `python -m bwc.research.pii_eval.evaluate`.

## Data
Utterances written for this evaluation by the bwc developers (drafted with an AI coding assistant), in the style of
whisper transcripts of US traffic stops: officers, drivers and passengers, and dispatch radio; names capitalised,
numbers sometimes spelled out, punctuation as whisper writes it. They are not real transcripts and hold no real
person's data. Labels are inline (`[[PERSON:Maria Gonzalez]]`); see `evaluate.py` for the format and the matching.

- `test.csv`, held out: {composition(test_set)}
  It was written first, before any rule existed, and was not used to write or tune the rules: the rules were
  developed on `dev.csv` only and the test set was evaluated once they were frozen.
- `dev.csv`, development: {composition(dev_set)}
  Used while writing the rules; its numbers are optimistic.

Many test utterances are hard on purpose: spoken digits, phonetic plates, partial plates, spelled names, dates
without years, answers whose only clue is the question before them, and negatives that look like PII (times,
speeds, badge and case numbers, money, court dates, car makes and models, "Officer", "Main Street", "Sir"/"Ma'am").

**Caveats.** The same developers wrote the test set and the rules, so the test numbers are not an independent
estimate: they knew which forms the test set holds when they wrote rules on dev. Real whisper transcripts are
noisier (misheard names written in lower case, numbers split across utterances, diarization errors that separate a
question from its answer). Treat these numbers as an upper bound and review a sample of every export by hand.

## Results
A gold span counts as found when redacted spans of any type cover at least {COVERAGE:.0%} of its non-space
characters ("type-exact": spans of its own type). A predicted span is correct when it overlaps any gold span.
{verdict}

### Test, first run (the clean held-out estimate)
The rules were frozen (`redact.py` sha256 `5263c6de23d9...`) and the test set evaluated once:

| type | gold spans | recall | precision |
|---|---|---|---|
{first_rows}

Three changes came after that run. Reading its misses showed a bug: "born November 1st" lost its date because
"November" was read as the spelling-alphabet letter N (as in a plate "7 November Adam ..."); it was fixed (a month
name before a day is never a letter), and it is the only change that moved a test number (DOB 41 -> 42 of 44). A
trial export showed over-redaction unrelated to the test set: after "My name is Officer Chen." the next sentence's
first word ("Shut up ...") was taken for a name; name words in the previous utterance now count as context only when
it asks a question. A code review found that a surname which is also a street word ("Jessica Park", "Marcus Hall")
lost its second word; names now run on over such words. No rule was added or changed for any other test miss, and
the test set was not edited; the misses and false alarms below are listed as they are.

### Test, current rules
{score_table(test)}

Utterances without PII: {test.no_pii}, of which {test.no_pii_redacted} had something redacted.

### Dev
{score_table(dev)}

Utterances without PII: {dev.no_pii}, of which {dev.no_pii_redacted} had something redacted.

## Known failure modes
- Names that whisper writes in lower case, names that are stop words ("Will"), and names opening a sentence with
  nothing around them that marks a name ("Terrell? He's my stepbrother.") are missed.
- Capitalised words that are not names (businesses, places the lists do not know, "Little Stars") are redacted as
  `[PERSON]`: over-redaction costs precision, not privacy.
- A date of birth said without year or birth context ("April 1st" alone), said as bare numbers ("Priya Raman,
  three eight two thousand" on the radio), or answering a question two utterances back, is missed: context reaches
  back one utterance only. So is an SSN or phone number split across two utterances.
- A spoken house number before a numbered street ("Twelve oh five 35th Avenue") is not read as an address.
- Street names, intersections and short answers next to capitalised words ("Fifth and Main", "Tall, gray hoodie")
  are sometimes redacted as names.
- Plates of unusual shapes spoken without any plate context ("Six Z Q R eight eight one" as a bare answer) need the
  question before them.
- Quoted words in derived columns (act evidence, flag reasons) are lower-cased; the export redacts them by the PII
  strings found in the encounter's own transcript as well as by these rules.

Misses on the test set (gold spans not found):
{_examples(test.misses)}

False alarms on the test set (predicted spans overlapping no gold span):
{_examples(test.false_alarms)}

Misses on the dev set:
{_examples(dev.misses)}

## Speed
{speed:.0f} utterances per second (median of {SPEED_REPEATS} passes over the test set, {1000 / speed:.2f} ms per
utterance; one process, one core of a {platform.machine()} machine, Python {platform.python_version()}). Loading
costs {import_seconds:.1f} s to import presidio, spaCy and their dependencies (most of it presidio importing
transformers) and {load_seconds:.1f} s to build the redactor, once per process. The export redacts each utterance
once: a store of a million utterances takes about {1e6 / speed / 60:.0f} minutes.
"""


def utterances_per_second(redactor: Redactor, utterances: Sequence[Utterance], repeats: int = SPEED_REPEATS) -> float:
    """Median speed of redacting every utterance once, over ``repeats`` passes."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for utterance in utterances:
            redactor.redact(utterance.text, utterance.context)
        rates.append(len(utterances) / (time.perf_counter() - started))
    return statistics.median(rates)


def import_seconds() -> float:
    """Seconds a fresh interpreter takes to import the redactor (presidio imports its optional dependencies)."""
    command = "import time; t = time.perf_counter(); import bwc.research.redact; print(time.perf_counter() - t)"
    completed = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, check=True)
    return float(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    started = time.perf_counter()
    redactor = Redactor()
    load_seconds = time.perf_counter() - started
    dev_set, test_set = read_set(DEV_SET), read_set(TEST_SET)
    dev = evaluate(dev_set, redactor, "dev")
    test = evaluate(test_set, redactor, "test")
    speed = utterances_per_second(redactor, test_set)
    CARD.write_text(card(test, dev, test_set, dev_set, speed, load_seconds, import_seconds()), encoding="utf-8")
    for evaluation in (test, dev):
        print(f"\n{evaluation.name}: {evaluation.utterances} utterances, {evaluation.utterances_per_second:.0f}/s")
        print(score_table(evaluation))
    if "--errors" in sys.argv:
        for line in dev.misses:
            print("dev miss:", line, file=sys.stderr)
        for line in dev.false_alarms:
            print("dev false alarm:", line, file=sys.stderr)


if __name__ == "__main__":
    main()
