"""Interpretable respect markers: the features of Voigt et al. (2017) and the politeness strategies of
Danescu-Niculescu-Mizil et al. (2013), found with regular expressions over one utterance.

Every feature is binary (present or not), because the studies found presence, not frequency, carries the signal,
and counts would make long utterances look extreme. Each match keeps the words that triggered it, so a score can be
explained with the words themselves ("formal_title: 'sir'").

Patterns are written for speech as whisper transcribes it (no markup, punctuation present but unreliable) and for
written requests (the training corpus); both are lower-cased before matching. Sentence-initial features look at the
start of every sentence, after discourse fillers ("okay", "so", "well", a name) are skipped where noted.

Example
-------
>>> found = find_features("Good evening, sir. May I see your license, please?")
>>> sorted(found)[:4]
['counterfactual_modal', 'formal_title', 'greeting', 'please']
>>> found["formal_title"]
'sir'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Short opinion lexicons (a hand-picked core of Hu & Liu 2004's lists, chosen for request and police-stop language).
POSITIVE_WORDS = frozenset(
    """appreciate appreciated awesome best better brilliant careful clear congratulations cool correct delighted
    enjoy excellent fair fantastic fine fortunate glad good great happy helpful honest interesting kind kindly
    like lovely lucky nice perfect pleased pleasure polite precise proper qualified ready reasonable recommend
    respect safe safely super superb thoughtful useful valuable welcome well wise wonderful worth""".split()  # noqa: SIM905
)
NEGATIVE_WORDS = frozenset(
    """absurd abuse afraid angry annoying arrogant awful bad biased blame broken careless crazy damage dead
    destroy difficult disappoint disappointed disgusting dishonest dumb error evil fail failed failure fake false
    fault fool foolish garbage guilty hate horrible idiot ignorant illegal incompetent insane junk lame lazy liar
    lie lies lousy mess nasty nonsense pathetic pointless poor problem rude ridiculous sad shame silly sloppy
    stupid suck sucks terrible trash ugly unacceptable unfair useless vandal vandalism waste worse worst
    wrong""".split()  # noqa: SIM905
)

SENTENCE_EVIDENCE_WORDS = 5  # words of a sentence quoted as the evidence of a sentence-initial marker
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_LEADING_FILLER = re.compile(
    r"^(?:(?:okay|ok|alright|all right|well|so|now|hey|look|listen|yeah|yes|no|um|uh)\b[,!.]?\s*)+"
)
_COMMAND_VERBS = (  # imperative openings; "take care", "let me", "don't worry" are not commands
    "get|give|put|step|turn|show|stop|hand|keep|stay|sit|stand|shut|listen|look|move|come|go|open|roll|leave|calm|"
    "back|face|place|drop|walk|hurry|wait|answer|tell|quit|cut|pull|exit|unlock|lower|raise|relax|hold|spread|lay|"
    "lie|make sure|do not(?! worry)|don'?t(?! worry)|out of the|hands"
)


@dataclass(frozen=True)
class Feature:
    """One respect marker."""

    name: str  # column-friendly name, e.g. "formal_title"
    description: str  # what it means, for model cards and the review UI
    pattern: re.Pattern[str]  # searched in the lower-cased utterance (or in each sentence when sentence_start)
    sentence_start: bool = False  # only count a match at the start of a sentence
    case_sensitive: bool = False  # match against the original text instead of the lower-cased one


def _f(
    name: str, description: str, pattern: str, sentence_start: bool = False, case_sensitive: bool = False
) -> Feature:
    flags = 0 if case_sensitive else re.IGNORECASE
    return Feature(name, description, re.compile(pattern, flags), sentence_start, case_sensitive)


def _words(words: frozenset[str]) -> str:
    return r"\b(?:" + "|".join(sorted(words)) + r")\b"


FEATURES: tuple[Feature, ...] = (
    # Markers that Voigt'17 and Danescu'13 found to raise perceived respect or politeness.
    _f("formal_title", "formal address: sir, ma'am, Mr./Ms.", r"\b(?:sir|ma'?am|madam|mister|mr|mrs|ms|miss)\b\.?"),
    _f(
        "last_name",
        "a title followed by a surname",
        r"\b(?:Mr|Mrs|Ms|Miss|Dr|Mister)\.?\s+[A-Z][a-z]+",
        case_sensitive=True,
    ),
    _f(
        "greeting",
        "greeting",
        r"^(?:hi|hello|hey there|good (?:morning|afternoon|evening|day)|greetings|howdy)\b",
        True,
    ),
    _f(
        "introduction",
        "introducing oneself",
        r"\bmy name(?:'s| is)\b|\bi'?m (?:officer|deputy|sergeant|trooper|detective|corporal|lieutenant)\b"
        r"|\bthis is (?:officer|deputy|sergeant|trooper)\b",
    ),
    _f("gratitude", "thanking", r"\bthank(?:s| you)\b|\bappreciate\b|\bgrateful\b"),
    _f("apology", "apologising", r"\bsorry\b|\bapologi[sz]e|\bapologies\b|\bexcuse me\b|\bforgive me\b|\bpardon\b"),
    _f(
        "reassurance",
        "reassuring",
        r"\b(?:it'?s|that'?s|you'?re|everything'?s|everything is) (?:ok|okay|alright|all right|fine|good)\b"
        r"|\bno problem\b|\bno worries\b|\bdon'?t worry\b|\bnot a (?:big )?deal\b|\bnothing to worry\b"
        r"|\byou'?re (?:all set|free to go)\b|\bjust a warning\b",
    ),
    _f(
        "safety",
        "concern for the other's safety or wellbeing",
        r"\b(?:drive|be|stay|get home) safe(?:ly)?\b|\btake care\b|\bfor your (?:own )?safety\b"
        r"|\bare you (?:ok|okay|alright|all right|hurt)\b|\bis everyone (?:ok|okay|alright|all right)\b",
    ),
    _f(
        "reason",
        "giving a reason or explanation",
        r"\bbecause\b|\bthe reason\b|\bthat'?s why\b|\bso that\b|\bsince\b|\bdue to\b|\bstopped you (?:for|because)\b",
    ),
    _f("please", "please", r"\bplease\b|\bpls\b"),
    _f("counterfactual_modal", "could you / would you", r"\b(?:could|would) you\b|\bmay i\b|\bwould you mind\b"),
    _f("indicative_modal", "can you / will you", r"\b(?:can|will) you\b"),
    _f(
        "hedge",
        "hedging",
        r"\b(?:maybe|perhaps|possibly|probably|might|i think|i believe|i guess|i suppose|i wonder|seems?|kind of"
        r"|sort of|somewhat|suggest|a (?:little )?bit)\b",
    ),
    _f("just", "'just' (minimising the imposition)", r"\bjust\b"),
    _f("positive_words", "positive words", _words(POSITIVE_WORDS)),
    _f(
        "deference",
        "deferential opening (great, nice, good ...)",
        r"^(?:great|good(?! (?:morning|afternoon|evening|day))|nice|interesting|cool|excellent|awesome|wonderful)\b",
        True,
    ),
    _f("first_person_plural", "we / us / our / let's", r"\b(?:we|us|our|let'?s)\b"),
    _f("indirect", "by the way", r"\bby the way\b|\bbtw\b"),
    # Markers found to lower perceived respect or politeness.
    _f(
        "informal_title",
        "informal address: dude, bro, man, buddy",
        r"\b(?:dude|bro|bruh|buddy|pal|homie|homes|boss|chief|my man|sweetie|sweetheart|honey)\b"
        r"|(?:,\s*|^)(?:man|boy|son|kid|girl)\b[,.!?]?",
    ),
    _f("negative_words", "negative words", _words(NEGATIVE_WORDS)),
    _f("profanity", "swearing", r"\b(?:fuck\w*|shit\w*|damn\w*|hell|ass|asshole|bitch\w*|bastard|crap\w*|piss\w*)\b"),
    _f(
        "insult",
        "insulting the person",
        r"\b(?:idiot|stupid|moron|dumb|retard\w*|loser|jerk|pathetic|clown|liar|incompetent|ignorant|fool)\b",
    ),
    _f("command", "a bare command (imperative)", rf"^(?:please[, ]+)?(?:{_COMMAND_VERBS})\b", True),
    _f(
        "hands_on_wheel",
        "hands on the wheel / show me your hands",
        r"\bhands? (?:on|up|where i can see)\b|\bshow me your hands\b|\bkeep your hands\b",
    ),
    _f(
        "threat",
        "threatening consequences",
        r"\b(?:or|otherwise) (?:i'?ll|i will|i'?m going to|i'?m gonna)\b|\bgoing to regret\b|\bdon'?t make me\b"
        r"|\b(?:i'?ll|i will|i'?m going to|i'?m gonna) (?:arrest|tase|taze|shoot|hurt|drag|break|block|ban)\b"
        r"|\blast warning\b|\byou'?ll be (?:arrested|blocked|banned)\b",
    ),
    _f("direct_question", "a bare wh-question", r"^(?:what|why|who|how|where|when)\b", True),
    _f("direct_start", "starting with so / then / and / but", r"^(?:so|then|and|but|or)\b", True),
    _f("second_person_start", "starting with you / your", r"^(?:you|your)\b", True),
    _f(
        "factuality",
        "asserting facts: actually, in fact, obviously",
        r"\bin fact\b|\bactually\b|\bthe (?:point|fact|reality|truth) is\b|\bobviously\b|\bclearly\b",
    ),
    _f("exclamation", "exclamation", r"!"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(feature.name for feature in FEATURES)


def sentences(text: str) -> list[str]:
    """Lower-cased sentences of an utterance, each as written and again without leading fillers ("okay, ...")."""
    parts = [part.strip(" \t,;:-\"'").lower() for part in _SENTENCE_SPLIT.split(text)]
    starts: list[str] = []
    for part in filter(None, parts):
        starts.append(part)
        stripped = _LEADING_FILLER.sub("", part)
        if stripped and stripped != part:
            starts.append(stripped)
    return starts


def find_features(text: str) -> dict[str, str]:
    """The features present in ``text``, each with the words that matched first."""
    lowered = text.lower()
    starts = sentences(text)
    found: dict[str, str] = {}
    for feature in FEATURES:
        if feature.sentence_start:
            for sentence in starts:
                match = feature.pattern.search(sentence)
                if match:
                    # The opening words say more than the matched verb ("hands on the wheel", not "hands").
                    found[feature.name] = " ".join(sentence.split()[:SENTENCE_EVIDENCE_WORDS]).strip(" ,.?!")
                    break
            continue
        match = feature.pattern.search(text if feature.case_sensitive else lowered)
        if match:
            found[feature.name] = match.group(0).strip(" ,.?") or match.group(0)
    return found


def feature_matrix(texts: list[str]) -> np.ndarray:
    """Binary presence matrix, shape ``(len(texts), len(FEATURES))``, columns in :data:`FEATURE_NAMES` order."""
    matrix = np.zeros((len(texts), len(FEATURES)), dtype=np.float32)
    index = {name: column for column, name in enumerate(FEATURE_NAMES)}
    for row, text in enumerate(texts):
        for name in find_features(text):
            matrix[row, index[name]] = 1.0
    return matrix
