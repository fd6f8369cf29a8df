"""Transfer-honest validation for the respect model: topic folds, and text with its content words masked.

A random split of the Wikipedia requests tests the model on requests about the same pages, edits and disputes it
was trained on; another community (or a traffic stop) shares none of that vocabulary. :func:`topic_folds` splits the
corpus the way another community would differ: topics are found in the content words only (function words,
politeness markers and opinion words removed, so that a topic is about *what* is asked, not *how*), each request
goes to its main topic, and whole topics are held out together. Models are selected by their worst fold.

:func:`mask_content` keeps the form of a request (function words, pronouns, modals, politeness and opinion words,
punctuation) and replaces every other word by one placeholder, so that an encoder reading it can only use form.

Example
-------
>>> mask_content("Could you please fix the infobox on the Berlin article?")
'Could you please thing the thing on the thing thing?'
>>> folds = topic_folds(texts, n_folds=6)                                   # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from sklearn.decomposition import NMF
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

from models.respect.features import NEGATIVE_WORDS, POSITIVE_WORDS

PLACEHOLDER = "thing"  # what a masked content word becomes (a real word: the encoder read real words in training)
N_TOPICS = 12  # NMF topics over content words; pairs of them make the folds
N_FOLDS = 6  # topic folds (each about a sixth of the corpus)
TOPIC_MIN_DF = 3  # a content word must occur in this many requests to shape a topic
TOPIC_MAX_DF = 0.2  # and in at most this share of them (more is not topical)
# Form words kept by the mask besides scikit-learn's English stop words: politeness strategies, address terms,
# modals and contractions, hedges, discourse words, question words, and the opinion lexicons of the markers.
FORM_WORDS = frozenset(
    """please pls thanks thank thankyou sorry apologize apologise apologies appreciate appreciated grateful hi hello
    hey dear sir madam ma'am mr mrs ms miss dude bro guy guys man buddy kindly excuse pardon ok okay alright yes yeah
    no not can could would will shall should may might must i'm i'd i'll i've you're you'd you'll you've it's that's
    there's what's let's don't doesn't didn't can't couldn't won't wouldn't isn't aren't wasn't weren't haven't
    hasn't shouldn't just really actually maybe perhaps probably think guess suppose wonder wondering hope hoping
    feel mind help know understand sure great good nice cool wow awesome excellent wonderful lovely glad happy fine
    welcome wrong bad stupid idiot dumb hell damn shit fuck crap sucks lie liar ask asking asked tell explain why
    how what where when who which whose do does did doing done be been being have has had having am is are was
    were get gets got going gonna wanna""".split()  # noqa: SIM905
)
_KEPT = frozenset(ENGLISH_STOP_WORDS) | FORM_WORDS | POSITIVE_WORDS | NEGATIVE_WORDS
_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+(?:[.,:]\d+)*|<url>|\S")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,!?;:])")


def mask_content(text: str) -> str:
    """``text`` with every content word, number and ``<url>`` replaced by :data:`PLACEHOLDER`; form words and
    punctuation kept.

    >>> mask_content("Thanks! Where did you get the 1990 census data?")
    'Thanks! Where did you get the thing thing thing?'
    """
    out = []
    for token in _TOKEN.findall(text):
        lowered = token.lower()
        if token == "<url>" or token[0].isdigit():
            out.append(PLACEHOLDER)
        elif not token[0].isalpha() or lowered in _KEPT or lowered.split("'")[0] in _KEPT:
            out.append(token)
        else:
            out.append(PLACEHOLDER)
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", " ".join(out))


def _content_vectoriser(sublinear: bool) -> TfidfVectorizer:
    """TF-IDF over content words only: every form word of the mask is a stop word here."""
    return TfidfVectorizer(
        token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b",
        stop_words=sorted(word for word in _KEPT if re.fullmatch(r"[a-z]+", word)),
        min_df=TOPIC_MIN_DF,
        max_df=TOPIC_MAX_DF,
        sublinear_tf=sublinear,
    )


def topic_folds(
    texts: Sequence[str], n_folds: int = N_FOLDS, n_topics: int = N_TOPICS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Each text's fold (0..n_folds-1) and topic (-1: no content word to place it by).

    Topics: NMF over TF-IDF of content words (:data:`_KEPT` words removed). Topics go, largest first, to the fold
    with the fewest texts so far; texts without a topic are spread over the folds at random (seeded).

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``(fold, topic)``, both of length ``len(texts)``.
    """
    if n_topics < n_folds:
        raise ValueError(f"need at least as many topics ({n_topics}) as folds ({n_folds})")
    weights = _content_vectoriser(sublinear=True).fit_transform(list(texts))
    loadings = NMF(n_topics, random_state=seed, init="nndsvda", max_iter=400).fit_transform(weights)
    topic = loadings.argmax(axis=1)
    topic[loadings.max(axis=1) == 0] = -1
    fold = np.full(len(texts), -1)
    sizes = np.zeros(n_folds)
    for value in sorted(range(n_topics), key=lambda t: (-(topic == t).sum(), t)):
        chosen = int(np.argmin(sizes))
        fold[topic == value] = chosen
        sizes[chosen] += (topic == value).sum()
    unplaced = np.flatnonzero(topic == -1)
    fold[unplaced] = np.random.default_rng(seed).integers(0, n_folds, len(unplaced))
    return fold, topic


def topic_words(texts: Sequence[str], topic: np.ndarray, top: int = 8) -> dict[int, list[str]]:
    """The most frequent content words of each topic (for the model card: what each fold is about)."""
    vectoriser = _content_vectoriser(sublinear=False)
    weights = vectoriser.fit_transform(list(texts))
    names = np.asarray(vectoriser.get_feature_names_out())
    words = {}
    for value in sorted(set(topic.tolist()) - {-1}):
        mean = np.asarray(weights[topic == value].mean(axis=0)).ravel()
        words[value] = names[np.argsort(-mean)[:top]].tolist()
    return words
