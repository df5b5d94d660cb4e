"""Sequential: structure, summary, fit/evaluate/predict, callbacks, save/load, whole-model gradients."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

import minicnn
from minicnn import EarlyStopping, Sequential, gradcheck
from minicnn.callbacks import ProgressBar
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D
from minicnn.presets import build_preset

from tests.helpers import GRADCHECK_RTOL


def tiny_model(dtype="float32", seed=0, dropout=0.0):
    layers = [Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(8, activation="relu")]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(3, activation="softmax"))
    return Sequential(layers, input_shape=(8, 8, 1), dtype=dtype, seed=seed)


def tiny_data(n=60, seed=0, dtype=np.float32):
    """Three separable classes: the bright quadrant says the class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 0.2, (n, 8, 8, 1))
    for i, c in enumerate(y):
        x[i, (c // 2) * 4:(c // 2) * 4 + 4, (c % 2) * 4:(c % 2) * 4 + 4] += 0.8
    return x.astype(dtype), np.eye(3, dtype=dtype)[y], y


def test_seed_summary_matches_keras():
    text = build_preset("seed").summary(print_fn=None)
    rows = [("conv2d (Conv2D)", "(None, 26, 26, 32)", "320"), ("conv2d_1 (Conv2D)", "(None, 24, 24, 64)", "18,496"),
            ("flatten (Flatten)", "(None, 36864)", "0"), ("dense (Dense)", "(None, 128)", "4,718,720"),
            ("dense_1 (Dense)", "(None, 10)", "1,290")]
    for row in rows:
        assert re.search(r"│ " + re.escape(row[0]) + r"\s+│ " + re.escape(row[1]) + r"\s+│\s+" + re.escape(row[2]) + " │", text), row
    assert " Total params: 4,738,826 (18.08 MB)" in text
    assert " Non-trainable params: 0 (0.00 B)" in text
    assert build_preset("seed").count_params() == 4_738_826


def test_keras_mnist_convnet_param_counts():
    # keras.io's mnist_convnet: conv(32) pool conv(64) pool flatten dropout dense(10): 34,826 params
    m = Sequential([Conv2D(32, 3, activation="relu"), MaxPool2D(2), Conv2D(64, 3, activation="relu"),
                    MaxPool2D(2), Flatten(), Dropout(0.5), Dense(10, activation="softmax")], input_shape=(28, 28, 1))
    text = m.summary(print_fn=None)
    assert "(None, 1600)" in text and " Total params: 34,826 (136.04 KB)" in text


def test_auto_names_and_duplicates():
    m = Sequential([Dense(2), Dense(2, name="out")], input_shape=(3,))
    assert [l.name for l in m.layers] == ["dense", "out"]
    with pytest.raises(ValueError, match="used twice"):
        Sequential([Dense(2, name="a"), Dense(2, name="a")])


def test_seeded_init_is_reproducible_and_seeds_differ():
    a, b, c = build_preset("seed", seed=1), build_preset("seed", seed=1), build_preset("seed", seed=2)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_whole_model_gradients_fused_softmax(backend, dropout):
    model = tiny_model("float64", seed=3, dropout=dropout)
    model.compile("adam", "categorical_crossentropy")
    x, y, _ = tiny_data(4, dtype=np.float64)
    errs = gradcheck.check_model(model, x, y)
    assert len(errs) == 1 + 6
    assert max(errs.values()) <= GRADCHECK_RTOL, errs


def test_whole_model_gradients_sparse_and_logits(backend):
    model = Sequential([Flatten(), Dense(5, activation="relu"), Dense(3)], input_shape=(4, 2), dtype="float64", seed=1)
    model.compile("sgd", minicnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    errs = gradcheck.check_model(model, rng.standard_normal((5, 4, 2)), rng.integers(0, 3, 5))
    assert max(errs.values()) <= GRADCHECK_RTOL, errs


def test_fit_learns_and_reports_history(backend):
    x, y, labels = tiny_data(90)
    model = tiny_model(seed=0)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    h = model.fit(x, y, batch_size=10, epochs=8, verbose=0, validation_split=0.2)
    assert sorted(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert h.epoch == list(range(8)) and model.history is h
    assert h.history["loss"][-1] < h.history["loss"][0]
    loss, acc = model.evaluate(x, y)
    assert acc >= 0.9
    probs = model.predict(x, batch_size=7)
    assert probs.shape == (90, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert (probs.argmax(1) == labels).mean() == acc


def test_predict_runs_in_chunks_with_the_same_outputs(backend, monkeypatch):
    """predict never runs more than PREDICT_CHUNK samples at once (cache-sized activations);
    the outputs are those of one forward pass over the whole batch."""
    from minicnn import model as model_mod

    x, _, _ = tiny_data(23)
    model = tiny_model(dtype="float64")
    sizes = []
    real_forward = model.forward
    monkeypatch.setattr(model, "forward", lambda xb, **kw: sizes.append(len(xb)) or real_forward(xb, **kw))
    monkeypatch.setattr(model_mod, "PREDICT_CHUNK", 5)
    got = model.predict(x.astype(np.float64), batch_size=100)
    assert sizes == [5, 5, 5, 5, 3]
    want = real_forward(x.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
            model.predict(x, batch_size=bad)


def test_guard_skips_gradients_a_layer_checked_and_stops_on_its_verdict(backend, monkeypatch):
    from minicnn.errors import NonFiniteError
    from minicnn.training import step as step_mod

    x, y, _ = tiny_data(20)
    model = tiny_model()
    model.compile("adam", "categorical_crossentropy")
    checked = []
    real = step_mod.all_finite
    monkeypatch.setattr(step_mod, "all_finite", lambda a: checked.append(np.shape(a)) or real(a))
    model.train_on_batch(x, y)
    # the Dense layers checked their own gradients in their backward; the guard checked the conv's
    assert (3, 3, 1, 4) in checked and (4,) in checked
    assert (36, 8) not in checked and (8, 3) not in checked
    assert all(layer.grads_finite is None for layer in model.layers)  # consumed by the guard

    real_backward = Dense._linear_backward

    def says_non_finite(self, dz):
        dx = real_backward(self, dz)
        self.grads_finite = self.grads_finite and self.name != "dense"
        return dx

    monkeypatch.setattr(Dense, "_linear_backward", says_non_finite)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(NonFiniteError, match="non-finite gradient"):
        model.train_on_batch(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_validation_split_takes_the_last_samples():
    x, y, _ = tiny_data(50)
    model = tiny_model()
    model.compile("sgd", "categorical_crossentropy", ["accuracy"])
    h = model.fit(x, y, batch_size=50, epochs=1, verbose=0, validation_split=0.2, shuffle=False)
    model2 = tiny_model()
    model2.compile("sgd", "categorical_crossentropy", ["accuracy"])
    h2 = model2.fit(x[:40], y[:40], batch_size=50, epochs=1, verbose=0, validation_data=(x[40:], y[40:]), shuffle=False)
    assert h.history == h2.history


def test_same_seed_same_weights_bitwise(backend):
    x, y, _ = tiny_data(40)
    weights = []
    for _ in range(2):
        model = tiny_model(seed=5, dropout=0.2)
        model.compile("adam", "categorical_crossentropy")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, seed=7)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_sparse_labels_and_integer_label_hint():
    x, y, labels = tiny_data(20)
    model = tiny_model()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, labels, batch_size=5, epochs=1, verbose=0)
    model2 = tiny_model()
    model2.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match="one-hot them"):
        model2.fit(x, labels, epochs=1, verbose=0)


def test_progress_bar_lines_look_like_keras():
    x, y, _ = tiny_data(30)
    model = tiny_model()
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    out = io.StringIO()
    model.fit(x, y, batch_size=10, epochs=2, verbose=1, validation_data=(x, y), stream=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert re.fullmatch(r"3/3 ━{20} \d+s \d+ms/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} - "
                        r"val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}", lines[1]), lines[1]


def test_progress_bar_live_redraw_has_eta():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    out = Tty()
    bar = ProgressBar(steps=4, epochs=1, stream=out)
    bar.on_epoch_begin(0)
    bar._last_draw = -1e9
    bar.on_batch_end(2, {"loss": 0.5})
    assert re.search(r"\r2/4 ━{10}─{10} \d+s \d+ms/step - loss: 0\.5000", out.getvalue())


def test_early_stopping_patience_and_restore_best_weights():
    x, y, _ = tiny_data(30)
    model = tiny_model()
    model.compile("sgd", "categorical_crossentropy")
    seen = []

    class Fake(minicnn.callbacks.Callback):  # feed a scripted val_loss: best at epoch 2 (index 1)
        def on_epoch_end(self, epoch, logs):
            logs["val_loss"] = [0.5, 0.3, 0.4, 0.45, 0.2][epoch]
            seen.append([w.copy() for w in self.model.get_weights()])

    out = io.StringIO()
    es = EarlyStopping(patience=2, restore_best_weights=True, verbose=1, stream=out)
    h = model.fit(x, y, batch_size=10, epochs=5, verbose=0, callbacks=[Fake(), es])
    assert h.epoch == [0, 1, 2, 3]  # stopped after two epochs without improvement
    assert "Epoch 4: early stopping" in out.getvalue()
    assert "Restoring model weights from the end of the best epoch: 2." in out.getvalue()
    for w, best in zip(model.get_weights(), seen[1]):
        np.testing.assert_array_equal(w, best)


def test_early_stopping_defaults_match_keras():
    es = EarlyStopping()
    assert (es.monitor, es.min_delta, es.patience, es.mode, es.baseline, es.restore_best_weights,
            es.start_from_epoch) == ("val_loss", -0.0, 0, "min", None, False, 0)
    assert EarlyStopping(monitor="val_accuracy").mode == "max"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip(tmp_path, dtype):
    x, y, _ = tiny_data(20, dtype=np.dtype(dtype).type)
    model = tiny_model(dtype)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    model.fit(x, y, batch_size=10, epochs=1, verbose=0)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = minicnn.load_model(path)
    assert loaded.get_config() == model.get_config() and loaded.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left behind


def test_input_validation_messages():
    model = tiny_model()
    model.compile("adam", "categorical_crossentropy")
    x, y, _ = tiny_data(10)
    with pytest.raises(ValueError, match=r"expects \(batch, 8, 8, 1\)"):
        model.predict(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="must be floating point"):
        model.predict(np.zeros((2, 8, 8, 1), np.uint8))
    bad = x.copy()
    bad[3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf \\(first at sample 3\\)"):
        model.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match="y has 9 samples but x has 10"):
        model.fit(x, y[:9], verbose=0)


def _bn_relu_model(dtype="float64"):
    from minicnn.layers import BatchNormalization, ReLU
    return Sequential([Conv2D(4, 3, padding="same", use_bias=False), BatchNormalization(), ReLU(),
                       Conv2D(5, 3, use_bias=False), BatchNormalization(), ReLU(max_value=6.0), Flatten(),
                       Dense(6, use_bias=False), BatchNormalization(), ReLU(), Dense(3, activation="softmax")],
                      input_shape=(7, 7, 2), dtype=dtype, seed=4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batchnorm_relu_pairs_are_fused_with_the_same_bits(backend, dtype, monkeypatch):
    """A BatchNormalization before a plain ReLU runs as one pair (its kernels write the relu'd
    output, and apply relu's gradient in the backward); a capped ReLU is not fused. Forward,
    every gradient and the moving statistics equal the unfused layers' bit for bit, and
    record=True (which runs the layers one by one) gives the same output."""
    from minicnn.layers.batchnorm import BatchNormalization
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 7, 7, 2)).astype(dtype)
    y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 6)]
    fused_calls = []
    forward = BatchNormalization.forward
    monkeypatch.setattr(BatchNormalization, "forward",
                        lambda self, x, training=False, relu=False: fused_calls.append(relu) or forward(
                            self, x, training, relu))

    def step():
        model = _bn_relu_model(dtype)
        model.compile("adam", "categorical_crossentropy")
        out = model.forward(x, training=True)
        loss, g, fused = model.loss_and_output_grad(y, out)
        model.backward(g, from_logits=fused)
        return [out, model.forward(x), *(l.grads[k] for l in model.layers for k in sorted(l.grads)),
                *model.non_trainable_weights()]

    fused = step()
    assert fused_calls == [True, False, True] * 2  # training forward, then inference
    monkeypatch.setattr(BatchNormalization, "fuses_next", lambda self, layer: False)
    fused_calls.clear()
    unfused = step()
    assert fused_calls == [False] * 6
    assert len(fused) == len(unfused) > 10
    for a, b in zip(fused, unfused):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    monkeypatch.undo()
    model = _bn_relu_model(dtype)
    np.testing.assert_array_equal(model.forward(x, record=True)[0], model.forward(x))


def test_batchnorm_relu_fusion_passes_gradcheck(backend):
    model = _bn_relu_model("float64")
    model.compile("adam", "categorical_crossentropy")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 7, 7, 2)), np.eye(3)[rng.integers(0, 3, 4)]
    errs = gradcheck.check_model(model, x, y)
    assert max(errs.values()) <= GRADCHECK_RTOL, errs
