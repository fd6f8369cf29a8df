"""Officer speech acts: what an utterance does (greets, gives the reason for the stop, commands, threatens ...).

Rules, because for these acts rules are right: each act is a small set of phrasings that trainers and the studies
name explicitly (Voigt et al. 2017; Prabhakaran et al. 2018; Rho et al. 2023; Camp et al. 2024), every detection can
show the words that triggered it, and a department can read and extend the list. Where an act is also a respect
marker, the marker's pattern is reused (one definition, two uses). Precision and recall per act are measured on a
labelled set kept apart from the rules (``models/acts/eval.csv``; numbers in ``models/acts/CARD.md``).

Example
-------
>>> sorted(detect_acts("Good evening, sir. Your tail light is out."))
['formal_title', 'greeting', 'reason_for_stop']
>>> detect_acts("Get out of the car or I'll drag you out, dude.")["threat"]
"or i'll"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from models.respect.features import FEATURES, sentences

ACTS_VERSION = "acts-rules-2"  # bump when a pattern changes, so scores name the rules that made them
_MARKERS = {feature.name: feature for feature in FEATURES}


@dataclass(frozen=True)
class Act:
    """One speech act and how it is found."""

    name: str  # column suffix: ``act_<name>``
    description: str  # what counts, for the model card and the review UI
    polarity: int  # +1 a procedural-justice act, -1 an escalating or disrespectful one, 0 neutral procedure
    markers: tuple[str, ...] = ()  # respect markers (models.respect.features) that count as this act
    pattern: str | None = None  # further phrasings, searched in the lower-cased utterance
    start_pattern: str | None = None  # phrasings that count only at the start of a sentence


_DOCUMENTS = r"(?:license|licence|registration|insurance|id|identification)"

ACTS: tuple[Act, ...] = (
    Act(
        "greeting",
        "opening salutation",
        +1,
        ("greeting",),
        r"\bhow(?:'s| is) it going\b|\bhow are you(?: doing)?\b|\bwhat'?s up\b",
        r"(?:good )?(?:morning|afternoon|evening)\b",
    ),
    Act(
        "introduction",
        "the officer gives name, rank or agency",
        +1,
        ("introduction",),
        r"\bwith the \w+ (?:police|sheriff)",
    ),
    Act(
        "reason_for_stop",
        "states why the person was stopped",
        +1,
        (),
        r"\breason (?:for|i|we|that i|why i)\b.{0,20}\b(?:stop|stopped|pulled|stopping)\b"
        r"|\b(?:stopped|pulled|stopping|pulling) you(?: over)?(?: today| tonight| here)? (?:for|because|since)\b"
        r"|\bthat'?s why (?:i|we) (?:stopped|pulled|approached)\b"
        r"|\byou (?:were|was) (?:going|doing|speeding|driving|weaving|swerving|drifting)\b"
        r"|\b(?:ran|run|running|rolled|rolling)(?: through)? (?:a|the|that) (?:red|stop|light)"
        r"|\byour \w*(?: \w+)? (?:light|lights|tags?|registration|plates?|sticker|inspection)\b.{0,30}"
        r"\b(?:out|expired|broken|missing|suspended|not working)\b"
        r"|\b(?:reported|came back) stolen\b|\bclocked you\b|\bin a \w+(?:[- ]\w+)? (?:mile )?zone\b",
    ),
    Act(
        "explanation",
        "explains a decision, a procedure or what happens next",
        +1,
        ("reason",),
        r"\bwhat'?s (?:going to|gonna) happen\b"
        r"|\bi'?m (?:going to|gonna) (?:write|give|issue|run|check|explain|pat|let)"
        r"|\byou can (?:pay|contest|fight|take care of)\b|\b(?:i|we) (?:have|need) to (?:check|run|write|verify)\b"
        r"|\bthat means\b|\blet me explain\b|\bit'?ll be (?:just )?a (?:few|couple)\b|\bso (?:i|we) can'?t\b",
    ),
    Act(
        "safety_concern",
        "concern for the person's safety or wellbeing",
        +1,
        ("safety",),
        r"\b(?:is|was) (?:any|every)(?:body|one) (?:hurt|ok|okay|alright|all right)\b|\bbuckled\b|\bcheck on you\b"
        r"|\bget home safe",
    ),
    Act(
        "reassurance",
        "reassures: no trouble, nothing serious, won't take long",
        +1,
        ("reassurance",),
        r"\bnot in (?:any )?trouble\b|\bnothing serious\b|\bwon'?t take long\b|\bhappens to everyone\b"
        r"|\bfree to go\b|\bcame back (?:fine|clean|clear)\b|\bfix-it ticket\b|\bjust a few minutes\b",
    ),
    Act("formal_title", "sir, ma'am, Mr./Ms. + name", +1, ("formal_title", "last_name")),
    Act("gratitude", "thanks", +1, ("gratitude",)),
    Act("apology", "apologises or excuses the imposition", +1, ("apology",)),
    Act(
        "command",
        "directs the person to act (imperative, 'I need you to', hands on the wheel)",
        -1,
        ("command", "hands_on_wheel"),
        r"\b(?:i|i'?m going to) need you to\b|\byou need to (?:step|get|stay|put|turn|keep|calm)\b"
        r"|\bwould you mind (?:stepping|turning|getting|rolling|putting|keeping)\b"
        r"|\b(?:could|would|can) you (?:please )?(?:turn|roll|step|put|keep|get|shut)\b.{0,40}\bfor me\b",
    ),
    Act(
        "threat",
        "a threatened consequence",
        -1,
        ("threat",),
        r"\b(?:keep it up|do that|try that|move|try it)(?: again| one more time)? and (?:you|i|see)\b"
        r"|\byou'?re (?:getting|going to get|gonna get) (?:tased|tazed|shot|arrested|hurt|locked up)\b"
        r"|\b(?:i'?ll|i will|i'?m going to|i'?m gonna) (?:drop|shoot|tase|taze|arrest|hurt|drag|break|put you)\b"
        r"|\bor else\b|\byou'?re going to jail\b|\b(?:you move|move again) and\b",
    ),
    Act("profanity", "swearing", -1, ("profanity",), r"\b\w*(?:fuck|shit)\w*\b"),
    Act("insult", "insults the person", -1, ("insult",), r"\b(?:genius|dumbass|jackass|punk|scumbag)\b"),
    Act("informal_title", "dude, bro, man, buddy, boss", -1, ("informal_title",), r"\bhey,? man\b"),
    Act(
        "accusation",
        "asserts the person did wrong or is lying",
        -1,
        (),
        r"\byou'?(?:re| are) lying\b|\bdon'?t lie\b|\byou(?:'ve| have) been (?:drinking|smoking|using)\b"
        r"|\bi (?:know|saw|watched|smell|can tell)\b.{0,15}\b(?:you|there'?s|drugs|weed|alcohol)\b"
        r"|\byou (?:stole|ran|hit|took|threw|lied|were speeding|were texting)\b|\byou know (?:you|it|what you)\b"
        r"|\bthere'?s (?:weed|drugs|a gun|alcohol)\b",
    ),
    Act(
        "search_request",
        "asks to or announces a search or pat-down, or asks about contraband",
        -1,
        (),
        r"\bsearch\b|\bpat (?:you )?down\b|\b(?:take|have) a look (?:in|inside|around|through|at)\b"
        r"|\blook (?:in|inside|through) (?:your|the)\b|\bopen (?:the|your) trunk\b"
        r"|\banything (?:in (?:the|your) (?:car|vehicle)|on you|illegal)\b|\b(?:weapons|drugs|guns)\b.{0,20}\?",
    ),
    Act(
        "documentation_request",
        "asks for licence, registration, insurance, ID or identifying details",
        0,
        (),
        rf"\b(?:can|may|could) i (?:see|get|have)\b.{{0,30}}\b{_DOCUMENTS}"
        rf"|\b(?:i'?ll|i) need (?:your|to see|some)\b.{{0,20}}\b{_DOCUMENTS}"
        rf"|\bdo you have (?:any |your )?{_DOCUMENTS}"
        r"|\b(?:give|hand|show) me (?:your|the) (?:license|licence|registration|insurance|id)"
        r"|\bspell your (?:last |first )?name\b|\bdate of birth\b|\bwhat'?s your name\b"
        r"|\b(?:license|licence|registration|insurance)\b[^.!]*\?",
        r"(?:driver'?s )?(?:license|licence|registration|proof of insurance|id)\b",
    ),
)
ACT_NAMES: tuple[str, ...] = tuple(act.name for act in ACTS)
_COMPILED = {
    act.name: (
        re.compile(act.pattern, re.IGNORECASE) if act.pattern else None,
        re.compile(rf"^(?:{act.start_pattern})", re.IGNORECASE) if act.start_pattern else None,
    )
    for act in ACTS
}


def detect_acts(text: str, markers: dict[str, str] | None = None) -> dict[str, str]:
    """The acts in ``text``, each with the words that triggered it.

    Parameters
    ----------
    text
        One utterance.
    markers
        The respect markers already found in ``text`` (:func:`models.respect.features.find_features`), to avoid
        matching them twice; found here when not given.
    """
    if markers is None:
        from models.respect.features import find_features

        markers = find_features(text)
    lowered = text.lower()
    starts = sentences(text)
    found: dict[str, str] = {}
    for act in ACTS:
        words = next((markers[name] for name in act.markers if name in markers), None)
        pattern, start_pattern = _COMPILED[act.name]
        if words is None and pattern is not None and (match := pattern.search(lowered)):
            words = match.group(0)
        if words is None and start_pattern is not None:
            words = next((m.group(0) for s in starts if (m := start_pattern.search(s))), None)
        if words is not None:
            found[act.name] = words.strip(" ,.?!") or words
    return found
