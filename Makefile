# Two commands from a fresh clone:
#   make train   sets up .venv and trains the seed model on MNIST (10 epochs, numba backend)
#   make test    sets up .venv with every extra and runs the whole test suite
# Data: MINICNN_DATA_DIR=/path/to/mnist (IDX files) when offline; otherwise caches, then download.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EPOCHS ?= 10
PYTEST_ARGS ?=
# pytest-xdist workers (0: one process). Two, one per core of the 2-core machines CI and most of us
# run on: the suite is mostly single-threaded Python (hypothesis, small arrays), so a second worker
# nearly halves it (fast suite on a 2-core Xeon: 317 s with 2 workers, 566 CPU s). --dist loadscope
# keeps each module's tests on one worker, so a module-scoped fixture (a trained model) is built once.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadscope

.PHONY: train test test-fast test-portable bench crosscheck clean

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[viz]'
	touch $@

$(VENV)/.all: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[tf,jax,torch,viz,explore,tensorboard,dev]'
	touch $(VENV)/.core $@

train: $(VENV)/.core
	$(PY) -m minicnn train --preset seed --dataset mnist --epochs $(EPOCHS) --batch-size 100 --out models/seed-mnist.npz

test: $(VENV)/.all
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(VENV)/.all
	$(PY) -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

# The fast kernel, layer and gradient tests again, as users' machines run them: OpenBLAS's
# kernels chosen by OPENBLAS_CORETYPE (unset, and Haswell's as AMD machines here set it), one
# numba thread, the FMA tiles off (a CPU without AVX-512), and SIGINT ignored (nohup, background).
PORTABLE_TESTS = tests/kernels tests/layers tests/test_gradcheck.py tests/test_model.py tests/test_losses.py
PORTABLE_RUN = $(PY) -m pytest -q -m "not slow" -p no:cacheprovider $(XDIST)
# A CPU without AVX-512, really: numba compiles every kernel for Haswell (ymm registers only; a
# CPU name alone keeps the host's features, hence NUMBA_CPU_FEATURES too), the FMA tiles are off
# as config.has_avx512() would say there, OpenBLAS runs its Haswell kernels, and the kernels go to
# their own cache (numba's cache keys include the CPU, so the host's cached kernels are not reused).
# tests/kernels only: every kernel is compiled and checked there; the layer tests would call the
# same compiled kernels again. Measured (2 cores, load ~12): 111 CPU s from a cold cache
# (compiling for Haswell), 11 CPU s warm; 366 passed
AVX2_ENV = NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=+avx2,+fma,+f16c MINICNN_NUMBA_TILES=0 \
	OPENBLAS_CORETYPE=Haswell NUMBA_CACHE_DIR=$(CURDIR)/.numba-cache-avx2
test-portable: $(VENV)/.all
	@echo "variant: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset"
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PORTABLE_RUN) $(PORTABLE_TESTS)
	@echo "variant: OPENBLAS_CORETYPE=Haswell"
	env OPENBLAS_CORETYPE=Haswell $(PORTABLE_RUN) $(PORTABLE_TESTS)
	@echo "variant: NUMBA_NUM_THREADS=1"
	env NUMBA_NUM_THREADS=1 $(PORTABLE_RUN) $(PORTABLE_TESTS)
	@echo "variant: MINICNN_NUMBA_TILES=0 (the path of a CPU without AVX-512)"
	env MINICNN_NUMBA_TILES=0 $(PORTABLE_RUN) $(PORTABLE_TESTS)
	@echo "variant: kernels compiled for an AVX2 CPU (Haswell: no AVX-512), tiles off as there, own numba cache"
	env $(AVX2_ENV) $(PORTABLE_RUN) tests/kernels
	@echo "variant: SIGINT ignored (as under nohup or in a background job)"
	@# one process, no xdist workers: the tests run in the very process that was started ignoring SIGINT
	$(PY) -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])' \
		$(PY) -m pytest -q -m "not slow" -p no:cacheprovider tests/training/test_checkpoints.py $(PORTABLE_TESTS)

bench: $(VENV)/.all
	$(PY) -m benchmarks.run --out benchmarks/results

crosscheck: $(VENV)/.all
	$(PY) -m minicnn crosscheck --preset seed

clean:
	rm -rf $(VENV) models .pytest_cache .numba-cache-avx2
