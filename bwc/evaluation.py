"""Measuring the speech path against references: word error rate, diarization error rate, and whether words land on
the right role. Used by the demo (its transcripts against their scripts), the accuracy benchmark and the tests.

WER is jiwer's, on text normalised by whisper's English normaliser (numbers, spelling variants, punctuation and
casing), the convention whisper's own evaluations use. DER is pyannote.metrics'.

Example
-------
>>> round(word_error_rate(["Mr. Quilter is the apostle"], ["mister quilter is an apostle"]).wer, 2)
0.2
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

OFFICER = "officer"


@dataclass(frozen=True)
class WerResult:
    """Word errors pooled over a set of references."""

    wer: float  # (substitutions + deletions + insertions) / reference words
    reference_words: int  # words in the normalised references
    substitutions: int  # words recognised as another word
    deletions: int  # reference words missed
    insertions: int  # words recognised where nothing was said


@dataclass(frozen=True)
class RoleResult:
    """Where the words of each true role landed."""

    officer_words: int  # recognised words inside officer lines
    officer_to_officer: int  # of those, attributed to the officer
    civilian_words: int  # recognised words inside community members' lines
    civilian_kept_apart: int  # of those, not attributed to the officer

    @property
    def officer_share(self) -> float:
        """Share of the officer's words attributed to the officer (NaN without any)."""
        return self.officer_to_officer / self.officer_words if self.officer_words else float("nan")

    @property
    def civilian_share(self) -> float:
        """Share of community members' words kept from the officer (NaN without any)."""
        return self.civilian_kept_apart / self.civilian_words if self.civilian_words else float("nan")

    def __add__(self, other: RoleResult) -> RoleResult:
        return RoleResult(
            self.officer_words + other.officer_words,
            self.officer_to_officer + other.officer_to_officer,
            self.civilian_words + other.civilian_words,
            self.civilian_kept_apart + other.civilian_kept_apart,
        )


def normalise(text: str) -> str:
    """whisper's English text normaliser ("Mr." -> "mister", punctuation and case dropped, numbers spelled out)."""
    from whisper.normalizers import EnglishTextNormalizer

    return " ".join(EnglishTextNormalizer()(text).split())


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> WerResult:
    """Pooled WER of ``hypotheses`` against ``references`` (pairs in order), both normalised.

    Pairs whose normalised reference is empty are skipped: there is nothing to rate their words against (count
    words on noise-only audio per minute instead).
    """
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    pairs = [(normalise(ref), normalise(hyp)) for ref, hyp in zip(references, hypotheses, strict=True)]
    pairs = [(ref, hyp) for ref, hyp in pairs if ref]
    if not pairs:
        return WerResult(float("nan"), 0, 0, 0, 0)
    # jiwer refuses empty hypotheses in a list; a lone space is an empty transcript to it
    output = jiwer.process_words([ref for ref, _ in pairs], [hyp or " " for _, hyp in pairs])
    reference_words = sum(len(ref.split()) for ref, _ in pairs)
    return WerResult(
        wer=(output.substitutions + output.deletions + output.insertions) / reference_words,
        reference_words=reference_words,
        substitutions=output.substitutions,
        deletions=output.deletions,
        insertions=output.insertions,
    )


def role_result(words: Iterable[tuple[float, float, str]], truth: Sequence[tuple[float, float, str]]) -> RoleResult:
    """Count where words landed: ``words`` as (start, end, attributed role), ``truth`` as (start, end, true role)
    spans. A word belongs to the true span it shares the most time with; words outside every span, and words in
    radio or other lines, are not counted.

    >>> role_result([(0.1, 0.4, "officer"), (2.1, 2.3, "officer"), (2.5, 2.8, "civilian")],
    ...             [(0.0, 1.0, "officer"), (2.0, 3.0, "civilian")])
    RoleResult(officer_words=1, officer_to_officer=1, civilian_words=2, civilian_kept_apart=1)
    """
    officer_words = officer_right = civilian_words = civilian_right = 0
    for start, end, role in words:
        overlaps = [(min(end, t_end) - max(start, t_start), t_role) for t_start, t_end, t_role in truth]
        best, true_role = max(overlaps, default=(0.0, None))
        if best <= 0 or true_role is None:
            continue
        if true_role == OFFICER:
            officer_words += 1
            officer_right += role == OFFICER
        elif true_role == "civilian":
            civilian_words += 1
            civilian_right += role != OFFICER
    return RoleResult(officer_words, officer_right, civilian_words, civilian_right)


def diarization_error_rate(
    reference: Sequence[tuple[float, float, str]], hypothesis: Sequence[tuple[float, float, str]], collar: float
) -> tuple[float, float]:
    """pyannote.metrics' DER (overlap scored) of ``hypothesis`` against ``reference`` turns (start, end, speaker),
    with ``collar`` seconds forgiven around reference boundaries; returns (DER, reference speech seconds)."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(turns: Sequence[tuple[float, float, str]]) -> Annotation:
        result = Annotation()
        for index, (start, end, speaker) in enumerate(turns):
            if end > start:
                result[Segment(start, end), index] = speaker
        return result

    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    components = metric(annotation(reference), annotation(hypothesis), detailed=True)
    return float(components["diarization error rate"]), float(components["total"])


def one_speaker(reference: Sequence[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The one-speaker baseline: every reference turn given to one speaker (perfect speech detection)."""
    return [(start, end, "everyone") for start, end, _ in reference]
