"""minicnn.io.keras without TensorFlow: round trips, legacy layouts built by hand, bad files.

The legacy Keras 2 layouts (``save_weights('w.h5')`` and ``model.save('m.h5')`` from TF 2.x)
cannot be written by Keras 3 any more; the fixtures below build them with h5py following
Keras 2's ``save_weights_to_hdf5_group`` (layer_names / weight_names attributes,
``<layer>/<layer>/kernel:0`` datasets).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from minicnn.io import keras as keras_files  # noqa: E402
from minicnn.cli import main  # noqa: E402
from minicnn.errors import ModelFileError  # noqa: E402
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Softmax  # noqa: E402
from minicnn import Sequential  # noqa: E402
from minicnn.presets import build_preset  # noqa: E402
from minicnn import load_model  # noqa: E402
from tests.helpers import write_fake_mnist  # noqa: E402


def odd_model(dtype="float32", seed=3):
    """Every supported layer and option once (stride 2, 'same' with an even kernel, no bias...)."""
    m = Sequential([Conv2D(4, (4, 2), strides=2, padding="same", activation="relu", input_shape=(28, 28, 1)),
                    MaxPool2D(3, strides=2, padding="same"), ReLU(), Dropout(0.3),
                    Conv2D(3, 1, use_bias=False), Flatten(), Dense(7, use_bias=False, activation="relu"),
                    Dense(10), Softmax()], name="odd", dtype=dtype, seed=seed)
    m.build()
    return m


def same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(wa, wb))


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip(tmp_path, suffix, dtype):
    m = odd_model(dtype)
    path = tmp_path / f"m{suffix}"
    m.save(path)  # Sequential.save -> saving -> keras_files.save
    arch = odd_model(dtype, seed=99) if suffix == ".weights.h5" else None
    back = load_model(path, architecture=arch)
    assert same_weights(m, back)
    assert back.dtype == m.dtype
    if suffix != ".weights.h5":
        assert back.get_config() == m.get_config()


def test_weights_only_needs_architecture(tmp_path):
    m = build_preset("pooled", seed=1)
    m.save(tmp_path / "p.weights.h5")
    with pytest.raises(ModelFileError, match="weights only.*architecture"):
        keras_files.load(tmp_path / "p.weights.h5")
    back = keras_files.load(tmp_path / "p.weights.h5", architecture=build_preset("pooled", seed=2))
    assert same_weights(m, back)


def test_weights_file_layout_is_keras3(tmp_path):
    build_preset("pooled", seed=1).save(tmp_path / "p.weights.h5")
    with h5py.File(tmp_path / "p.weights.h5") as f:
        assert f["layers/conv2d/vars/0"].shape == (3, 3, 1, 32)
        assert f["layers/conv2d_1/vars/1"].shape == (64,)
        assert f["layers/dense_1/vars/0"].shape == (128, 10)
        assert "layers/dropout_1/vars" in f and "layers/max_pooling2d/vars" in f
        assert f["layers/dense/vars"].attrs["name"] == "dense"


def test_weights_into_float64_architecture_are_cast(tmp_path):
    m = build_preset("seed", seed=1)
    m.save(tmp_path / "s.weights.h5")
    back = keras_files.load(tmp_path / "s.weights.h5", architecture=build_preset("seed", dtype="float64"))
    assert back.dtype == np.float64
    assert all(np.array_equal(a.astype(np.float64), b) for a, b in zip(m.get_weights(), back.get_weights()))


# ----------------------------------------------------------------------------- legacy Keras 2 layouts
KERAS2_CONFIG = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
    {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 28, 28, 1], "dtype": "float32",
                                            "sparse": False, "ragged": False, "name": "conv2d_input"}},
    {"class_name": "Conv2D", "config": {"name": "conv2d", "trainable": True, "dtype": "float32", "filters": 32,
                                        "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid",
                                        "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
                                        "activation": "relu", "use_bias": True,
                                        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                                        "bias_initializer": {"class_name": "Zeros", "config": {}},
                                        "kernel_regularizer": None, "bias_regularizer": None,
                                        "activity_regularizer": None, "kernel_constraint": None,
                                        "bias_constraint": None}},
    {"class_name": "Conv2D", "config": {"name": "conv2d_1", "trainable": True, "dtype": "float32", "filters": 64,
                                        "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid",
                                        "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
                                        "activation": "relu", "use_bias": True}},
    {"class_name": "Flatten", "config": {"name": "flatten", "trainable": True, "dtype": "float32",
                                         "data_format": "channels_last"}},
    {"class_name": "Dense", "config": {"name": "dense", "trainable": True, "dtype": "float32", "units": 128,
                                       "activation": "relu", "use_bias": True}},
    {"class_name": "Dense", "config": {"name": "dense_1", "trainable": True, "dtype": "float32", "units": 10,
                                       "activation": "softmax", "use_bias": True}}]},
    "keras_version": "2.15.0", "backend": "tensorflow"}


def write_keras2_group(group, model, names=None):
    """Keras 2's save_weights_to_hdf5_group, by hand: names may differ from the model's."""
    names = names or [l.name for l in model.layers]
    group.attrs["layer_names"] = np.asarray([n.encode() for n in names])
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = b"2.15.0"
    for name, layer in zip(names, model.layers):
        g = group.create_group(name)
        wn = [f"{name}/{k}:0" for k in layer.weight_names if k in layer.params]
        g.attrs["weight_names"] = np.asarray([w.encode() for w in wn]) if wn else np.asarray([])
        for w, arr in zip(wn, layer.get_weights()):
            g.create_dataset(w, data=arr)


def test_legacy_keras2_weights_only_h5(tmp_path):
    m = build_preset("seed", seed=4)
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as f:  # auto-names from another session: matched by order, not name
        write_keras2_group(f, m, names=["conv2d_7", "conv2d_8", "flatten_3", "dense_6", "dense_7"])
    back = keras_files.load(path, architecture=build_preset("seed", seed=5))
    assert same_weights(m, back)
    with pytest.raises(ModelFileError, match="architecture"):
        keras_files.load(path)


def test_legacy_keras2_full_model_h5(tmp_path):
    m = build_preset("seed", seed=6)
    path = tmp_path / "full.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(KERAS2_CONFIG).encode()
        f.attrs["keras_version"] = b"2.15.0"
        write_keras2_group(f.create_group("model_weights"), m)
    back = load_model(path)
    assert same_weights(m, back)
    assert [type(l).__name__ for l in back.layers] == ["Conv2D", "Conv2D", "Flatten", "Dense", "Dense"]
    assert back.layers[-1].activation == "softmax" and back.input_shape == (28, 28, 1)


def test_chunked_layer_names_attribute(tmp_path):
    """Keras splits long attributes into layer_names0, layer_names1, ..."""
    m = build_preset("seed", seed=4)
    path = tmp_path / "chunked.h5"
    with h5py.File(path, "w") as f:
        write_keras2_group(f, m)
        names = list(f.attrs["layer_names"])
        del f.attrs["layer_names"]
        f.attrs["layer_names0"] = np.asarray(names[:2])
        f.attrs["layer_names1"] = np.asarray(names[2:])
    assert same_weights(m, keras_files.load(path, architecture=build_preset("seed")))


# ----------------------------------------------------------------------------- bad files
@pytest.fixture
def keras_file(tmp_path):
    path = tmp_path / "good.keras"
    build_preset("pooled", seed=1).save(path)
    return path


def rewrite_zip(src, dst, config=None, weights=None, drop=()):
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist() if n not in drop}
    if config is not None:
        members["config.json"] = config if isinstance(config, bytes) else json.dumps(config).encode()
    if weights is not None:
        members["model.weights.h5"] = weights
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


def edit_weights(src_bytes, fn):
    buf = io.BytesIO(src_bytes)
    with h5py.File(buf, "a") as f:
        fn(f)
    return buf.getvalue()


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
def test_truncated(tmp_path, suffix):
    good = tmp_path / f"good{suffix}"
    build_preset("pooled", seed=1).save(good)
    data = good.read_bytes()
    for cut in (len(data) // 2, 600, 9):
        bad = tmp_path / f"bad{suffix}"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="bad"):
            keras_files.load(bad, architecture=build_preset("pooled"))


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
def test_not_a_keras_file(tmp_path, suffix):
    for content in (b"", b"hello world, not hdf5" * 50, np.random.default_rng(0).bytes(4096)):
        bad = tmp_path / f"junk{suffix}"
        bad.write_bytes(content)
        with pytest.raises(ModelFileError, match="junk"):
            keras_files.load(bad, architecture=build_preset("seed"))
    with pytest.raises(ModelFileError, match="does not exist"):
        keras_files.load(tmp_path / f"missing{suffix}")


def test_hdf5_but_not_keras(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a Keras model or weights file"):
        keras_files.load(path, architecture=build_preset("seed"))


def test_missing_group(tmp_path, keras_file):
    with zipfile.ZipFile(keras_file) as z:
        w = z.read("model.weights.h5")
    bad = tmp_path / "nogroup.keras"
    rewrite_zip(keras_file, bad, weights=edit_weights(w, lambda f: f.__delitem__("layers/dense_1")))
    with pytest.raises(ModelFileError, match=r"nogroup.*layers/dense_1"):
        keras_files.load(bad)
    bad2 = tmp_path / "nozipmember.keras"
    rewrite_zip(keras_file, bad2, drop=("model.weights.h5",))
    with pytest.raises(ModelFileError, match="nozipmember.*model.weights.h5"):
        keras_files.load(bad2)
    # legacy full model without its weights group, or a listed layer group missing
    m = build_preset("seed")
    m.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "a") as f:
        del f["model_weights/dense"]
    with pytest.raises(ModelFileError, match="'dense'.*missing"):
        keras_files.load(tmp_path / "m.h5")


def test_wrong_shape(tmp_path, keras_file):
    with zipfile.ZipFile(keras_file) as z:
        w = z.read("model.weights.h5")

    def shrink(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset("0", data=np.zeros((100, 128), np.float32))

    bad = tmp_path / "shape.keras"
    rewrite_zip(keras_file, bad, weights=edit_weights(w, shrink))
    with pytest.raises(ModelFileError, match=r"shape.keras.*\(100, 128\).*\(9216, 128\)"):
        keras_files.load(bad)
    # a weights-only file for a different architecture
    build_preset("pooled").save(tmp_path / "p.weights.h5")
    with pytest.raises(ModelFileError, match="shape"):
        keras_files.load(tmp_path / "p.weights.h5", architecture=build_preset("seed"))
    # one weighted layer too many
    odd_model().save(tmp_path / "o.weights.h5")
    with pytest.raises(ModelFileError, match="o.weights.h5"):
        keras_files.load(tmp_path / "o.weights.h5", architecture=build_preset("seed"))


def test_nan_weights_refused(tmp_path):
    build_preset("seed").save(tmp_path / "s.weights.h5")
    with h5py.File(tmp_path / "s.weights.h5", "a") as f:
        f["layers/dense_1/vars/1"][0] = np.nan
    with pytest.raises(ModelFileError, match="NaN"):
        keras_files.load(tmp_path / "s.weights.h5", architecture=build_preset("seed"))


def config_of(keras_file):
    with zipfile.ZipFile(keras_file) as z:
        return json.loads(z.read("config.json"))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["config"]["layers"].insert(2, {"module": "keras.layers", "class_name": "Lambda",
                                                "config": {"name": "evil", "function": {"class_name": "__lambda__",
                                                           "config": {"code": "print('pwned')"}}}}),
     r"'evil' \(Lambda\).*not supported"),
    (lambda c: c["config"]["layers"].insert(2, {"module": "keras.layers", "class_name": "BatchNormalization",
                                                "config": {"name": "bn", "renorm": True}}),
     r"'bn' \(BatchNormalization\).*renorm=True is not supported"),
    (lambda c: c["config"]["layers"][1]["config"].update(activation="mish"),
     r"'conv2d' \(Conv2D\).*activation='mish'"),
    (lambda c: c["config"]["layers"][1]["config"].update(groups=2),
     r"'conv2d' \(Conv2D\).*groups=2"),
    (lambda c: c["config"]["layers"][1]["config"].update(dilation_rate=[2, 2], strides=[2, 2]),  # Keras refuses it too
     r"'conv2d' \(Conv2D\).*`strides > 1` not supported in conjunction with `dilation_rate > 1`"),
    (lambda c: c["config"]["layers"][6]["config"].update(kernel_regularizer={"class_name": "OrthogonalRegularizer",
                                                                             "config": {"factor": 0.01, "mode": "rows"}}),
     r"'dense' \(Dense\).*kernel_regularizer"),
    (lambda c: c["config"]["layers"][1]["config"].update(dtype="mixed_float16"),
     r"'conv2d'.*mixed_float16"),
    (lambda c: c["config"]["layers"][6]["config"].update(dtype="float64"), "mix dtypes"),
    (lambda c: c["config"]["layers"][1].update(registered_name="Custom>MyConv"), "custom layer"),
    (lambda c: c.update(class_name="Functional"), "Sequential models only"),
    (lambda c: c["config"]["layers"][1]["config"].pop("filters"), "filters.*missing"),
    (lambda c: c["config"]["layers"][4]["config"].update(rate=1.5), "rate"),
])
def test_unsupported_config(tmp_path, keras_file, edit, message):
    cfg = config_of(keras_file)
    edit(cfg)
    bad = tmp_path / "unsupported.keras"
    rewrite_zip(keras_file, bad, config=cfg)
    with pytest.raises(ModelFileError, match=message):
        keras_files.load(bad)


def test_bad_json(tmp_path, keras_file):
    bad = tmp_path / "badjson.keras"
    rewrite_zip(keras_file, bad, config=b"{not json")
    with pytest.raises(ModelFileError, match="badjson.*config.json.*JSON"):
        keras_files.load(bad)
    m = build_preset("seed")
    m.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "a") as f:
        f.attrs["model_config"] = "[1, 2"
    with pytest.raises(ModelFileError, match="model_config"):
        keras_files.load(tmp_path / "m.h5")


def test_loading_never_imports_tensorflow(tmp_path):
    build_preset("seed").save(tmp_path / "s.keras")
    code = ("import sys; from minicnn.io import keras as keras_files; import minicnn.cli.crosscheck; "
            f"keras_files.load({str(tmp_path / 's.keras')!r}); "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ----------------------------------------------------------------------------- minicnn evaluate
def test_cli_evaluate_keras_files(tmp_path, capsys):
    data = write_fake_mnist(tmp_path / "data")
    m = build_preset("seed", seed=1)
    for suffix in (".keras", ".h5", ".weights.h5"):
        m.save(tmp_path / f"m{suffix}")
    for suffix in (".keras", ".h5"):
        assert main(["evaluate", str(tmp_path / f"m{suffix}"), "--data-dir", str(data), "--backend", "numpy"]) == 0
    assert main(["evaluate", str(tmp_path / "m.weights.h5"), "--preset", "seed", "--data-dir", str(data),
                 "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    accs = [line.split("test accuracy ")[1].split()[0] for line in out.splitlines() if "test accuracy" in line]
    assert len(accs) == 3 and len(set(accs)) == 1, out
    assert main(["evaluate", str(tmp_path / "m.weights.h5"), "--data-dir", str(data), "--backend", "numpy"]) == 1
    assert "--preset" in capsys.readouterr().err
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04garbage")
    assert main(["evaluate", str(tmp_path / "broken.keras"), "--data-dir", str(data), "--backend", "numpy"]) == 1
    assert "broken.keras" in capsys.readouterr().err


def test_huge_architecture_is_refused_before_allocation(tmp_path, keras_file):
    cfg = config_of(keras_file)
    cfg["config"]["layers"][6]["config"]["units"] = 10**9  # dense: 9216 x 1e9 weights
    bad = tmp_path / "huge.keras"
    rewrite_zip(keras_file, bad, config=cfg)
    with pytest.raises(ModelFileError, match=r"huge.keras.*needs [0-9,]+ weight values but the file holds [0-9,]+"):
        keras_files.load(bad)
