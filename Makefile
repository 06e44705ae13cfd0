# facelm: two commands on a fresh machine (Python 3.11, no GPU needed):
#   make run    -> create .venv, install the pinned dependencies, run the pipeline (snakemake --cores all)
#   make test   -> the test suite (fast tests, then the slow end-to-end ones)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamp records what was installed; `make install` does nothing while it is newer than the pins.
STAMP := $(VENV)/.facelm-installed

.PHONY: install run test test-fast test-slow dashboard clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-build-isolation -e '.[train]'  # the pins above satisfy the extra
	touch $(STAMP)

run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores all

test: test-fast test-slow

test-fast: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

test-slow: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -m slow

# Optuna dashboard on the tuning study (loopback only; set HOST=0.0.0.0 to expose it). STORAGE
# defaults to $FACELM_OPTUNA_STORAGE, else the SQLite study under results/.
HOST ?= 127.0.0.1
PORT ?= 8080
STORAGE ?= $(or $(FACELM_OPTUNA_STORAGE),sqlite:///results/optuna/study.db)
dashboard: install
	$(BIN)/optuna-dashboard '$(STORAGE)' --host $(HOST) --port $(PORT)

clean:
	rm -rf results .snakemake
