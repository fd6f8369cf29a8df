# Two entry points for a fresh machine; both bootstrap .venv (apt packages, pinned CPU torch stack) first.
VENV := .venv
BIN := $(VENV)/bin
export PYANNOTE_METRICS_ENABLED := 0
export HF_HUB_OFFLINE := 1

.PHONY: bootstrap demo test lint clean

bootstrap:
	bash .ci/bootstrap.sh

## make demo: synthetic traffic-stop footage through the whole pipeline (real weights if present, else tiny ones)
demo: bootstrap
	$(BIN)/bwc demo --out demo

## make test: lint, then the test suite (offline, CPU only)
test: bootstrap lint
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check bwc models pipelines scoring tests

clean:
	rm -rf demo .pytest_cache .ruff_cache
