# Two entry points for a fresh machine; both bootstrap .venv (apt packages, pinned CPU torch stack) first.
VENV := .venv
BIN := $(VENV)/bin
export PYANNOTE_METRICS_ENABLED := 0
export HF_HUB_OFFLINE := 1

CORPUS ?= ../shared/data/politeness/wikipedia.annotated.csv

.PHONY: bootstrap demo test lint clean respect-model acts-card

bootstrap:
	bash .ci/bootstrap.sh

## make demo: synthetic traffic-stop footage through the whole pipeline (real weights if present, else tiny ones)
demo: bootstrap
	$(BIN)/bwc demo --out demo

## make test: lint, then the test suite (offline, CPU only)
test: bootstrap lint
	$(BIN)/python -m pytest

## make respect-model CORPUS=...: retrain the shipped respect model (seeded; about 35 min on 2 cores, topic folds included)
respect-model: bootstrap
	$(BIN)/bwc models train respect --data $(CORPUS) --out models/respect/model

## make acts-card: re-measure the act rules on their labelled set and rewrite models/acts/CARD.md
acts-card: bootstrap
	$(BIN)/python -m models.acts.evaluate

lint:
	$(BIN)/ruff check bwc models pipelines scoring cluster tests benchmarks

clean:
	rm -rf demo .pytest_cache .ruff_cache
