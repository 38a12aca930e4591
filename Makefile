# The two commands of the README: `make demo` and `make test`. Each creates .venv and installs the
# project (torch pinned to 2.13.0: the CPU wheel on these machines) when that is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo lint test test-unit test-integration test-e2e clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python jobs/demo.py --workdir runs/demo

lint: $(STAMP)
	$(BIN)/ruff check --select E,F,W,I --line-length 120 textcnn tests jobs benchmarks

test: lint
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest -m integration

test-e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e

clean:
	rm -rf runs build *.egg-info
