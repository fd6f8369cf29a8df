"""Which respect-model ideas carry over to text unlike the training text: each idea on the random split and on
topic folds (whole topics of content words held out, ``models.respect.folds``), selected by the worst fold.

Run from the repository root::

    .venv/bin/python benchmarks/respect_transfer.py --corpus ../shared/data/politeness/wikipedia.annotated.csv
    .venv/bin/python benchmarks/respect_transfer.py --fine-tune raw   # also the fine-tuned encoder (about 25 min)

Every model is fitted on the other five folds and scored on the sixth, for the six random folds and the six topic
folds. Cheap ideas (ridges on frozen embeddings, markers, TF-IDF, annotator-level targets) always run; the
fine-tuned encoders (raw text and/or content-masked text; top two layers, three epochs, as the respect model's
recipe) with ``--fine-tune raw masked``, their fold predictions cached under ``.bench/respect`` so blends can be
re-weighed without training again. Appends a section to benchmarks/RESULTS.md (``--no-record``: print only).
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python benchmarks/respect_transfer.py` from the root, without PYTHONPATH

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402

import bwc  # noqa: E402,F401  (first: CTranslate2's OpenMP runtime before torch's)
from models.encoder import TextEncoder, default_encoder_path  # noqa: E402
from models.respect.features import FEATURE_NAMES, feature_matrix  # noqa: E402
from models.respect.folds import N_FOLDS, mask_content, topic_folds  # noqa: E402
from models.respect.model import RespectModel, RespectParameters  # noqa: E402
from models.respect.train import MARKER_PRIORS, Recipe, evaluate, fine_tune_encoder, read_corpus  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "politeness" / "wikipedia.annotated.csv"
CACHE = ROOT / ".bench" / "respect"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
EVAL_DIR = ROOT / "models" / "respect" / "eval"
# Officer lines scored as one more fold: a register the corpus never had (author-rated; police_train came later)
OFFICER_SELECTION_SETS = ("officer_utterances", "police_dev")
BLEND_GRID = np.round(np.arange(0.0, 1.0001, 0.05), 2)  # encoder / form shares tried; markers take the rest

Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (train rows, test rows) -> predictions on test rows


def cross_validate(predict: Predictor, split: np.ndarray, y: np.ndarray) -> list[dict[str, float]]:
    """Metrics of each fold of ``split``, the model fitted on the other folds."""
    return [
        evaluate(y[split == f], predict(np.flatnonzero(split != f), np.flatnonzero(split == f))) for f in range(N_FOLDS)
    ]


def summary(folds: list[dict[str, float]]) -> dict[str, float]:
    return {
        "acc_mean": float(np.mean([f["quartile_accuracy"] for f in folds])),
        "acc_worst": float(np.min([f["quartile_accuracy"] for f in folds])),
        "rho_mean": float(np.mean([f["spearman"] for f in folds])),
        "rho_worst": float(np.min([f["spearman"] for f in folds])),
    }


def standardised(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / values.std()


def annotator_targets(table: pd.DataFrame) -> np.ndarray:
    """Each request's mean of its annotators' z-scored ratings, weighted by each annotator's agreement with the
    other four (correlation over the annotator's requests; at least 0.05): the five ratings rather than the mean."""
    scores = table[[f"Score{i}" for i in range(1, 6)]].to_numpy(float)
    annotators = table[[f"TurkId{i}" for i in range(1, 6)]].to_numpy()
    long = pd.DataFrame({"row": np.repeat(np.arange(len(table)), 5), "s": scores.ravel(), "who": annotators.ravel()})
    spread = long.groupby("who").s.transform("std").replace(0, 1).fillna(1)
    long["z"] = (long.s - long.groupby("who").s.transform("mean")) / spread
    long["others"] = (long.groupby("row").z.transform("sum") - long.z) / 4

    def agreement(group: pd.DataFrame) -> float:
        return float(np.corrcoef(group.z, group.others)[0, 1]) if len(group) >= 10 else np.nan

    reliability = long.groupby("who")[["z", "others"]].apply(agreement)
    long["w"] = long.who.map(reliability.fillna(reliability.median()).clip(lower=0.05))
    weighted = (long.z * long.w).groupby(long.row).sum() / long.w.groupby(long.row).sum()
    return weighted.to_numpy()


def fine_tuned_predictions(
    mode: str, texts: list[str], y: np.ndarray, folds: np.ndarray, recipe: Recipe, log: Callable[[str], None]
) -> np.ndarray:
    """Out-of-fold predictions of the fine-tuned encoder (``mode`` raw or masked text), one fit per topic fold,
    cached per fold under .bench/respect."""
    CACHE.mkdir(parents=True, exist_ok=True)
    source = [mask_content(text) for text in texts] if mode == "masked" else texts
    predicted = np.zeros(len(texts))
    for fold in range(N_FOLDS):
        cached = CACHE / f"ft_{mode}_topic{fold}.npy"
        if not cached.is_file():
            started = time.perf_counter()
            train = np.flatnonzero(folds != fold)
            torch.manual_seed(recipe.seed)
            parameters = RespectParameters(
                version="benchmark", top_layers=recipe.top_layers, encoder_weight=1.0, encoder_mean=0.0,
                encoder_sd=1.0, feature_names=list(FEATURE_NAMES), feature_coefficients=[0.0] * len(FEATURE_NAMES),
                feature_intercept=0.0, feature_mean=0.0, feature_sd=1.0, blend_mean=0.0, blend_sd=1.0,
                base_encoder_sha256="",
            )  # fmt: skip
            model = RespectModel(TextEncoder.load(default_encoder_path()), parameters)
            rng = np.random.default_rng(recipe.seed)
            fine_tune_encoder(model, [source[i] for i in train], y[train], recipe, rng, lambda _: None)
            np.save(cached, model.encoder_outputs(source))
            lines = officer_lines()
            lines["pred"] = model.encoder_outputs(
                [mask_content(t) for t in lines.text] if mode == "masked" else lines.text.tolist()
            )
            lines.to_csv(CACHE / f"ft_{mode}_topic{fold}_officer.csv", index=False)
            log(f"  fine-tuned {mode} without topic fold {fold + 1}: {time.perf_counter() - started:.0f} s")
        predicted[folds == fold] = np.load(cached)[folds == fold]
    return predicted


def officer_lines() -> pd.DataFrame:
    """The officer lines of the selection fold (author-rated, another register than the corpus): ``text, rating``."""
    tables = [pd.read_csv(EVAL_DIR / f"{name}.csv")[["text", "rating"]] for name in OFFICER_SELECTION_SETS]
    return pd.concat(tables, ignore_index=True)


def officer_fine_tuned(mode: str, lines: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """The fine-tuned encoder's output on the officer lines: the mean over the topic-fold models that cached it (a
    fold model is fitted on Wikipedia only, so each is as blind to the police register as the others)."""
    found, predictions = [], []
    for fold in range(N_FOLDS):
        cached = CACHE / f"ft_{mode}_topic{fold}_officer.csv"
        if cached.is_file():
            table = pd.read_csv(cached).groupby("text").pred.mean()
            predictions.append(lines.text.map(table).to_numpy(dtype=float))
            found.append(fold + 1)
    return np.nanmean(np.stack(predictions), axis=0), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="wikipedia.annotated.csv")
    parser.add_argument(
        "--fine-tune",
        nargs="*",
        choices=("raw", "masked"),
        default=None,
        help="also fine-tune the encoder on raw and/or masked text (about 25 min per kind, cached; bare: raw)",
    )
    parser.add_argument("--no-record", action="store_true", help="print only, append nothing to RESULTS.md")
    args = parser.parse_args()
    if args.fine_tune is not None and not args.fine_tune:
        args.fine_tune = ["raw"]
    started = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    raw_table = pd.read_csv(args.corpus)
    data = read_corpus(args.corpus)
    texts, y = data["text"].tolist(), data["score"].to_numpy()
    topics, _ = topic_folds(texts)
    random_folds = np.random.default_rng(0).permutation(len(y)) % N_FOLDS
    masked = [mask_content(text) for text in texts]
    encoder = TextEncoder.load(default_encoder_path())
    print("embedding the corpus (raw and masked) ...", flush=True)
    raw_embedding, masked_embedding = encoder.embed(texts), encoder.embed(masked)
    markers = feature_matrix(texts)
    prior = np.array([MARKER_PRIORS.get(name, 0.0) for name in FEATURE_NAMES])

    def ridge(features: np.ndarray, alpha: float, target: np.ndarray = y) -> Predictor:
        return lambda train, test: Ridge(alpha=alpha).fit(features[train], target[train]).predict(features[test])

    def markers_with_priors(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        fitted = Ridge(alpha=3.0).fit(markers[train], y[train] - markers[train] @ prior)
        return markers[test] @ (fitted.coef_ + prior) + fitted.intercept_

    def tfidf(source: list[str], ngrams: int) -> Predictor:
        def predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
            vectoriser = TfidfVectorizer(ngram_range=(1, ngrams), min_df=2, sublinear_tf=True)
            fitted = vectoriser.fit_transform([source[i] for i in train])
            model = Ridge(alpha=1.0).fit(fitted, y[train])
            return model.predict(vectoriser.transform([source[i] for i in test]))

        return predict

    combined = np.hstack([raw_embedding, masked_embedding, markers])
    ideas: dict[str, Predictor] = {
        "TF-IDF ridge (the baseline)": tfidf(texts, 2),
        "TF-IDF ridge on masked text (1-3-grams)": tfidf(masked, 3),
        "markers, ridge shrunk to priors": markers_with_priors,
        "frozen MiniLM ridge": ridge(raw_embedding, 3.0),
        "frozen MiniLM ridge, masked text (form)": ridge(masked_embedding, 10.0),
        "frozen raw + masked + markers, one ridge": ridge(combined, 10.0),
        "same, annotator-level targets (reliability-weighted)": ridge(combined, 10.0, annotator_targets(raw_table)),
    }
    rows: list[tuple[str, dict[str, float], dict[str, float]]] = []
    for name, predict in ideas.items():
        rows.append(
            (name, summary(cross_validate(predict, random_folds, y)), summary(cross_validate(predict, topics, y)))
        )
        print(f"{name}: {rows[-1][1]} | {rows[-1][2]}", flush=True)

    blends: list[str] = []
    if args.fine_tune:
        recipe = Recipe()
        out_of_fold = {
            "form": _out_of_fold(ridge(masked_embedding, 10.0), topics),
            "markers": _out_of_fold(markers_with_priors, topics),
        }
        for mode in args.fine_tune:
            out_of_fold[f"ft_{mode}"] = fine_tuned_predictions(mode, texts, y, topics, recipe, print)
        parts = {name: _per_fold_standardised(values, topics) for name, values in out_of_fold.items()}

        def topic_summary(predicted: np.ndarray) -> dict[str, float]:
            return summary([evaluate(y[topics == f], predicted[topics == f]) for f in range(N_FOLDS)])

        fine = {
            "fine-tuned encoder, raw text (respect-1's encoder)": parts.get("ft_raw"),
            "fine-tuned encoder, masked text": parts.get("ft_masked"),
            "respect-1's blend: 0.7 fine-tuned + 0.3 markers": 0.7 * parts["ft_raw"] + 0.3 * parts["markers"]
            if "ft_raw" in parts
            else None,
            "ensemble: fine-tuned raw + fine-tuned masked": parts["ft_raw"] + parts["ft_masked"]
            if {"ft_raw", "ft_masked"} <= set(parts)
            else None,
        }
        fine = {name: values for name, values in fine.items() if values is not None}
        for name, predicted in fine.items():
            rows.append((name, {}, topic_summary(predicted)))
            print(f"{name}: {rows[-1][2]}", flush=True)
        # The officer fold: Wikipedia-only parts scored on officer lines, each standardised by its corpus outputs.
        lines = officer_lines()
        rating = lines["rating"].to_numpy(dtype=float)
        line_markers = feature_matrix(lines.text.tolist())
        line_form = encoder.embed([mask_content(text) for text in lines.text])
        form_model = Ridge(alpha=10.0).fit(masked_embedding, y)
        marker_model = Ridge(alpha=3.0).fit(markers, y - markers @ prior)
        corpus_form = form_model.predict(masked_embedding)
        corpus_markers = markers @ (marker_model.coef_ + prior) + marker_model.intercept_
        officer = {
            "form": (form_model.predict(line_form) - corpus_form.mean()) / corpus_form.std(),
            "markers": (line_markers @ (marker_model.coef_ + prior) + marker_model.intercept_ - corpus_markers.mean())
            / corpus_markers.std(),
        }
        officer_folds: dict[str, list[int]] = {}
        for mode in args.fine_tune:
            values, officer_folds[mode] = officer_fine_tuned(mode, lines)
            officer[f"ft_{mode}"] = (values - out_of_fold[f"ft_{mode}"].mean()) / out_of_fold[f"ft_{mode}"].std()
        for name, values in officer.items():
            print(f"officer fold, {name}: {evaluate(rating, values)}", flush=True)
        for encoder_name in (f"ft_{mode}" for mode in args.fine_tune):
            scored = []
            for w_encoder, w_form in itertools.product(BLEND_GRID, BLEND_GRID):
                if w_encoder + w_form > 1.0001:
                    continue
                w_markers = 1.0 - w_encoder - w_form

                def mix(p: dict[str, np.ndarray]) -> np.ndarray:
                    return w_encoder * p[encoder_name] + w_form * p["form"] + w_markers * p["markers"]  # noqa: B023

                result = topic_summary(mix(parts))
                on_officers = evaluate(rating, mix(officer))
                worst = (
                    min(result["acc_worst"], on_officers["quartile_accuracy"]),
                    min(result["rho_worst"], on_officers["spearman"]),
                )
                scored.append((worst, w_encoder, w_form, result, on_officers))
            scored.sort(key=lambda item: item[0], reverse=True)
            respect_1 = next(item for item in scored if item[1] == 0.7 and item[2] == 0.0)
            for worst, w_encoder, w_form, result, on_officers in [*scored[:5], respect_1]:
                blends.append(
                    f"| {encoder_name} {w_encoder:.2f} + form {w_form:.2f} + markers {1 - w_encoder - w_form:.2f} | "
                    f"{worst[0]:.3f} | {worst[1]:.3f} | {result['acc_mean']:.3f} | {result['acc_worst']:.3f} | "
                    f"{on_officers['quartile_accuracy']:.3f} | {on_officers['spearman']:.3f} |"
                )
            print("\n".join(blends[-6:]), flush=True)
        officer_note = "; ".join(f"{mode}: topic-fold models {folds}" for mode, folds in officer_folds.items())
        sets = ", ".join(OFFICER_SELECTION_SETS)
        note = f"Officer fold: {len(lines)} lines of {sets}; the fine-tuned encoder's output there is the mean of "
        blends.insert(0, note + f"the fold models that cached it ({officer_note}).")

    report = _report(args, rows, blends, time.perf_counter() - started)
    print(report)
    if not args.no_record:
        with RESULTS.open("a", encoding="utf-8") as handle:
            handle.write("\n" + report)


def _out_of_fold(predict: Predictor, split: np.ndarray) -> np.ndarray:
    predicted = np.zeros(len(split))
    for fold in range(N_FOLDS):
        predicted[split == fold] = predict(np.flatnonzero(split != fold), np.flatnonzero(split == fold))
    return predicted


def _per_fold_standardised(values: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Out-of-fold predictions standardised within each test fold (so a blend weighs parts by their shape, not by the
    scale one fold's model happened to have). The trainer standardises on training rows instead; within a fold only
    the scale differs, which moves a blend's weights, not the rank order of one part."""
    out = np.zeros(len(values))
    for fold in range(N_FOLDS):
        out[split == fold] = standardised(values[split == fold])
    return out


def _report(args: argparse.Namespace, rows: list, blends: list[str], seconds: float) -> str:
    command = "benchmarks/respect_transfer.py" + (" --fine-tune " + " ".join(args.fine_tune) if args.fine_tune else "")
    lines = [
        f"## Respect model transfer: ideas on random and topic folds — {date.today().isoformat()}",
        "",
        f"`.venv/bin/python {command}` on {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads ({seconds:.0f} s, fine-tuned fold predictions cached in .bench/respect).",
        f"Corpus {args.corpus.name}; {N_FOLDS} random folds and {N_FOLDS} topic folds (models.respect.folds); "
        "every model fitted on five folds and scored on the sixth; quartile accuracy and Spearman ρ against the "
        "normalised score, mean over folds and worst fold. Fine-tuned rows: topic folds only.",
        "",
        "| idea | random acc | random ρ | topic acc (mean) | topic acc (worst) | topic ρ (mean) | topic ρ (worst) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, random_summary, topic_summary in rows:
        random_cells = (
            f"{random_summary['acc_mean']:.3f} | {random_summary['rho_mean']:.3f}" if random_summary else "— | —"
        )
        lines.append(
            f"| {name} | {random_cells} | {topic_summary['acc_mean']:.3f} | {topic_summary['acc_worst']:.3f} | "
            f"{topic_summary['rho_mean']:.3f} | {topic_summary['rho_worst']:.3f} |"
        )
    if blends:
        lines += [
            "",
            "Blends of standardised out-of-fold parts (weights on a 0.05 grid), chosen by the worst of seven folds: "
            "the six topic folds and the officer fold (lines of another register, scored by the Wikipedia-only "
            "parts); worst accuracy first, then worst ρ. The five best, then respect-1's weights. " + blends[0],
            "",
            "| blend | worst acc (7 folds) | worst ρ (7 folds) | topic acc (mean) | topic acc (worst) | officer acc | "
            "officer ρ |",
            "|---|---|---|---|---|---|---|",
            *blends[1:],
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
