"""PII redaction for police-stop transcripts: names, street addresses, phone numbers, licence plates, dates of birth,
social security numbers and email addresses, each replaced by a typed placeholder (``[PERSON]``, ``[ADDRESS]``,
``[PHONE]``, ``[PLATE]``, ``[DOB]``, ``[SSN]``, ``[EMAIL]``).

Everything runs offline and on the CPU. presidio-analyzer's :class:`~presidio_analyzer.AnalyzerEngine` orchestrates
the recognizers and raises the score of weak candidates that have context words nearby (in the utterance, or in the
utterance before it: "What's your date of birth?" / "March third, nineteen ninety."). It runs on a blank spaCy English
pipeline (tokens and stop words only: no trained model is needed or loaded). The recognizers:

- PHONE: presidio's ``PhoneRecognizer`` (``phonenumbers``) for written numbers, and runs of 10 (or 7, with context)
  digits for spoken ones ("five one oh, three two two, ...").
- SSN: presidio's ``UsSsnRecognizer`` for written numbers, runs of 9 spoken digits, and the last four with context.
- EMAIL: presidio's ``EmailRecognizer`` with an offline public-suffix list (see :class:`OfflineEmailRecognizer`), and
  spoken addresses ("d underscore ramos at hotmail dot com").
- DOB: dates (numeric, spoken, with month names) with birth context; full dates whose year is a plausible birth year
  count without it.
- PLATE: US plate shapes (``7ABC123``, ``ABC-1234``) and spelled plates, letters as letters or in the APCO/NATO
  alphabets ("six Tom Ocean Mary four four two"), with plate context for the weaker shapes.
- ADDRESS: ``usaddress`` parses the words after a house number; a street name with a street type (or a place after
  it) is an address, extended over the unit, city, state and ZIP code said with it. PO boxes by pattern.
- PERSON: no trained NER model is available offline, so names come from what whisper transcripts show: capitalised
  words that are not common words, places, brands or titles, names after titles and honorifics ("Officer Chen",
  "Mr. Pham"), after introductions ("my name is ..."), spelled names ("N-G-U-Y-E-N"), and answers to "what's your
  name?".

Spoken numbers are rewritten as digits before recognition ("nineteen ninety" -> "19 90", "oh four" -> "04", and
spelled plates' phonetic words -> letters); found spans are mapped back to the original text. The labelled evaluation
and its numbers are in ``bwc/research/pii_eval/`` (``CARD.md``).

Example
-------
>>> redactor = Redactor()
>>> redactor.redact("I'm Officer Chen. Call 510-555-2341 or email jsmith87@gmail.com.").text
"I'm Officer [PERSON]. Call [PHONE] or email [EMAIL]."
>>> [span.type for span in redactor.redact("Running plate 7ABC123.").spans]
['PLATE']
>>> redact("You were doing forty five in a twenty five.").text
'You were doing forty five in a twenty five.'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

import spacy
import tldextract
import usaddress
from presidio_analyzer import (
    AnalysisExplanation,
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
)
from presidio_analyzer import RecognizerResult as Result
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer, PhoneRecognizer, UsSsnRecognizer
from spacy.tokens import Doc

REDACTION_VERSION = "pii-rules-1"  # change when the rules change: exports record it
PII_TYPES = ("PERSON", "ADDRESS", "PHONE", "PLATE", "DOB", "SSN", "EMAIL")
PLACEHOLDERS = {kind: f"[{kind}]" for kind in PII_TYPES}
SCORE_THRESHOLD = 0.4  # a candidate is PII at or above this score (after context)
CONTEXT_BOOST = 0.35  # added to a candidate's score when a context word is near it
CONTEXT_WORDS_BEFORE = 6  # non-stop words before a candidate searched for context words
CONTEXT_WORDS_AFTER = 4  # ... and after it ("December 2nd, 1984, my date of birth")
# When spans of different types overlap, the higher score wins; on a tie, the earlier type here.
TYPE_PRIORITY = ("EMAIL", "SSN", "PHONE", "DOB", "PLATE", "ADDRESS", "PERSON")
MIN_BIRTH_AGE = 10  # a full date whose year is at least this many years ago may be a date of birth without context
MAX_BIRTH_AGE = 110  # ... and at most this many

# -- spoken numbers ----------------------------------------------------------------------------------------------
UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
ZEROS = ("zero", "oh")
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
    "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14, "fifteenth": 15,
    "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december",
)  # fmt: skip
MONTH_ABBREVIATIONS = ("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec")
# Spelling alphabets: police radio (APCO) and NATO. Turned into letters only inside runs of letters and digits.
PHONETIC = {
    "adam": "A", "boy": "B", "charles": "C", "david": "D", "edward": "E", "frank": "F", "george": "G", "henry": "H",
    "ida": "I", "john": "J", "king": "K", "lincoln": "L", "mary": "M", "nora": "N", "ocean": "O", "paul": "P",
    "queen": "Q", "robert": "R", "sam": "S", "tom": "T", "union": "U", "victor": "V", "william": "W", "x-ray": "X",
    "xray": "X", "young": "Y", "zebra": "Z", "alpha": "A", "alfa": "A", "bravo": "B", "charlie": "C", "delta": "D",
    "echo": "E", "foxtrot": "F", "golf": "G", "hotel": "H", "india": "I", "juliet": "J", "juliett": "J", "kilo": "K",
    "lima": "L", "mike": "M", "november": "N", "oscar": "O", "papa": "P", "quebec": "Q", "romeo": "R",
    "sierra": "S", "tango": "T", "uniform": "U", "whiskey": "W", "yankee": "Y", "zulu": "Z",
}  # fmt: skip

# -- context words (presidio matches them as substrings of the lower-cased words near a candidate) -----------------
PERSON_CONTEXT = ["name", "spell"]
DOB_CONTEXT = ["birth", "born", "dob", "d.o.b", "bday", "b-day"]
PLATE_CONTEXT = ["plate", "tag", "registration", "run"]  # "run" also matches "running"; "10-28": PlateRecognizer
PHONE_CONTEXT = ["phone", "number", "cell", "call", "reach", "text", "contact"]
SSN_CONTEXT = ["social", "ssn", "security"]
EMAIL_CONTEXT = ["email", "e-mail"]


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# -- names --------------------------------------------------------------------------------------------------------
TITLES = {
    "mr", "mrs", "ms", "miss", "mister", "dr", "doctor", "officer", "deputy", "sergeant", "sgt", "detective", "det",
    "lieutenant", "lt", "captain", "capt", "corporal", "cpl", "trooper", "agent", "sheriff", "chief", "commander",
    "judge", "professor", "prof", "coach", "pastor", "reverend", "rev", "father", "madam", "ofc", "investigator",
}  # fmt: skip
# Words after which a capitalised word is a name even when it is also a common word ("my name is Will").
NAME_INTRODUCTIONS = (
    ("name", "is"), ("name's",), ("name", "was"), ("call", "me"), ("calls", "me"), ("goes", "by"), ("named",),
    ("called",),
)  # fmt: skip
# Verbs whose subject at the start of a sentence is a person ("Rasheed said I could take it").
PERSON_VERBS = {
    "said", "says", "told", "tells", "lent", "lends", "let", "lets", "gave", "gives", "knows", "owns", "texted",
    "called", "drove", "borrowed", "asked",
}  # fmt: skip
RELATIONS = {
    "mom", "mother", "dad", "father", "brother", "sister", "cousin", "wife", "husband", "son", "daughter", "friend",
    "boyfriend", "girlfriend", "uncle", "aunt", "auntie", "grandma", "grandmother", "grandpa", "grandfather", "boss",
    "coworker", "roommate", "neighbor", "partner", "lawyer", "fiance", "fiancee", "nephew", "niece", "kid", "baby",
    "stepdad", "stepmom", "supervisor", "manager",
}  # fmt: skip
# Prepositions after which a capitalised word is a place ("on Foothill", "in Fresno", "near Lake Merritt").
PLACE_PREPOSITIONS = {"on", "in", "at", "near", "onto", "into", "toward", "towards", "off", "across", "past", "via"}
# First words of place names: what follows them is a place ("San Jose", "Santa Rita", "Los Angeles").
PLACE_PREFIXES = {"san", "santa", "los", "las", "el", "la", "del", "fort", "mount", "mt", "lake", "port", "saint"}
# Nouns that make the capitalised words before them a place or a business ("Allen Temple", "Highland Hospital").
PLACE_NOUNS = {
    "temple", "church", "hospital", "school", "academy", "clinic", "library", "college", "university", "motors",
    "towing", "cafe", "restaurant", "grill", "market", "plaza", "mall", "station", "elementary", "auto", "body",
    "liquor", "liquors", "store", "shop", "bakery", "pharmacy", "dental", "medical", "garage",
}  # fmt: skip
NAME_PARTICLES = {"de", "la", "del", "van", "von", "da", "di", "le", "bin", "al", "el", "st"}
# Capitalised words that are not names: openers and interjections, titles, calendar, places, agencies, brands, cars.
NOT_NAMES = _word_set(
    """
    okay ok yeah yes yep yup nope no nah hey hi hello uh um uhm hmm oh ah aw wow well alright right sure please
    thanks thank sorry excuse look listen wait stop hold copy roger affirmative negative dude bro man buddy boss guys
    folks honestly seriously actually anyway basically obviously apparently unfortunately correct exactly absolutely
    definitely fine great cool perfect good understood morning evening afternoon night goodnight damn dang god lord
    jesus christ amen hell shit fuck fucking bullshit whatever congratulations happy welcome bye goodbye cheers
    sir ma'am maam madam mister miss missus ms mr mrs dr doctor officer officers deputy sergeant sgt detective
    lieutenant captain corporal trooper agent sheriff chief commander judge professor coach pastor reverend
    dispatch unit units code plate plates tag tags social phone email address license registration insurance dob
    ssn id suspect subject driver passenger owner vehicle car cars partial tow traffic patrol police department pd
    station precinct division court courthouse county city state highway freeway interstate hall justice jail
    monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
    september october november december christmas thanksgiving halloween easter eve new year years
    english spanish american americans mexican chinese vietnamese korean japanese filipino indian african black
    white latino latina hispanic asian french german italian russian arabic muslim christian catholic
    street st avenue ave boulevard blvd road rd drive dr lane ln way court ct place pl parkway pkwy terrace circle
    square plaza highway hwy expressway alley bridge tunnel exit ramp lake park mall center centre market church
    bank hospital clinic school elementary middle high college university campus library airport port marina
    pier beach bay area hills valley heights district downtown uptown north south east west northbound
    southbound eastbound westbound northeast northwest southeast southwest
    alabama alaska arizona arkansas california colorado connecticut delaware florida georgia hawaii idaho illinois
    indiana iowa kansas kentucky louisiana maine maryland massachusetts michigan minnesota mississippi missouri
    montana nebraska nevada hampshire jersey mexico york carolina dakota ohio oklahoma oregon pennsylvania rhode
    island tennessee texas utah vermont virginia washington wisconsin wyoming america usa
    oakland berkeley alameda hayward fremont richmond emeryville san santa los las sacramento fresno modesto
    stockton reno vegas angeles diego portland seattle chicago houston dallas
    phoenix denver atlanta miami boston philadelphia detroit pleasanton livermore concord walnut creek vallejo
    daly pittsburg antioch dublin union castro piedmont orinda lafayette martinez albany merritt tahoe brooklyn
    canada france china japan korea vietnam philippines germany italy spain england ireland guatemala salvador
    honduras nicaragua cuba brazil russia ukraine iran iraq afghanistan pakistan nigeria ethiopia eritrea somalia
    jamaica haiti peru colombia venezuela chile argentina europe asia africa
    walmart target safeway costco walgreens cvs chevron shell arco mcdonald's mcdonalds starbucks uber lyft
    doordash amazon google apple facebook instagram tiktok youtube netflix gmail yahoo hotmail outlook icloud aol
    comcast kaiser sutter verizon sprint tmobile denny's dennys subway enterprise hertz geico progressive
    honda toyota ford chevy chevrolet nissan dodge jeep tesla bmw mercedes benz kia hyundai subaru volkswagen vw
    mazda lexus acura audi buick cadillac chrysler gmc ram infiniti mitsubishi volvo porsche civic accord camry
    corolla prius altima sentra maxima impala malibu silverado tahoe suburban explorer escape focus fusion
    mustang charger challenger durango caravan tacoma tundra highlander odyssey pilot elantra sonata optima
    outback forester jetta model pickup sedan suv truck van minivan
    warriors raiders giants niners athletics a's bart muni ac transit dmv chp fbi ice
    yo ay aye ayy ugh psst shh huh mhm
    i i'm i'll i've i'd mom dad mama papa grandma grandpa ma pops tv internet bluetooth facetime wifi
    """
)
# Openers that end with a comma but are not vocatives ("Social, 601 52 7738"): none of these is a name.
NOT_VOCATIVES = NOT_NAMES | {"date", "birthday", "number", "cell", "here", "now", "again", "also", "plus", "so"}

# -- addresses ----------------------------------------------------------------------------------------------------
STREET_TYPES = _word_set(
    """
    street st avenue ave av boulevard blvd road rd drive dr lane ln way court ct place pl parkway pkwy terrace ter
    circle cir square sq plaza plz highway hwy expressway expy alley aly loop trail trl crescent path walk row
    point pt run pike center ctr commons common mall heights hts park
    """
)
STATE_NAMES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|Hawaii|Idaho|Illinois|"
    "Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan|Minnesota|Mississippi|Missouri|"
    "Montana|Nebraska|Nevada|New Hampshire|New Jersey|New Mexico|New York|North Carolina|North Dakota|Ohio|"
    "Oklahoma|Oregon|Pennsylvania|Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|"
    "Washington|West Virginia|Wisconsin|Wyoming|[A-Z]{2}"
)
ADDRESS_TAIL_WORDS = 14  # words after a house number handed to usaddress


@dataclass(frozen=True)
class PiiSpan:
    """One piece of PII found in a text."""

    start: int  # character offset in the original text
    end: int  # character offset one past its end
    type: str  # one of PII_TYPES
    score: float  # presidio score after context, SCORE_THRESHOLD..1
    recognizer: str  # the recognizer that found it


@dataclass(frozen=True)
class RedactedText:
    """A text with its PII replaced by typed placeholders."""

    text: str  # the redacted text
    spans: tuple[PiiSpan, ...]  # what was replaced, in the original text's offsets, in order

    def counts(self) -> dict[str, int]:
        """Spans per PII type."""
        counts = dict.fromkeys(PII_TYPES, 0)
        for span in self.spans:
            counts[span.type] += 1
        return counts


@dataclass(frozen=True)
class Normalized:
    """A text with spoken numbers and spelled letters rewritten, and the way back to the original's offsets."""

    text: str  # the rewritten text
    starts: tuple[int, ...]  # per character of ``text``: offset in the original where it begins
    ends: tuple[int, ...]  # per character of ``text``: offset in the original one past where it ends

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        return self.starts[start], self.ends[end - 1]


# ------------------------------------------------------------------------------------------------------------------
# Normalisation of spoken numbers and spelled letters
# ------------------------------------------------------------------------------------------------------------------
_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*|\d+|[^\sA-Za-z\d]")
_MONTH_WORDS = set(MONTHS) | set(MONTH_ABBREVIATIONS)


@dataclass(frozen=True)
class _Token:
    start: int  # offset in the text
    end: int
    text: str
    gap: str  # the text between the previous token and this one


def _tokens(text: str) -> list[_Token]:
    tokens, previous = [], 0
    for match in _WORD.finditer(text):
        tokens.append(_Token(match.start(), match.end(), match.group(), text[previous : match.start()]))
        previous = match.end()
    return tokens


def _number_kind(word: str) -> tuple[str, int] | None:
    """("unit"|"teen"|"tens"|"compound"|"zero"|"hundred"|"thousand"|"ordinal", value) for a number word."""
    lower = word.lower()
    if lower in UNITS:
        return "unit", UNITS[lower]
    if lower in TEENS:
        return "teen", TEENS[lower]
    if lower in TENS:
        return "tens", TENS[lower]
    if lower in ZEROS:
        return "zero", 0
    if lower == "hundred":
        return "hundred", 100
    if lower == "thousand":
        return "thousand", 1000
    if lower in ORDINALS:
        return "ordinal", ORDINALS[lower]
    parts = lower.split("-")
    if len(parts) == 2 and parts[0] in TENS:
        if parts[1] in UNITS:
            return "compound", TENS[parts[0]] + UNITS[parts[1]]
        if parts[1] in ORDINALS and ORDINALS[parts[1]] < 10:
            return "compound_ordinal", TENS[parts[0]] + ORDINALS[parts[1]]
    return None


def _ordinal_suffix(value: int) -> str:
    if value % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(value % 10, "th")


def _near_month(tokens: list[_Token], index: int, width: int) -> bool:
    """Whether a month name is just before ``tokens[index]`` (skipping "the" and commas) or "of <month>" follows."""
    before = index - 1
    while before >= 0 and tokens[before].text.lower() in ("the", ","):
        before -= 1
    if before >= 0 and tokens[before].text.lower() in _MONTH_WORDS:
        return True
    after = index + width
    return (
        after + 1 < len(tokens)
        and tokens[after].text.lower() == "of"
        and tokens[after + 1].text.lower() in _MONTH_WORDS
    )


def _phrase(tokens: list[_Token], kinds: list[tuple[str, int] | None], index: int) -> tuple[int, str] | None:
    """The spoken number phrase starting at ``tokens[index]``: (tokens it spans, digits), or None."""

    def follows(offset: int, *wanted: str) -> bool:
        position = index + offset
        kind = kinds[position] if position < len(tokens) else None
        return kind is not None and kind[0] in wanted and tokens[position].gap.strip() == ""

    def value_at(offset: int) -> int:
        kind = kinds[index + offset]
        assert kind is not None
        return kind[1]

    name, value = kinds[index] or ("", 0)
    width = 1
    if name == "zero":
        # "oh" is a digit only next to other numbers ("two oh four", "oh four"), never alone ("Oh, okay").
        if follows(1, "unit"):
            return 2, f"0{value_at(1)}"
        beside_number = index > 0 and kinds[index - 1] is not None and tokens[index].gap.strip() == ""
        if follows(1, "zero", "teen", "tens", "compound") or beside_number or tokens[index].text.lower() == "zero":
            return 1, "0"
        return None
    if name == "ordinal":
        # Only next to a month: "first name" and "wait a second" stay words.
        return (1, f"{value}{_ordinal_suffix(value)}") if _near_month(tokens, index, 1) else None
    if name == "compound_ordinal":
        return 1, f"{value}{_ordinal_suffix(value)}"
    if name == "tens" and follows(1, "ordinal") and value_at(1) < 10:
        total = value + value_at(1)
        return 2, f"{total}{_ordinal_suffix(total)}"
    if name == "tens" and follows(1, "unit"):
        value, width = value + value_at(1), 2
    if name in ("unit", "teen", "tens", "compound") and follows(width, "hundred"):
        value, width = value * 100, width + 1
    elif name == "unit" and follows(width, "thousand"):
        value, width = value * 1000, width + 1
        if follows(width, "unit") and follows(width + 1, "hundred"):
            value, width = value + value_at(width) * 100, width + 2
    elif name in ("hundred", "thousand"):
        pass  # "a hundred"
    else:
        return width, str(value)
    # The rest of "four hundred twelve", "two thousand three", "two thousand twenty one".
    if follows(width, "teen", "compound", "unit"):
        value, width = value + value_at(width), width + 1
    elif follows(width, "tens"):
        value, width = value + value_at(width), width + 1
        if follows(width, "unit"):
            value, width = value + value_at(width), width + 1
    return width, str(value)


def _number_edits(tokens: list[_Token]) -> list[tuple[int, int, str]]:
    """(start, end, digits) for each spoken number phrase: "nineteen ninety" -> two phrases, "19" and "90"."""
    kinds = [_number_kind(token.text) for token in tokens]
    edits: list[tuple[int, int, str]] = []
    index = 0
    while index < len(tokens):
        phrase = _phrase(tokens, kinds, index) if kinds[index] is not None else None
        if phrase is None:
            index += 1
            continue
        width, digits = phrase
        edits.append((tokens[index].start, tokens[index + width - 1].end, digits))
        index += width
    return edits


def _letter_edits(tokens: list[_Token], numbers: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Phonetic words inside runs of letters and digits, as letters: "7 Adam Boy Charles 1 2 3" -> "7 A B C 1 2 3"."""
    in_number = {
        index: digits
        for index, token in enumerate(tokens)
        for start, end, digits in numbers
        if start <= token.start < end
    }

    def kind(index: int) -> str | None:
        token = tokens[index]
        if index in in_number or token.text.isdigit():
            return "digit"
        if len(token.text) == 1 and token.text.isupper():
            return "letter"
        if token.text[:1].isupper() and token.text.lower() in PHONETIC:
            # "November 1st" is a date: a month name before a day is no spelling-alphabet letter.
            day_after = (
                index + 1 < len(tokens) and tokens[index + 1].text.isdigit() and len(tokens[index + 1].text) <= 2
            )
            return None if token.text.lower() in _MONTH_WORDS and day_after else "phonetic"
        return None

    edits: list[tuple[int, int, str]] = []
    index = 0
    while index < len(tokens):
        if kind(index) is None:
            index += 1
            continue
        run = [index]
        while run[-1] + 1 < len(tokens) and kind(run[-1] + 1) is not None and tokens[run[-1] + 1].gap in (" ", "-"):
            run.append(run[-1] + 1)
        kinds = [kind(i) for i in run]
        lettered = kinds.count("phonetic") + kinds.count("letter")
        single_digits = all(
            len(in_number.get(i, tokens[i].text)) == 1 for i, k in zip(run, kinds, strict=True) if k == "digit"
        )
        # "7 Henry" (a partial plate) but not "8800 Golf Links Road": one phonetic word only beside single digits.
        if "digit" in kinds and "phonetic" in kinds and (lettered >= 2 or single_digits):
            edits += [
                (tokens[i].start, tokens[i].end, PHONETIC[tokens[i].text.lower()]) for i in run if kind(i) == "phonetic"
            ]
        index = run[-1] + 1
    return edits


def normalize(text: str) -> Normalized:
    """``text`` with spoken numbers as digits and phonetic letters inside plate-like runs as letters.

    >>> normalize("March third, nineteen ninety").text
    'March 3rd, 19 90'
    >>> normalize("five one oh, three two two, eight eight four one").text
    '5 1 0, 3 2 2, 8 8 4 1'
    >>> normalize("Running six Tom Ocean Mary four four two").text
    'Running 6 T O M 4 4 2'
    >>> normalized = normalize("fourteen twenty-two Elm Street")
    >>> normalized.text, normalized.to_original(0, 5)
    ('14 22 Elm Street', (0, 19))
    """
    tokens = _tokens(text)
    numbers = _number_edits(tokens)
    edits = sorted(numbers + _letter_edits(tokens, numbers))
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    for start, end, replacement in edits:
        pieces.append(text[position:start])
        starts.extend(range(position, start))
        ends.extend(range(position + 1, start + 1))
        pieces.append(replacement)
        starts.extend([start] * len(replacement))
        ends.extend([end] * len(replacement))
        position = end
    pieces.append(text[position:])
    starts.extend(range(position, len(text)))
    ends.extend(range(position + 1, len(text) + 1))
    return Normalized("".join(pieces), tuple(starts), tuple(ends))


# ------------------------------------------------------------------------------------------------------------------
# Recognizers
# ------------------------------------------------------------------------------------------------------------------
def _result(recognizer: EntityRecognizer, kind: str, start: int, end: int, score: float) -> Result:
    return Result(
        entity_type=kind,
        start=start,
        end=end,
        score=score,
        analysis_explanation=AnalysisExplanation(recognizer.name, score),
        recognition_metadata={
            Result.RECOGNIZER_NAME_KEY: recognizer.name,
            Result.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
        },
    )


_NAME_TOKEN = re.compile(r"[A-Za-z][A-Za-z'’]*(?:-[A-Za-z][A-Za-z'’]*)*|\d\w*|[^\w\s]")
_SPELLED = re.compile(r"[A-Z](?:-[A-Z]){2,}")
# Words whose period ends no sentence.
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "sgt", "lt", "capt", "det", "cpl", "ofc", "prof", "rev", "no", "ave",
    "blvd", "rd", "apt", "ste", "mt",
}  # fmt: skip
_WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
# Capitalised words a name never runs into ("Chen Street" is no name; "Jamal Washington", "Jessica Park" are).
_NEVER_IN_NAME = _WEEKDAYS | TITLES | {
    "street", "st", "avenue", "ave", "av", "boulevard", "blvd", "road", "rd", "drive", "parkway", "pkwy", "highway",
    "hwy", "expressway", "expy", "alley", "terrace", "plaza", "police", "department", "pd", "sheriff", "sheriff's",
    "county", "city", "station", "hospital", "school", "patrol", "unit", "dispatch", "i", "i'm", "i'll", "okay", "ok",
    "sir", "ma'am",
}  # fmt: skip


class PersonRecognizer(EntityRecognizer):
    """Person names in whisper-style transcripts, without a trained NER model (see the module docstring)."""

    STRONG = 0.85  # after a title or an introduction
    NAME = 0.6  # a capitalised word that is no common word, place or brand, where a name can stand
    WEAK = 0.15  # a capitalised word opening a sentence: a name only when the context asks for one

    def __init__(self, stop_words: Iterable[str]) -> None:
        super().__init__(supported_entities=["PERSON"], name="bwc-person", context=PERSON_CONTEXT)
        self.stop_words = frozenset(stop_words)

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[Result]:
        words = _Words(text, self.stop_words)
        scores: dict[int, float] = {}
        for index in range(len(words)):
            score = self._score(words, index)
            if score:
                scores[index] = score
        results, consumed = [], -1
        for seed in sorted(scores):
            if seed <= consumed:
                continue
            end = words.name_end(seed)
            consumed = end
            around = words.plain[seed + 1 : end + 2]
            if any(word in PLACE_NOUNS for word in around) and scores[seed] < self.STRONG:
                continue  # "Allen Temple", "Highland Hospital"
            score = max(scores.get(index, 0.0) for index in range(seed, end + 1))
            last = words.text[end]
            stop = words.ends[end] - (len(last) - len(_without_possessive(last)))
            results.append(_result(self, "PERSON", words.starts[seed], stop, score))
        return results

    def _score(self, words: _Words, index: int) -> float:
        """How much the word at ``index`` looks like (the start of) a name; 0 when it does not."""
        word, plain = words.text[index], words.plain[index]
        if _SPELLED.fullmatch(word):
            return self.NAME  # "N-G-U-Y-E-N"
        if not words.capitalised[index]:
            return 0.0
        before = words.previous(index)
        after = index + 1
        follows_title = before >= 0 and words.plain[before] in TITLES
        if follows_title and plain not in self.stop_words and plain not in TITLES:
            return self.STRONG  # "Officer Park", "Mr. Pham"
        if words.after_introduction(index) and plain not in TITLES | {"i", "i'm"}:
            return self.STRONG  # "my name is Will"
        if not words.name_like(index) or words.radio_call_sign(index):
            return 0.0
        if words.is_place(index):
            return 0.0
        if not words.sentence_start(index):
            return self.NAME
        following = words.plain[after] if after < len(words) else ""
        if following == ",":
            return self.NAME if plain not in NOT_VOCATIVES else 0.0  # "Darnell, stay in the car."
        if after < len(words) and words.name_like(after):
            return self.NAME  # "Marcus Bell is ..."
        if following == "and" and after + 1 < len(words) and words.name_like(after + 1):
            return self.NAME  # "Devontae and Jalen were ..."
        noun_after = after < len(words) and words.text[after].isalpha() and words.text[after].islower()
        if words.possessive(index) and noun_after and following not in self.stop_words:
            return self.NAME  # "Tyler's car" (not "Birthday's the 9th")
        if following in PERSON_VERBS:
            return self.NAME  # "Rasheed said ..."
        if following in ("is", "was") and after + 2 < len(words):
            owner = words.plain[after + 1] in ("my", "his", "her", "our", "their", "the")
            if owner and words.plain[after + 2].split("-")[0] in RELATIONS | {"owner", "driver"}:
                return self.NAME  # "Grace is my mom."
        return self.WEAK


class _Words:
    """The words of a text, with what the name rules ask about them."""

    def __init__(self, text: str, stop_words: frozenset[str]) -> None:
        matches = list(_NAME_TOKEN.finditer(text))
        self.source = text
        self.text = [match.group() for match in matches]
        self.starts = [match.start() for match in matches]
        self.ends = [match.end() for match in matches]
        self.plain = [_without_possessive(word).lower() for word in self.text]
        # Capitalised words; not acronyms ("DMV") nor single letters (spelled plates), which name no one alone.
        self.capitalised = [word[0].isupper() and len(word) > 1 and not word.isupper() for word in self.text]
        self.stop_words = stop_words
        self._places: dict[int, bool] = {}

    def __len__(self) -> int:
        return len(self.text)

    def attached(self, index: int) -> bool:
        """Whether the word at ``index`` follows the previous one with no space ("Mr" + ".")."""
        return index > 0 and self.starts[index] == self.ends[index - 1]

    def abbreviation_period(self, index: int) -> bool:
        """Whether the "." at ``index`` ends an abbreviation or an initial ("Mr.", "Q."), not a sentence."""
        return (
            self.text[index] == "."
            and self.attached(index)
            and (
                self.plain[index - 1] in _ABBREVIATIONS
                or (len(self.text[index - 1]) == 1 and self.text[index - 1].isupper())
            )
        )

    def previous(self, index: int) -> int:
        """The word before ``index``, skipping the period of an abbreviation ("Mr. Pham")."""
        before = index - 1
        if before >= 1 and self.abbreviation_period(before):
            before -= 1
        return before

    def sentence_start(self, index: int) -> bool:
        before = index - 1
        if before < 0 or self.text[before] in ("!", "?", ":", '"', "“"):
            return True
        return self.text[before] == "." and not self.abbreviation_period(before)

    def possessive(self, index: int) -> bool:
        return self.text[index] != _without_possessive(self.text[index])

    def name_like(self, index: int) -> bool:
        plain = self.plain[index]
        return (
            self.capitalised[index]
            and plain not in self.stop_words
            and plain not in NOT_NAMES
            and plain not in TITLES
            and not self.is_place(index)
        )

    def is_place(self, index: int) -> bool:
        """After "on", "in", "at", "near", "the", "San" ..., or "and" after a place: a place, not a person."""
        if index in self._places:
            return self._places[index]
        before = self.previous(index)
        place = False
        if before >= 0 and not self.possessive(index):
            word = self.plain[before]
            place = (
                word in PLACE_PREPOSITIONS
                or word == "the"
                or self.plain[before] in PLACE_PREFIXES
                or (word in ("and", "&") and before >= 1 and self.capitalised[before - 1] and self.is_place(before - 1))
                or (before == index - 1 and self.capitalised[before] and self.is_place(before))
            )
        self._places[index] = place
        return place

    def radio_call_sign(self, index: int) -> bool:
        """A spelling-alphabet word beside a number ("7 Adam 12", "Lincoln 1"): a radio unit, not a person."""
        if self.plain[index] not in PHONETIC:
            return False
        return any(0 <= i < len(self) and self.text[i][0].isdigit() for i in (index - 1, index + 1))

    def after_introduction(self, index: int) -> bool:
        return any(
            index >= len(phrase) and tuple(self.plain[index - len(phrase) : index]) == phrase
            for phrase in NAME_INTRODUCTIONS
        )

    def name_end(self, index: int) -> int:
        """The last word of the name starting at ``index``: more capitalised words, initials, particles."""
        end = index
        while not self.possessive(end):
            step = end + 1
            if step >= len(self) or self.source[self.ends[end] : self.starts[step]] != " ":
                break
            word, plain = self.text[step], self.plain[step]
            if len(word) == 1 and word.isupper() and step + 2 < len(self) and self.text[step + 1] == ".":
                if self.capitalised[step + 2]:
                    end = step + 2  # "John Q. Public"
                    continue
                break
            if self.capitalised[step] and plain not in self.stop_words and plain not in _NEVER_IN_NAME:
                end = step
            elif plain in NAME_PARTICLES and step + 1 < len(self) and self.capitalised[step + 1]:
                end = step + 1  # "de la Cruz"
            else:
                break
        return end


def _without_possessive(word: str) -> str:
    return word[:-2] if word.lower().endswith(("'s", "’s")) and len(word) > 2 else word


_HOUSE_NUMBER = re.compile(r"(?<![\w$/:.,-])(\d{1,6}(?: \d{1,2}){0,3})(?= [A-Za-z])")
_PO_BOX = re.compile(r"\b(?:P\.? ?O\.?|Post Office) ?Box #?\d{1,6}\b", re.IGNORECASE)
_ORDINAL_NUMBER = re.compile(r"\d{1,3}(?:st|nd|rd|th)")
_STREET_FIRST = re.compile(
    r"\b(?:\d{1,3}(?:st|nd|rd|th)|[A-Z][a-z]+) (?:" + "|".join(sorted(STREET_TYPES, key=len, reverse=True)) + r")\.?,"
    r" (?:(?:number|no\.?|#) ?)?\d{3,5}\b",
    re.IGNORECASE,
)
_ADDRESS_TAIL = re.compile(
    r"(?:,? (?i:apartment|apt\.?|unit|suite|ste\.?|number|no\.?|#|space|room) ?#?"
    r"(?:\d{1,5}[A-Za-z]?|[A-Za-z]\d{0,3})\b)?"
    r"(?:, (?:[A-Z][a-z]+(?: [A-Z][a-z]+){0,2}))?"
    rf"(?:,? (?:{STATE_NAMES})\b)?"
    r"(?:,? \d{5}(?:-\d{4})?\b)?"
)
_ADDRESS_WORDS = re.compile(r"\b(?:live|lives|living|stay|stays|staying|address|resides?|moved|mail)\b", re.I)
_STREET_LABELS = {
    "StreetNamePreDirectional", "StreetNamePreModifier", "StreetNamePreType", "StreetName", "StreetNamePostType",
    "StreetNamePostDirectional",
}  # fmt: skip


class AddressRecognizer(EntityRecognizer):
    """Street addresses: a house number and the words after it, parsed by ``usaddress``; PO boxes by pattern."""

    WITH_TYPE = 0.85  # number, street name and street type ("1422 Elm Street")
    WITH_PLACE = 0.6  # number and street name followed by a city or state ("4021 Broadway, Oakland")
    STREET_FIRST = 0.5  # "88th Avenue, number 1540"

    def __init__(self) -> None:
        super().__init__(supported_entities=["ADDRESS"], name="bwc-address", context=["address", "live", "resid"])

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[Result]:
        results = []
        for match in _HOUSE_NUMBER.finditer(text):
            found = self._street(text, match)
            if found is not None:
                end, score = found
                end = self._tail(text, end)
                results.append(_result(self, "ADDRESS", match.start(), end, score))
        for match in _PO_BOX.finditer(text):
            results.append(_result(self, "ADDRESS", match.start(), self._tail(text, match.end()), self.WITH_TYPE))
        for match in _STREET_FIRST.finditer(text):
            results.append(_result(self, "ADDRESS", match.start(), match.end(), self.STREET_FIRST))
        return results

    @staticmethod
    def _tail(text: str, end: int) -> int:
        """Past the unit, city, state and ZIP code said right after a street address."""
        tail = _ADDRESS_TAIL.match(text, end)
        return tail.end() if tail else end

    @staticmethod
    def _street(text: str, match: re.Match[str]) -> tuple[int, float] | None:
        """(end offset, score) of the street address starting at a house number, or None."""
        digits = match.group(1).replace(" ", "")  # "14 22", from "fourteen twenty-two"
        rest = text[match.end() :]
        words = list(re.finditer(r"\S+", rest))[:ADDRESS_TAIL_WORDS]
        if not words:
            return None
        try:
            parsed = usaddress.parse(digits + " " + rest[: words[-1].end()])
        except Exception:  # usaddress raises on odd input; that is no address
            return None
        # usaddress labels "1 Embarcadero Center" a building: accept that too, the checks below are ours.
        if not parsed or parsed[0][1] not in ("AddressNumber", "BuildingName") or parsed[0][0].strip(",.") != digits:
            return None
        end, names, street_type = match.end(), 0, False
        for (word, label), position in zip(parsed[1:], words, strict=False):
            clean = word.strip(",.?!;:")
            if label not in _STREET_LABELS | {"BuildingName"} or street_type:
                break
            if not (clean[:1].isupper() or _ORDINAL_NUMBER.fullmatch(clean) or clean.isdigit()):
                break
            # The street type is the last word of the street ("Road" in "Old County Road", whatever usaddress
            # calls it); the words before it name the street.
            if names and clean.lower() in STREET_TYPES and label != "StreetName":
                street_type = True
            else:
                names += 1
            end = match.end() + position.start() + len(word.rstrip(",.?!;:"))
            if word != word.rstrip(",.?!;:"):
                break
        if names == 0:
            return None
        if street_type:
            return end, AddressRecognizer.WITH_TYPE
        # No street type ("4021 Broadway", "3005 MacArthur"): an address when a city, state, ZIP code or unit
        # follows, or when the speaker is talking about where someone lives.
        after = text[end:]
        place = re.match(rf",? (?:[A-Z][a-z]+(?: [A-Z][a-z]+)?, )?(?:{STATE_NAMES}\b|\d{{5}}\b)|, [A-Z][a-z]+", after)
        unit = re.match(r",? (?i:apartment|apt|unit|suite|number|no\.|#)", after)
        said = _ADDRESS_WORDS.search(text[: match.start()])
        return (end, AddressRecognizer.WITH_PLACE) if place or unit or said else None


_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
)
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:(?:19|20) ?\d{2}|'\d{2}|\d{2})"


class DateOfBirthRecognizer(PatternRecognizer):
    """Dates that are dates of birth: any date with birth context, and full dates in plausible birth years."""

    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern(
            "numeric date",
            r"(?<![\d/.-])(?:0?[1-9]|1[0-2])[/.-](?:0?[1-9]|[12]\d|3[01])[/.-](?:(?:19|20)\d{2}|\d{2})\b(?![/.-]\d)",
            0.3,
        ),
        Pattern(
            "spoken numeric date",
            r"(?<![\d,] ?)\b(?:0?[1-9]|1[0-2]),? (?:0?[1-9]|[12]\d|3[01]),? (?:(?:19|20) ?\d{2}|\d{2})\b(?!,? ?\d)",
            0.15,
        ),
        Pattern("spoken digits date", r"(?<![\d,] ?)\b\d{1,2}(?:,? \d{1,4}){1,5}\b(?!,? ?\d)", 0.15),
        Pattern("month day year", rf"\b{_MONTH},? (?:the )?{_DAY}\b(?:,? (?:of )?{_YEAR}\b)?", 0.15),
        Pattern("day of month", rf"\b(?:the )?{_DAY} of {_MONTH}(?:,? {_YEAR}\b)?", 0.15),
        Pattern("month year", rf"\b{_MONTH},? (?:of )?(?:19|20) ?\d{{2}}\b", 0.1),
        Pattern("year", r"\b(?:19|20) ?\d{2}\b|'\d{2}\b", 0.05),
        Pattern("year alone", r"^\W*\d{2}\W*$", 0.05),
        Pattern("born in year", r"(?<=\bborn (?:in |in the year )?)'?\d{2}\b", 0.3),
    ]

    def __init__(self) -> None:
        super().__init__(supported_entity="DOB", name="bwc-dob", patterns=self.PATTERNS, context=DOB_CONTEXT)

    def validate_result(self, pattern_text: str) -> bool | None:
        """True for a full date in a plausible year of birth, False for no date at all, else None (context decides)."""
        text = re.sub(r"\b(19|20) (\d{2})\b", r"\1\2", pattern_text)  # "19 90", from "nineteen ninety"
        numbers = re.findall(r"\d+", text)
        if re.search(_MONTH, text, re.IGNORECASE):
            if len(numbers) < 2:
                return None  # no year, or only a year: context decides
            return True if 1 <= int(numbers[0]) <= 31 and _plausible_birth_year(int(numbers[-1])) else None
        if len(numbers) == 1:
            return None  # a year alone
        if len(numbers) == 3 and len(numbers[0]) <= 2 and len(numbers[1]) <= 2:
            month, day, year = (int(number) for number in numbers)
            if not (1 <= month <= 12 and 1 <= day <= 31):
                return False
            written = re.search(r"\d[/.-]\d", text) is not None
            # Spoken numbers ("4 12 87") need birth context: they could be anything.
            return True if written and _plausible_birth_year(year) else None
        digits = "".join(numbers)  # said digit by digit: "0 1, 1 5, 2001"
        if len(digits) in (6, 8) and 1 <= int(digits[:2]) <= 12 and 1 <= int(digits[2:4]) <= 31:
            return None
        return False


def _plausible_birth_year(year: int) -> bool:
    today = datetime.now(UTC).year
    if year < 100:
        year += 2000 if year <= today % 100 else 1900
    return today - MAX_BIRTH_AGE <= year <= today - MIN_BIRTH_AGE


class PlateRecognizer(PatternRecognizer):
    """US licence plates: compact shapes ("7ABC123") alone, spaced and spelled ones with plate context."""

    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern("compact plate", r"(?<![\w-])(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{5,8}(?![\w-])", 0.3),
        Pattern("spaced plate", r"(?<![\w-])(?:[A-Z0-9]{1,5}[ -]){1,7}[A-Z0-9]{1,5}(?![\w-])", 0.15),
    ]
    CONTEXT_BEFORE = re.compile(r"(?:\b(?:plates?|tags?|registration|run|running)\b|\b10-28\b)[^.?!]{0,40}$", re.I)

    def __init__(self) -> None:
        super().__init__(
            supported_entity="PLATE",
            name="bwc-plate",
            patterns=self.PATTERNS,
            context=PLATE_CONTEXT,
            global_regex_flags=re.DOTALL | re.MULTILINE,  # case matters: plates are spelled in capitals
        )

    def invalidate_result(self, pattern_text: str) -> bool:
        characters = re.sub(r"[ -]", "", pattern_text)
        letters = sum(character.isalpha() for character in characters)
        digits = len(characters) - letters
        spaced = characters != pattern_text
        if spaced and letters == 1 and len(characters) > 2:
            return True  # "A 2015 Honda": one letter among numbers is a word, not a plate (partial plates aside)
        return not (2 <= len(characters) <= 8 and letters >= 1 and digits >= 1)

    def validate_result(self, pattern_text: str) -> bool | None:
        letters = sum(character.isalpha() for character in pattern_text)
        if pattern_text.isalnum() and len(pattern_text) >= 6 and letters >= 2 and len(pattern_text) - letters >= 2:
            return True  # "7ABC123": a plate in any sentence of a traffic stop
        return None

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[Result]:
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for result in results:
            # "10-28 on ..." is radio for a plate check; presidio's tokens split "10-28", so look for it here.
            if result.score < SCORE_THRESHOLD and self.CONTEXT_BEFORE.search(text[: result.start]):
                result.score = max(result.score + CONTEXT_BOOST, SCORE_THRESHOLD)
                result.recognition_metadata[Result.IS_SCORE_ENHANCED_BY_CONTEXT_KEY] = True
        return results


_DIGIT_RUN = re.compile(r"(?<![\w/:$.,-])\(?\d+\)?(?:(?:[ .-]|, ?|\) ?)\(?\d+\)?)*(?![\w/:]|[.-]\d)")


class DigitRunRecognizer(EntityRecognizer):
    """Phone numbers and SSNs said digit by digit: runs of digit groups, by how many digits they hold."""

    def __init__(self, kind: str) -> None:
        context = PHONE_CONTEXT if kind == "PHONE" else SSN_CONTEXT
        super().__init__(supported_entities=[kind], name=f"bwc-{kind.lower()}-digits", context=context)
        self.kind = kind

    def load(self) -> None:
        pass

    def score(self, groups: Sequence[str]) -> float:
        digits = "".join(groups)
        if self.kind == "PHONE":
            if len(digits) == 10 or (len(digits) == 11 and digits[0] == "1"):
                return 0.6
            if len(digits) == 7 and len(groups) > 1:
                return 0.4 if [len(group) for group in groups] == [3, 4] else 0.2  # "555-7310" alone
            return 0.0
        if len(digits) == 9:
            return 0.45 if [len(group) for group in groups] == [3, 2, 4] else 0.3
        return 0.05 if len(digits) == 4 else 0.0  # the last four, with "social" near

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[Result]:
        results = []
        for run in _DIGIT_RUN.finditer(text):
            groups = list(re.finditer(r"\d+", run.group()))
            # A run may hold two numbers, or a number among others: from each group, the longest window of whole
            # groups that makes a number of this kind (at most 11 digits, so this stays linear in the run).
            first = 0
            while first < len(groups):
                best, digits = None, 0
                for last in range(first, len(groups)):
                    digits += len(groups[last].group())
                    if digits > 11:
                        break
                    score = self.score([group.group() for group in groups[first : last + 1]])
                    if score > 0:
                        best = (last, score)
                if best is None:
                    first += 1
                    continue
                last, score = best
                start = run.start() + groups[first].start()
                if first == 0 and run.group().startswith("("):
                    start = run.start()
                results.append(_result(self, self.kind, start, run.start() + groups[last].end(), score))
                first = last + 1
        return results


class OfflineEmailRecognizer(EmailRecognizer):
    """presidio's email recognizer, validating domains against the public-suffix list bundled with ``tldextract``.

    presidio's own validation calls ``tldextract.extract``, whose first use downloads the current list from the
    internet (and writes a cache). This one never does: an empty URL list makes tldextract use its snapshot.
    """

    EXTRACT = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    def __init__(self) -> None:
        super().__init__(supported_entity="EMAIL", name="bwc-email", context=EMAIL_CONTEXT)

    def validate_result(self, pattern_text: str) -> bool:
        return self.EXTRACT(pattern_text).fqdn != ""


_SPOKEN_DOMAIN = re.compile(
    r"\bat ([a-z0-9-]+(?:(?: ?\. ?| dot )[a-z0-9-]+)*(?: ?\. ?| dot )"
    r"(?:com|net|org|edu|gov|us|io|co|me|info|biz|mil|ca))\b",
    re.IGNORECASE,
)
_LOCAL_CONNECTORS = {"dot", "underscore", "dash", "hyphen", "period"}
_NOT_LOCAL = {"email", "email's", "emails", "e-mail", "address", "it's", "its", "is", "send", "to", "me", "my", "use",
              "at", "put", "write", "that's", "and", "the", "it", "mail", "is:", "was"}  # fmt: skip


class SpokenEmailRecognizer(EntityRecognizer):
    """Email addresses said aloud: "d underscore ramos at hotmail dot com", "kwong 22 at gmail.com"."""

    def __init__(self, stop_words: Iterable[str]) -> None:
        super().__init__(supported_entities=["EMAIL"], name="bwc-email-spoken", context=EMAIL_CONTEXT)
        self.stop_words = frozenset(stop_words)

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[Result]:
        results = []
        for match in _SPOKEN_DOMAIN.finditer(text):
            words = list(re.finditer(r"[A-Za-z0-9._'’]+|[^\sA-Za-z0-9._'’]", text[: match.start()]))
            start, taken, expect_part = None, 0, True
            for word in reversed(words):
                lower = word.group().lower()
                if expect_part and lower not in _LOCAL_CONNECTORS and (lower.isalnum() or "." in lower or "_" in lower):
                    if lower in _NOT_LOCAL or (lower in self.stop_words and len(lower) > 1):
                        break
                    start, taken = word.start(), taken + 1
                    expect_part = False
                elif lower in _LOCAL_CONNECTORS:
                    expect_part = True
                elif not expect_part and (lower.isalnum() or "_" in lower):
                    if lower in _NOT_LOCAL or (lower in self.stop_words and len(lower) > 1) or taken >= 4:
                        break
                    start, taken = word.start(), taken + 1
                else:
                    break
            if start is not None:
                results.append(_result(self, "EMAIL", start, match.end(), 0.7))
        return results


# ------------------------------------------------------------------------------------------------------------------
# The engine
# ------------------------------------------------------------------------------------------------------------------
class BlankSpacyNlpEngine(SpacyNlpEngine):
    """presidio's spaCy engine on a blank English pipeline: tokens and stop words, nothing to download or load."""

    def __init__(self) -> None:
        super().__init__(models=[{"lang_code": "en", "model_name": "blank:en"}])
        self.load()

    def load(self) -> None:
        # Never spacy.load(): presidio would try to download a model that is not installed.
        self.nlp = {"en": spacy.blank("en")}

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        # A blank pipeline has no lemmatizer and no NER: lower-cased words stand in for the lemmas that presidio's
        # context enhancer compares with the recognizers' context words.
        return NlpArtifacts(
            entities=[],
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=[token.lower_ for token in doc],
            nlp_engine=self,
            language=language,
            scores=[],
        )


class SpanContextEnhancer(LemmaContextAwareEnhancer):
    """presidio's context enhancer, counting the words after a candidate from its last token, not its first.

    Spoken numbers are many tokens long ("4 4 2, 09, 1 1 8 7 ... that's my social"): counted from the first token,
    the window after them would hold only their own digits.
    """

    def _extract_surrounding_words(self, nlp_artifacts: NlpArtifacts, word: str, start: int) -> list[str]:
        if not nlp_artifacts.tokens:
            return [""]
        keywords, lemmas = nlp_artifacts.keywords, nlp_artifacts.lemmas
        tokens, offsets = nlp_artifacts.tokens, nlp_artifacts.tokens_indices
        first = self._find_index_of_match_token(word, start, tokens, offsets)
        last = self._find_index_of_match_token(word, start + max(len(word) - 1, 0), tokens, offsets)
        before = self._add_n_words_backward(first, self.context_prefix_count, lemmas, keywords)
        after = self._add_n_words_forward(last, self.context_suffix_count, lemmas, keywords)
        return list({*before, *after})


class Redactor:
    """Finds and replaces PII in transcript text; build it once and use it for many utterances.

    Parameters
    ----------
    threshold
        Minimum score (after context) of a span to redact; lower redacts more.
    """

    def __init__(self, threshold: float = SCORE_THRESHOLD) -> None:
        nlp_engine = BlankSpacyNlpEngine()
        stop_words = nlp_engine.get_nlp("en").Defaults.stop_words
        registry = RecognizerRegistry(supported_languages=["en"])
        for recognizer in (
            PersonRecognizer(stop_words),
            AddressRecognizer(),
            DateOfBirthRecognizer(),
            PlateRecognizer(),
            PhoneRecognizer(supported_entity="PHONE", supported_regions=("US",), context=PHONE_CONTEXT),
            DigitRunRecognizer("PHONE"),
            UsSsnRecognizer(supported_entity="SSN"),
            DigitRunRecognizer("SSN"),
            OfflineEmailRecognizer(),
            SpokenEmailRecognizer(stop_words),
        ):
            registry.add_recognizer(recognizer)
        enhancer = SpanContextEnhancer(
            context_similarity_factor=CONTEXT_BOOST,
            min_score_with_context_similarity=threshold,
            context_prefix_count=CONTEXT_WORDS_BEFORE,
            context_suffix_count=CONTEXT_WORDS_AFTER,
        )
        self.threshold = threshold
        self.engine = AnalyzerEngine(
            registry=registry,
            nlp_engine=nlp_engine,
            supported_languages=["en"],
            default_score_threshold=threshold,
            context_aware_enhancer=enhancer,
        )

    def find(self, text: str, context: str | None = None) -> tuple[PiiSpan, ...]:
        """PII spans in ``text`` (offsets into it), one per stretch of PII, in order.

        Parameters
        ----------
        text
            One utterance.
        context
            The utterance before it, if any: its words count as context ("What's your social?").
        """
        if not text or not text.strip():
            return ()
        normalized = normalize(text)
        context_words = _context_words(context) if context else None
        results = self.engine.analyze(normalized.text, language="en", context=context_words)
        spans = []
        for result in results:
            if result.score < self.threshold:
                continue
            start, end = normalized.to_original(result.start, result.end)
            start, end = _trim(text, start, end)
            if end > start:
                name = (result.recognition_metadata or {}).get(Result.RECOGNIZER_NAME_KEY, "")
                spans.append(PiiSpan(start, end, result.entity_type, round(float(result.score), 3), name))
        return _resolve_overlaps(spans)

    def redact(self, text: str, context: str | None = None) -> RedactedText:
        """``text`` with each PII span replaced by its placeholder (see :meth:`find`)."""
        spans = self.find(text, context)
        pieces, position = [], 0
        for span in spans:
            pieces += [text[position : span.start], PLACEHOLDERS[span.type]]
            position = span.end
        pieces.append(text[position:])
        return RedactedText("".join(pieces), spans)

    def redact_all(self, texts: Sequence[str], contexts: Sequence[str | None] | None = None) -> list[RedactedText]:
        """:meth:`redact` over many utterances, each with its context (the utterance before it)."""
        contexts = contexts if contexts is not None else [None] * len(texts)
        return [self.redact(text, context) for text, context in zip(texts, contexts, strict=True)]


def _context_words(context: str) -> list[str]:
    """The words of the utterance before, as context words. Name words count only when it asks a question
    ("What's your name?"): after "My name is Officer Chen." the next sentence's first word is no answer."""
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9.'-]*", context.lower())
    if "?" not in context:
        words = [word for word in words if not any(term in word for term in PERSON_CONTEXT)]
    return words


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Without surrounding spaces and trailing punctuation (the period of "St." or "Q." stays)."""
    while start < end and text[start] in " \t\n,;:":
        start += 1
    while end > start and text[end - 1] in " \t\n,;:!?)\"'":
        if text[end - 1] == ")" and "(" in text[start:end]:
            break
        end -= 1
    if end > start and text[end - 1] == ".":
        word = re.search(r"[A-Za-z]+\.$", text[start:end])
        if not (word and (len(word.group()) <= 2 or word.group()[:-1].lower() in _ABBREVIATIONS)):
            end -= 1
    return start, end


def _resolve_overlaps(spans: list[PiiSpan]) -> tuple[PiiSpan, ...]:
    """One span per overlapping group: their union, typed by the highest score (then TYPE_PRIORITY)."""
    resolved: list[PiiSpan] = []
    group: list[PiiSpan] = []

    def close() -> None:
        if group:
            best = max(group, key=lambda span: (span.score, -TYPE_PRIORITY.index(span.type)))
            start, end = min(span.start for span in group), max(span.end for span in group)
            resolved.append(PiiSpan(start, end, best.type, best.score, best.recognizer))

    for span in sorted(spans, key=lambda span: (span.start, -span.end)):
        if group and span.start >= max(member.end for member in group):
            close()
            group = []
        group.append(span)
    close()
    return tuple(resolved)


@functools.cache
def default_redactor() -> Redactor:
    """One :class:`Redactor` per process (loading takes a second or two)."""
    return Redactor()


def redact(text: str, context: str | None = None) -> RedactedText:
    """``text`` with its PII replaced by typed placeholders, by the process's :func:`default_redactor`."""
    return default_redactor().redact(text, context)
