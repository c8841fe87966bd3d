# ImmunoFeed — every entry point a person or CI needs.
# `make demo` and `make test` work on a fresh machine with Python 3.11 and make.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: setup dev demo test lint clean

# The venv is built once and refreshed when the dependency declarations change.
$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 not found (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24.2"

$(VENV)/.setup: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.setup
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

setup: $(VENV)/.setup

dev: $(VENV)/.dev

demo: setup
	$(BIN)/immunofeed demo --port $(PORT)

test: dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: dev
	$(BIN)/ruff check crawler nlp db webapp tests bench

clean:
	rm -rf $(VENV) var .pytest_cache
