# Every target creates or reuses the local virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel on the development machines; on a GPU box use e.g. `make install TORCH=torch`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test docs-serve table1 table2 frontier bench gpu-check gpu-wheels lint clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[launchers,tracking,sweepers,dev]"
	touch $(STAMP)

install: $(STAMP)

# the layering contract first (seconds): an upward import or an import cycle fails before the suite runs; then the
# documentation site (mkdocs.yml, docs/): with --strict a broken link, anchor or page left out of the nav fails
test: $(STAMP)
	$(BIN)/lint-imports --config .importlinter
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site
	$(BIN)/pytest -q --durations=20

# the documentation site at http://127.0.0.1:8000, rebuilt as its pages change (ARGS: e.g. --dev-addr HOST:PORT)
docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve $(ARGS)

table1: $(STAMP)
	$(BIN)/iwae table1 $(ARGS)

table2: $(STAMP)
	$(BIN)/iwae table2 $(ARGS)

# time to quality: validation NLL against training seconds for each recipe (conf/frontier.yaml)
frontier: $(STAMP)
	$(BIN)/iwae frontier $(ARGS)

bench: $(STAMP)
	$(BIN)/iwae bench $(ARGS)

# On a GPU machine: the CUDA tests, bench on CUDA and a one-minute grouped training slice, in < 8 minutes.
# Uses this venv where it exists, else python3 (a CUDA PyTorch); packages it lacks come from .whl/ (gpu-wheels).
gpu-check:
	PYTHON=$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) bash scripts/gpu_check.sh

# Where pip reaches PyPI: the wheels and MNIST copy that gpu-check needs on a machine without an index.
gpu-wheels: $(STAMP)
	PYTHON=$(BIN)/python bash scripts/gpu_wheels.sh

lint: $(STAMP)
	$(BIN)/ruff check iwae_cli tests
	$(BIN)/lint-imports --config .importlinter

clean-venv:
	rm -rf $(VENV)
