# ImmunoFeed — every entry point a person or CI needs.
# `make demo` and `make test` work on a fresh machine with Python 3.11, make, a C compiler and
# SQLite's headers.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
PYTEST_ARGS ?=
# `make test DB=postgres` runs the whole suite on PostgreSQL (each test in a schema of its own).
DB ?= sqlite
POSTGRES_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: setup dev demo test lint clean

# The venv is built once and refreshed when the dependency declarations change.
$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 not found (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24.2"

# db/_bm25.c, a C extension, is compiled against the SQLite Python's sqlite3 module links.
$(VENV)/.setup: $(BIN)/python pyproject.toml constraints.txt db/_bm25.c
	@echo '#include <sqlite3.h>' | $${CC:-cc} -E - >/dev/null 2>&1 || { echo "error: building db/_bm25.c needs a C compiler and SQLite's headers (Debian: apt-get install gcc libsqlite3-dev)" >&2; exit 1; }
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
ifeq ($(DB),postgres)
	IMMUNOFEED_TEST_DATABASE_URL=$(POSTGRES_TEST_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)
else ifeq ($(DB),sqlite)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
else
	@echo "error: DB must be sqlite or postgres, not '$(DB)'" >&2; exit 2
endif

lint: dev
	$(BIN)/ruff check crawler nlp db webapp tests bench

clean:
	rm -rf $(VENV) var .pytest_cache
