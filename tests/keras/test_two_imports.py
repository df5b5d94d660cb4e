"""The same keras.io-style source run with tensorflow.keras and with minicnn.keras: the History
keys, the summary table and the saved files (both read back by Keras) agree."""

from __future__ import annotations

import numpy as np
import pytest

from tests.keras import keras_io_style

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    tf_keras = pytest.importorskip("tensorflow").keras
    import minicnn.keras as mini_keras
    tf_keras.backend.clear_session()  # Keras names layers per session: start from conv2d again
    out = {}
    for name, keras in (("tf", tf_keras), ("minicnn", mini_keras)):
        d = tmp_path_factory.mktemp(name)
        out[name] = keras_io_style.run(keras, str(d))
        out[name]["dir"] = d
    return out


def test_history_keys_and_params(both):
    tf_h, mc_h = both["tf"]["history"], both["minicnn"]["history"]
    assert sorted(mc_h.history) == sorted(tf_h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert mc_h.epoch == tf_h.epoch == [0]
    for k in ("epochs", "steps", "verbose"):
        assert mc_h.params[k] == tf_h.params[k], k


def test_summary_table_is_keras_s(both):
    assert both["minicnn"]["summary"].strip() == both["tf"]["summary"].strip()


def test_to_categorical_and_evaluate_match(both):
    assert both["minicnn"]["y_shape"] == both["tf"]["y_shape"]
    assert both["minicnn"]["y_dtype"] == both["tf"]["y_dtype"]
    tf_s, mc_s = both["tf"]["score"], both["minicnn"]["score"]
    assert len(tf_s) == len(mc_s) == 2 and all(isinstance(v, float) for v in mc_s)


def test_saved_files_open_in_keras(both):
    import keras
    for side in ("tf", "minicnn"):
        d = both[side]["dir"]
        m = keras.saving.load_model(d / "model.keras")
        assert [type(l).__name__ for l in m.layers] == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D",
                                                      "Flatten", "Dropout", "Dense"]
        m.load_weights(d / "model.weights.h5")
    # minicnn's files hold minicnn's weights, and Keras computes minicnn's outputs from them
    mc = both["minicnn"]["model"]
    m = keras.saving.load_model(both["minicnn"]["dir"] / "model.keras")
    x = np.random.default_rng(1).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(m.predict(x, verbose=0), mc.predict(x), rtol=1e-4, atol=1e-6)
    # and minicnn.keras reads Keras's
    import minicnn.keras as mini_keras
    back = mini_keras.models.load_model(both["tf"]["dir"] / "model.keras")
    back.load_weights(both["tf"]["dir"] / "model.weights.h5")
    np.testing.assert_allclose(back.predict(x), both["tf"]["model"].predict(x, verbose=0), rtol=1e-4, atol=1e-5)
