"""Validation before compute: bad inputs, labels and layer stacks raise a ValueError that names the
layer and the expected and received shapes, before any step runs; fit never copies the training
set; and a kernel fuzz over random (also degenerate) shapes through Conv2D, MaxPool2D and Dense on
both backends: the right answer, or a clean ValueError at build time."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicnn import kernels
from minicnn.kernels import naive
from minicnn.kernels.shapes import window_output
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D
from minicnn import Sequential

from tests.training._train_worker import small_model

ROOT = Path(__file__).resolve().parent.parent


def _numba_importable():
    try:
        importlib.import_module("minicnn.kernels.numba_backend")
        return True
    except ImportError:
        return False


HAVE_NUMBA = _numba_importable()
BACKEND_NAMES = ["numpy"] + (["numba"] if HAVE_NUMBA else [])


def onehot(n, k=10):
    return np.eye(k, dtype=np.float32)[np.arange(n) % k]


def x_ok(n=4):
    return np.random.default_rng(0).random((n, 12, 12, 1), dtype=np.float32)


def assert_untouched(model, weights):
    assert model.optimizer.iterations == 0
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


def refused(model, match, x, y, **kw):
    weights = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=match):
        model.fit(x, y, verbose=0, **kw)
    assert_untouched(model, weights)


# ----------------------------------------------------------------------------- x
NAN = x_ok(5)
NAN[2, 3, 4, 0] = np.nan
INF = x_ok(5)
INF[3, 0, 0, 0] = -np.inf


@pytest.mark.parametrize("x, match", [
    (np.zeros((4, 12, 12), np.float32),
     r"^x has shape \(4, 12, 12\) \(3-D\); model 'sequential' \(first layer 'conv2d', Conv2D\) expects "
     r"\(batch, 12, 12, 1\); add the channel axis: x\[\.\.\., None\]$"),
    (np.zeros((12, 12, 1), np.float32), r"x has shape \(12, 12, 1\) \(3-D\).*add the batch axis: x\[None\]"),
    (np.zeros((4, 12, 12, 3), np.float32), r"x has shape \(4, 12, 12, 3\) \(4-D\).*expects \(batch, 12, 12, 1\)"),
    (np.zeros((4, 14, 14, 1), np.float32), r"x has shape \(4, 14, 14, 1\).*first layer 'conv2d'"),
    (np.zeros((4, 12, 12, 1, 1), np.float32), r"\(5-D\)"),
    (np.zeros((4, 12, 12, 1), np.uint8),
     r"x must be floating point \(scaled to \[0, 1\]\), received dtype uint8, for model 'sequential' \(first "
     r"layer 'conv2d', Conv2D\): use x.astype\('float32'\) / 255"),
    (np.zeros((4, 12, 12, 1), np.int64), "received dtype int64.*astype"),
    (np.zeros((4, 12, 12, 1), bool), "received dtype bool"),
    (np.zeros((4, 12, 12, 1), np.complex64), "x must be a real floating-point array, received dtype complex64"),
    (np.zeros((4, 12, 12, 1), object), "received dtype object"),
    (np.full((4, 12, 12, 1), "a"), "received dtype <U1"),
    (NAN, r"x contains NaN or inf \(first at sample 2\)"),
    (INF, r"x contains NaN or inf \(first at sample 3\)"),
    (np.full((4, 12, 12, 1), 1e39), r"x has values beyond the float32 range \(first at sample 0\)"),
    (np.zeros((0, 12, 12, 1), np.float32), r"x has no samples \(shape \(0, 12, 12, 1\)\)"),
    ([[1.0, 2.0], [3.0]], "x cannot be turned into an array"),
])
def test_bad_x_is_refused_before_any_step(x, match):
    n = len(x) if isinstance(x, np.ndarray) and x.ndim >= 4 else 4
    refused(small_model(), match, x, onehot(n))


def test_the_same_checks_guard_train_on_batch_evaluate_and_predict():
    m = small_model()
    with pytest.raises(ValueError, match="add the channel axis"):
        m.train_on_batch(np.zeros((2, 12, 12), np.float32), onehot(2))
    with pytest.raises(ValueError, match="received dtype uint8"):
        m.evaluate(np.zeros((2, 12, 12, 1), np.uint8), onehot(2))
    with pytest.raises(ValueError, match="NaN or inf"):
        m.predict(NAN)
    assert m.predict(np.zeros((0, 12, 12, 1), np.float32)).shape == (0, 10)  # empty in, empty out


def test_nan_deep_in_a_large_x_is_found_without_copying_it():
    x = np.zeros((30000, 12, 12, 1), np.float32)
    x[29999, 11, 11, 0] = np.nan
    refused(small_model(), r"x contains NaN or inf \(first at sample 29999\)", x, onehot(30000))


# ----------------------------------------------------------------------------- y
def sparse_model():
    m = small_model()
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    return m


@pytest.mark.parametrize("make, y, match", [
    (small_model, onehot(3), "y has 3 samples but x has 4"),
    (small_model, onehot(4, 9), r"y must have shape \(4, 10\) \(one-hot; the last layer 'dense_1' has 10 "
                                r"outputs\), received \(4, 9\)"),
    (small_model, np.zeros((4, 10, 1)), r"y must have shape \(4, 10\)"),
    (small_model, np.arange(4), "y holds integer labels \\(4,\\) but the loss is categorical_crossentropy: "
                                "one-hot them"),
    (small_model, np.where(np.eye(10)[:4] > 0, np.nan, 0.0), r"y contains NaN or inf \(first at sample 0\)"),
    (small_model, np.float32(1.0), "y must hold one label per sample, received a scalar"),
    (small_model, np.array(["a"] * 4), "y must hold numbers, received dtype <U1"),
    (sparse_model, np.array([1, 2, 10, 3]), r"y: label 10 at index 2 is out of range \[0, 10\) \(the last "
                                            r"layer 'dense_1' has 10 outputs\)"),
    (sparse_model, np.array([1, -1, 0, 3]), r"label -1 at index 1 is out of range"),
    (sparse_model, np.array([1.0, 2.0, 0.0, 3.0]), r"integer class labels of shape \(4,\) for "
                                                   r"sparse_categorical_crossentropy, received shape \(4,\) "
                                                   r"dtype float64"),
    (sparse_model, np.zeros((4, 10), int), r"integer class labels of shape \(4,\)"),
    (sparse_model, np.array([1, 2, 3]), "y has 3 samples but x has 4"),
])
def test_bad_labels_are_refused_before_any_step(make, y, match):
    refused(make(), match, x_ok(4), y)


def test_sparse_labels_of_shape_n_by_1_are_accepted():
    m = sparse_model()
    m.fit(x_ok(4), np.array([[1], [2], [3], [4]]), verbose=0)
    assert m.optimizer.iterations == 1


def test_validation_data_is_checked_before_training():
    refused(small_model(), "validation y has 2 samples but x has 3", x_ok(4), onehot(4),
            validation_data=(x_ok(3), onehot(2)))
    refused(small_model(), r"validation x has shape \(3, 12, 12\)", x_ok(4), onehot(4),
            validation_data=(np.zeros((3, 12, 12), np.float32), onehot(3)))
    v = x_ok(3)
    v[1, 0, 0, 0] = np.inf
    refused(small_model(), r"validation x contains NaN or inf \(first at sample 1\)", x_ok(4), onehot(4),
            validation_data=(v, onehot(3)))
    refused(small_model(), "validation_data must be a pair", x_ok(4), onehot(4), validation_data=(x_ok(3),))
    refused(small_model(), r"validation_split must be a float in \(0, 1\), got 1.5", x_ok(4), onehot(4),
            validation_split=1.5)
    refused(small_model(), "validation_split=0.9 leaves 0 training and 4 validation samples; both need at "
            "least one", x_ok(4), onehot(4), validation_split=0.9)


# ----------------------------------------------------------------------------- layer stacks
@pytest.mark.parametrize("layers, input_shape, match", [
    ([Conv2D(2, 5)], (4, 4, 1),
     r"layer 'conv2d' \(Conv2D\): kernel \(5, 5\) is larger than its input \(4, 4\) with padding 'valid'"),
    ([Conv2D(2, 3), Conv2D(2, 3)], (4, 4, 1), r"layer 'conv2d_1' \(Conv2D\): kernel \(3, 3\) is larger than "
                                              r"its input \(2, 2\)"),
    ([Conv2D(2, (1, 7))], (8, 6, 1), r"kernel \(1, 7\) is larger than its input \(8, 6\)"),
    ([MaxPool2D(3)], (2, 2, 1), r"layer 'max_pooling2d' \(MaxPool2D\): pool window \(3, 3\) is larger than "
                                r"its input \(2, 2\)"),
    ([Conv2D(2, 3), Dense(10)], (12, 12, 1),
     r"layer 'dense' \(Dense\): expects inputs of shape \(batch, features\), received \(batch, 10, 10, 2\); "
     r"add a Flatten layer before it"),
    ([Flatten(), Conv2D(2, 3)], (12, 12, 1),
     r"layer 'conv2d' \(Conv2D\): expects inputs of shape \(batch, height, width, channels\), received "
     r"\(batch, 144\)"),
    ([Conv2D(2, 3)], (12, 12), r"layer 'conv2d' \(Conv2D\): expects inputs of shape .* received \(batch, 12, 12\)"),
])
def test_layer_stacks_that_cannot_work_are_refused_at_build(layers, input_shape, match):
    model = Sequential(layers, input_shape=input_shape)
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match=match):
        model.fit(np.zeros((2, *input_shape), np.float32), onehot(2), verbose=0)
    with pytest.raises(ValueError, match=match):
        Sequential([type(l).from_config(l.get_config()) for l in layers], input_shape=input_shape).build()


def test_a_model_whose_output_is_not_class_scores_is_refused():
    model = Sequential([Conv2D(3, 3, activation="softmax")], input_shape=(5, 5, 1))
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"the last layer 'conv2d' \(Conv2D\) outputs \(batch, 3, 3, 3\); "
                                         r"cross-entropy needs \(batch, classes\)"):
        model.fit(np.zeros((2, 5, 5, 1), np.float32), onehot(2, 3), verbose=0)
    assert model.optimizer.iterations == 0


# ----------------------------------------------------------------------------- memory
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_gathers_batches_and_never_copies_the_training_set(dtype):
    n = 60000
    x = np.random.default_rng(0).random((n, 12, 12, 1)).astype(dtype)
    y = onehot(n)
    model = small_model()
    # first-call allocations (and numba compiling the kernels these batch sizes take) out of the way
    model.fit(x[:2500], y[:2500], batch_size=250, verbose=0, validation_split=0.1)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        model.fit(x, y, batch_size=250, epochs=1, verbose=0, validation_split=0.1)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # the float32 model's copy of x would be n * 144 * 4 bytes (35 MB); a batch and the
    # activations, caches and gradients it needs are about 3 MB
    assert peak < 0.2 * n * 144 * 4, f"fit allocated {peak / 1e6:.1f} MB at its peak"


# ----------------------------------------------------------------------------- kernel fuzz
def _use(name):
    kernels.use_backend(name)


@pytest.fixture
def restore_backend():
    previous = kernels._current
    yield
    kernels._current = previous


def _valid(hw, k, s, padding):
    (oh, ow), _ = window_output(hw, k, s, padding)
    return oh >= 1 and ow >= 1


pairs = st.tuples(st.integers(1, 8), st.integers(1, 8))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["conv", "pool", "dense"]), n=st.integers(1, 3), hw=st.tuples(st.integers(1, 7), st.integers(1, 7)),
       c=st.integers(1, 3), f=st.integers(1, 3), k=pairs, s=st.tuples(st.integers(1, 12), st.integers(1, 12)),
       padding=st.sampled_from(["valid", "same"]), activation=st.sampled_from([None, "relu", "softmax"]),
       seed=st.integers(0, 2**16))
def test_kernel_fuzz_right_answer_or_clean_build_error(restore_backend, kind, n, hw, c, f, k, s, padding,
                                                         activation, seed):
    results = {}
    for backend in BACKEND_NAMES:
        _use(backend)
        rng = np.random.default_rng(seed)
        if kind == "conv":
            layer = Conv2D(f, k, strides=s, padding=padding, activation=activation, name="fuzzed")
            shape = (*hw, c)
        elif kind == "pool":
            layer = MaxPool2D(k, strides=s, padding=padding, name="fuzzed")
            shape = (*hw, c)
        else:
            layer = Dense(f, activation=activation, name="fuzzed")
            shape = (hw[0] * c,)
        try:
            layer.build(shape, np.float64, np.random.default_rng(seed))
        except ValueError as e:
            assert "'fuzzed'" in str(e)
            assert kind != "dense" and not _valid(hw, k, s, padding), f"refused a valid layer: {e}"
            continue
        assert kind == "dense" or _valid(hw, k, s, padding), "accepted a layer that cannot work"
        x = rng.standard_normal((n, *shape))
        y = layer.forward(x, training=True)
        if kind == "conv":
            want = naive.conv2d(x, layer.params["kernel"], layer.params["bias"], s, layer.pads)
        elif kind == "pool":
            want, arg = naive.maxpool2d(x, layer.pool_size, s, layer.pads)
        else:
            want = naive.dense(x, layer.params["kernel"], layer.params["bias"])
        if kind != "pool":
            if activation == "relu":
                want = np.maximum(want, 0)
            elif activation == "softmax":
                want = naive.softmax(want.reshape(-1, want.shape[-1])).reshape(want.shape)
        assert y.shape == want.shape and y.shape[1:] == layer.output_shape
        np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
        dy = rng.standard_normal(y.shape)
        dx = layer.backward(dy)
        assert dx.shape == x.shape and np.isfinite(dx).all()
        if kind == "pool":
            np.testing.assert_allclose(dx, naive.maxpool2d_backward(dy, arg, x.shape, layer.pool_size, s, layer.pads),
                                       rtol=1e-12, atol=1e-15)  # overlapping windows add in another order
        results[backend] = (y, dx, {key: g.copy() for key, g in layer.grads.items()})
    if len(results) == 2:
        (ya, dxa, ga), (yb, dxb, gb) = results.values()
        np.testing.assert_allclose(dxa, dxb, rtol=1e-9, atol=1e-12)
        for key in ga:
            np.testing.assert_allclose(ga[key], gb[key], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend_name", BACKEND_NAMES)
@pytest.mark.parametrize("kind", ["conv", "pool", "dense", "flatten"])
def test_a_zero_size_batch_gives_an_empty_output_or_a_clear_error(restore_backend, backend_name, kind):
    _use(backend_name)
    layer, shape = {"conv": (Conv2D(2, 3, padding="same", name="z"), (5, 5, 1)),
                    "pool": (MaxPool2D(2, name="z"), (4, 4, 1)), "dense": (Dense(3, name="z"), (4,)),
                    "flatten": (Flatten(name="z"), (2, 2, 1))}[kind]
    layer.build(shape, np.float64, np.random.default_rng(0))
    try:
        y = layer.forward(np.zeros((0, *shape)), training=True)
    except ValueError as e:
        assert "'z'" in str(e)  # a clear refusal names the layer
        return
    assert y.shape == (0, *layer.output_shape)
    dx = layer.backward(np.zeros_like(y))
    assert dx.shape == (0, *shape)
    for key, g in layer.grads.items():  # a sum over no samples
        assert g.shape == layer.params[key].shape and not g.any(), key


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_NUMBA, reason="numba backend not importable")
def test_kernel_fuzz_under_numba_boundscheck(tmp_path):
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"),
               NUMBA_NUM_THREADS="2", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                           f"{Path(__file__).resolve()}::test_kernel_fuzz_right_answer_or_clean_build_error",
                           f"{Path(__file__).resolve()}::test_a_zero_size_batch_gives_an_empty_output_or_a_clear_error"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
