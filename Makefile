# Two set-up commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= $(or $(FAKELENS_DATA),../shared/data/cifake/cifake.zip)

.PHONY: install demo test test-fast lint train-seed clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

## demo: install, then show the data, judge it with the shipped model, and train briefly.
demo: install
	$(BIN)/fakelens data info $(DATA)
	$(BIN)/fakelens evaluate seed --data $(DATA) --out runs/demo/evaluate
	$(BIN)/fakelens scan $(DATA) --out runs/demo/scan.csv
	$(BIN)/fakelens train --model seed --data $(DATA) --epochs 1 --name demo-train

## test: install with test tools, run the whole suite.
test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

## train-seed: the original notebook's model, 20 epochs, as in the README's results table.
## Run again after a kill, it resumes; after a finished run it trains seed-cifake-2, and so on.
train-seed: install
	$(BIN)/fakelens train --model seed --data $(DATA) --epochs 20 --name seed-cifake
	run=$$(ls -td runs/seed-cifake*/ | head -1) && \
	  $(BIN)/fakelens evaluate $${run}model.keras --data $(DATA) --out $${run}evaluate

clean:
	rm -rf $(VENV) .pytest_cache
