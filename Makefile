# Two commands from a fresh clone:
#   make train   sets up .venv and trains the seed model on MNIST (10 epochs, numba backend)
#   make test    sets up .venv with every extra and runs the whole test suite
# Data: MINICNN_DATA_DIR=/path/to/mnist (IDX files) when offline; otherwise caches, then download.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EPOCHS ?= 10
PYTEST_ARGS ?=

.PHONY: train test test-fast bench crosscheck clean

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[viz]'
	touch $@

$(VENV)/.all: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[tf,viz,dev]'
	touch $(VENV)/.core $@

train: $(VENV)/.core
	$(PY) -m minicnn train --preset seed --dataset mnist --epochs $(EPOCHS) --batch-size 100 --out models/seed-mnist.npz

test: $(VENV)/.all
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.all
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(VENV)/.all
	$(PY) -m benchmarks.run --out benchmarks/results

crosscheck: $(VENV)/.all
	$(PY) -m minicnn crosscheck --preset seed

clean:
	rm -rf $(VENV) models .pytest_cache
