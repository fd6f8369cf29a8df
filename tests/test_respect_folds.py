"""The respect model's transfer-honest validation: topic folds hold whole topics out, the mask keeps only form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.respect.folds import PLACEHOLDER, mask_content, topic_folds
from models.respect.train import rater_agreement

CORPUS = Path(__file__).parents[2] / "shared" / "data" / "politeness" / "wikipedia.annotated.csv"
EVAL = Path(__file__).parents[1] / "models" / "respect" / "eval"


def test_mask_keeps_how_it_is_asked_and_drops_what_about() -> None:
    masked = mask_content("Could you please fix the infobox on the Berlin article? Thanks, I'd appreciate it!")
    assert masked == f"Could you please {PLACEHOLDER} the {PLACEHOLDER} on the {PLACEHOLDER} {PLACEHOLDER}? " \
        "Thanks, I'd appreciate it!"  # fmt: skip
    # politeness, address, opinion and question words survive; numbers, urls and names do not
    assert mask_content("Sir, why is 2019 <url> so wrong, dude?") == f"Sir, why is {PLACEHOLDER} {PLACEHOLDER} so " \
        "wrong, dude?"  # fmt: skip
    assert mask_content("") == ""


def test_topic_folds_hold_whole_topics_out() -> None:
    if not CORPUS.is_file():
        pytest.skip(f"needs the politeness corpus at {CORPUS} (../shared is for development and CI)")
    texts = pd.read_csv(CORPUS)["Request"].astype(str).tolist()
    fold, topic = topic_folds(texts)
    assert fold.shape == topic.shape == (len(texts),) and set(fold.tolist()) == set(range(6))
    for value in set(topic.tolist()) - {-1}:  # a topic never straddles two folds
        assert len(set(fold[topic == value].tolist())) == 1
    sizes = np.bincount(fold)
    assert sizes.min() > 0.6 * len(texts) / 6 and sizes.max() < 1.6 * len(texts) / 6
    again, _ = topic_folds(texts)
    assert (again == fold).all()  # seeded: the card's folds are the folds a rebuild gets


def test_rater_agreement_of_the_police_register() -> None:
    table = pd.read_csv(EVAL / "police_register.csv")
    ratings = table[["rater_1", "rater_2", "rater_3"]].to_numpy(dtype=float)
    assert ratings.shape == (130, 3) and set(np.unique(ratings)) <= {1, 2, 3, 4, 5}
    agreement = rater_agreement(ratings)
    assert 0.7 < agreement["krippendorff_alpha"] <= 1.0
    # a rater who answers at random agrees with nobody
    noise = np.random.default_rng(0).integers(1, 6, size=(130, 1)).astype(float)
    assert rater_agreement(np.hstack([ratings[:, :1], noise]))["krippendorff_alpha"] < 0.3


def test_check_sets_are_apart_from_the_lines_trained_on() -> None:
    """No line in two files: a check line trained on, or one training set repeating another, would count twice."""
    seen: dict[str, str] = {}
    for path in sorted(EVAL.glob("*.csv")):
        for text in pd.read_csv(path)["text"]:
            key = " ".join(str(text).lower().split()).strip(" .!?")
            assert key not in seen, f"{text!r} is in {path.name} and {seen[key]}"
            seen[key] = path.name
    assert len(seen) == 60 + 72 + 216 + 130 + 40 + 5
