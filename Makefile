# Two set-up commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= $(or $(FAKELENS_DATA),../shared/data/cifake/cifake.zip)

.PHONY: install demo test test-fast lint bench bench-cold train-seed train-default train-real clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

## demo: install, then show the data, the shipped default model's metrics, and scan the test images.
demo: install
	$(BIN)/fakelens data info $(DATA)
	$(BIN)/fakelens models
	$(BIN)/fakelens evaluate patchres --data $(DATA) --out runs/demo/evaluate
	$(BIN)/fakelens scan $(DATA) --include "test/*" --out runs/demo/scan.csv

## test: install with test tools, run the whole suite.
test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks

## bench: scan throughput against model-only and the naive loop, latency, memory (benchmarks/results/scan.json).
bench: install
	$(BIN)/python benchmarks/scan.py --data $(DATA)

## bench-cold: `fakelens predict one.jpg` from a fresh process, wall time and peak memory (benchmarks/results/cold_start.json).
bench-cold: install
	$(BIN)/python benchmarks/cold_start.py

## train-seed: the original notebook's model, 20 epochs, as in the README's results table.
## Run again after a kill, it resumes; after a finished run it trains seed-cifake-2, and so on.
train-seed: install
	$(BIN)/fakelens train --model seed --data $(DATA) --epochs 20 --name seed-cifake
	run=$$(ls -td runs/train/seed-cifake*/ | head -1) && \
	  $(BIN)/fakelens evaluate $${run}model.keras --data $(DATA) --robustness --out $${run}evaluate && \
	  $(BIN)/python scripts/ship_model.py $${run}model.keras $${run}evaluate/metrics.json seed

## train-default: the shipped default model, from scratch (under an hour on 2 cores), evaluated
## on CIFAKE (with the robustness battery) and on sd-unsplash (re-encoded), then shipped.
SD_UNSPLASH ?= ../shared/data/sd-unsplash/sd-unsplash.zip
train-default: install
	$(BIN)/fakelens train --model patchres-deep --data $(DATA) --name patchres-cifake
	run=$$(ls -td runs/train/patchres-cifake*/ | head -1) && \
	  $(BIN)/fakelens evaluate $${run}model.keras --data $(DATA) --robustness --out $${run}evaluate && \
	  $(BIN)/fakelens evaluate $${run}model.keras --data $(SD_UNSPLASH) --reencode-jpeg 90 --out $${run}sd-unsplash && \
	  $(BIN)/python scripts/ship_model.py $${run}model.keras $${run}evaluate/metrics.json patchres

## train-real: the real-world model (clipprobe): embeds wild and sd-unsplash once (cached; ~12 min
## on 2 cores), judges it leave-one-source-out (runs/train/clipprobe*/loso.md), calibrates, then ships it.
WILD ?= ../shared/data/wild/wild.zip
train-real: install
	$(BIN)/fakelens train --model clipprobe --data $(WILD) --data $(SD_UNSPLASH)
	run=$$(ls -td runs/train/clipprobe*/ | head -1) && cp $${run}model.json src/fakelens/weights/clipprobe.json

clean:
	rm -rf $(VENV) .pytest_cache
