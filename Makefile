# Every target creates or reuses the local virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel on the development machines; on a GPU box use e.g. `make install TORCH=torch`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test table1 table2 bench lint clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[launchers,dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

table1: $(STAMP)
	$(BIN)/iwae table1 $(ARGS)

table2: $(STAMP)
	$(BIN)/iwae table2 $(ARGS)

bench: $(STAMP)
	$(BIN)/iwae bench $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check iwae_cli tests

clean-venv:
	rm -rf $(VENV)
