"""Safe files: model files and checkpoints round-trip exactly; no pickle, eval or exec anywhere in
the package; truncated, tampered or hand-made files (also ones with a valid checksum) give a
ModelFileError; object arrays are refused without unpickling; loading never runs code."""

from __future__ import annotations

import io
import json
import os
import tokenize
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minicnn.io import checkpoint as ckpt
from minicnn.errors import ModelFileError
from minicnn.fileio import JSON_KEY, read_npz, write_npz
from minicnn import load_model

from tests.training._train_worker import small_model, synthetic_data

ROOT = Path(__file__).resolve().parents[2]
X, Y = synthetic_data()


# ----------------------------------------------------------------------------- helpers (also used by the fuzz tests)
def trained_model():
    model = small_model()
    model.fit(X, Y, batch_size=20, epochs=1, verbose=0, seed=0)
    return model


def zip_entries(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def make_zip(entries, compression=zipfile.ZIP_STORED) -> bytes:
    """A well-formed zip (valid CRCs) of ``entries``, so damage inside them reaches the .npy parser."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some cases want
        with zipfile.ZipFile(buf, "w", compression=compression) as z:
            for name, body in entries:
                z.writestr(zipfile.ZipInfo(name), body, compress_type=compression)
    return buf.getvalue()


def npy_bytes(array, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def split_npy(body: bytes) -> tuple[bytes, bytes]:
    """(header, data) of a version 1.0 .npy entry."""
    hlen = int.from_bytes(body[8:10], "little")
    return body[:10 + hlen], body[10 + hlen:]


def with_header(body: bytes, header_dict: str) -> bytes:
    """Replace an entry's header dict, keeping the 64-byte alignment of a real .npy header."""
    text = header_dict.encode("latin1")
    pad = (-(10 + len(text) + 1)) % 64
    text = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + split_npy(body)[1]


def signed(arrays, meta) -> bytes:
    """Bytes of a file written by minicnn's writer: a valid checksum over whatever we put in."""
    from minicnn.fileio import npz_bytes
    return npz_bytes(arrays, meta)


def contents(path):
    """(arrays, meta) of a valid file, read with minicnn's own reader."""
    return read_npz(path)


# ----------------------------------------------------------------------------- round trips
def test_model_file_round_trip_is_exact(tmp_path):
    model = trained_model()
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.get_config() == model.get_config()
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.loss.get_config() == model.loss.get_config() and loaded.metrics == ["accuracy"]
    np.testing.assert_array_equal(loaded.predict(X[:7]), model.predict(X[:7]))


def test_an_uncompiled_float64_model_round_trips(tmp_path):
    from minicnn.layers import Conv2D, Dense, Flatten
    from minicnn import Sequential
    model = Sequential([Conv2D(2, 3), Flatten(), Dense(3)], input_shape=(5, 5, 2), dtype="float64", seed=1)
    model.build()
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.loss is None and loaded.dtype == np.float64
    assert all(a.tobytes() == b.tobytes() for a, b in zip(model.get_weights(), loaded.get_weights()))


# ----------------------------------------------------------------------------- no pickle, eval, exec
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}


def _code_tokens(path):
    with open(path, "rb") as f:
        return [t for t in tokenize.tokenize(f.readline)
                if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                                  tokenize.DEDENT, tokenize.ENCODING)]


def test_the_package_has_no_pickle_eval_or_exec():
    """Code may not name a pickle-like module, call eval/exec/compile/__import__, or pass
    allow_pickle anything but False. Comments, docstrings and message strings may mention them."""
    problems = []
    files = sorted((ROOT / "minicnn").rglob("*.py"))
    assert len(files) > 10
    for path in files:
        toks = _code_tokens(path)
        for i, t in enumerate(toks):
            where = f"{path.relative_to(ROOT)}:{t.start[0]}"
            nxt = toks[i + 1].string if i + 1 < len(toks) else ""
            prev = toks[i - 1].string if i else ""
            if t.type == tokenize.NAME:
                if t.string in FORBIDDEN_MODULES:
                    problems.append(f"{where}: uses {t.string}")
                if t.string in ("eval", "exec", "compile", "__import__") and nxt == "(" and prev not in (".", "def"):
                    problems.append(f"{where}: calls {t.string}()")
                if t.string == "allow_pickle" and (nxt != "=" or toks[i + 2].string != "False"):
                    problems.append(f"{where}: allow_pickle is not False")
            if t.type == tokenize.STRING and t.string.strip("'\"rbf") in FORBIDDEN_MODULES:
                problems.append(f"{where}: names module {t.string} in a string (importlib?)")
    assert not problems, "\n".join(problems)
    # the plain-text view the issue asks for: every remaining mention is a comment, a string or
    # allow_pickle=False
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if "allow_pickle=True" in code.replace(" ", ""):
                problems.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------- damaged model files
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.npz"
    trained_model().save(path)
    return path


def damage_cases(data: bytes):
    entries = zip_entries(data)
    names = [n for n, _ in entries]
    w = names.index("weights/dense/kernel.npy")
    header, body = split_npy(entries[w][1])
    cases = {
        "empty": b"",
        "garbage": b"\x00\x01garbage" * 10,
        "not a zip: a .npy": npy_bytes(np.zeros(3)),
        "truncated at 10%": data[: len(data) // 10],
        "truncated at 50%": data[: len(data) // 2],
        "truncated by 1 byte": data[:-1],
        "truncated by 30 bytes": data[:-30],
        "flipped byte in weights": _flip(data, data.index(body[:16]) + 7),
        "flipped byte in a header": _flip(data, data.index(header) + 40),
        "zip comment garbage": data[:-22] + b"\x00" * 22,
        "entries swapped": make_zip([(names[w], entries[w - 1][1]), (names[w - 1], entries[w][1])]
                                    + [e for i, e in enumerate(entries) if i not in (w, w - 1)]),
        "entry dropped": make_zip([e for i, e in enumerate(entries) if i != w]),
        "entry duplicated": make_zip(entries + [entries[w]]),
        "compressed entries": make_zip(entries, zipfile.ZIP_DEFLATED),
        "extra non-npy entry": make_zip(entries + [("evil.py", b"import os")]),
        "dtype header to float64": make_zip([(n, with_header(b, split_npy(b)[0][10:].decode("latin1")
                                                              .replace("<f4", "<f8").strip()))
                                             if n == names[w] else (n, b) for n, b in entries]),
        "shape header lies (bigger)": make_zip([(n, with_header(b, "{'descr': '<f4', 'fortran_order': False, "
                                                                   "'shape': (100, 1000), }"))
                                                if n == names[w] else (n, b) for n, b in entries]),
        "shape header lies (huge)": make_zip([(n, with_header(b, "{'descr': '<f4', 'fortran_order': False, "
                                                                 "'shape': (10**6, 10**6), }"))
                                              if n == names[w] else (n, b) for n, b in entries]),
        "shape header not a literal": make_zip([(n, with_header(b, "{'descr': '<f4', 'fortran_order': False, "
                                                                   "'shape': __import__('os').getpid(), }"))
                                                if n == names[w] else (n, b) for n, b in entries]),
        "dtype header object": make_zip([(n, with_header(b, "{'descr': '|O', 'fortran_order': False, "
                                                            "'shape': (1600,), }"))
                                         if n == names[w] else (n, b) for n, b in entries]),
        "dtype header string": make_zip([(n, with_header(b, "{'descr': '<U4', 'fortran_order': False, "
                                                            "'shape': (1600,), }"))
                                         if n == names[w] else (n, b) for n, b in entries]),
        "dtype header structured": make_zip([(n, with_header(b, "{'descr': [('a', '<f4')], 'fortran_order': "
                                                                "False, 'shape': (1600,), }"))
                                             if n == names[w] else (n, b) for n, b in entries]),
        "bad npy magic": make_zip([(n, b"\x93NUMPX" + b[6:]) if n == names[w] else (n, b) for n, b in entries]),
        "npy version 9": make_zip([(n, b[:6] + b"\x09\x00" + b[8:]) if n == names[w] else (n, b)
                                   for n, b in entries]),
        "json replaced by garbage": make_zip([(n, npy_bytes(np.frombuffer(b"{not json", np.uint8)))
                                              if n == JSON_KEY + ".npy" else (n, b) for n, b in entries]),
        "json not utf-8": make_zip([(n, npy_bytes(np.frombuffer(b'{"a": "\xff"}', np.uint8)))
                                    if n == JSON_KEY + ".npy" else (n, b) for n, b in entries]),
        "json deeply nested": make_zip([(n, npy_bytes(np.frombuffer(b"[" * 100000 + b"]" * 100000, np.uint8)))
                                        if n == JSON_KEY + ".npy" else (n, b) for n, b in entries]),
        "json huge integer": make_zip([(n, npy_bytes(np.frombuffer(b'{"a": ' + b"9" * 5000 + b"}", np.uint8)))
                                       if n == JSON_KEY + ".npy" else (n, b) for n, b in entries]),
        "json is a list": make_zip([(n, npy_bytes(np.frombuffer(b"[1, 2]", np.uint8)))
                                    if n == JSON_KEY + ".npy" else (n, b) for n, b in entries]),
        "json as float array": make_zip([(n, npy_bytes(np.zeros(4))) if n == JSON_KEY + ".npy" else (n, b)
                                         for n, b in entries]),
        "json edited, checksum kept": make_zip([(n, npy_bytes(np.frombuffer(
            json.dumps({**json.loads(np.load(io.BytesIO(b)).tobytes()), "compile": None}).encode(), np.uint8)))
            if n == JSON_KEY + ".npy" else (n, b) for n, b in entries]),
    }
    return cases


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x10
    return bytes(out)


def test_every_kind_of_damage_is_a_model_file_error(model_file, tmp_path):
    cases = damage_cases(model_file.read_bytes())
    seen = {}
    for name, data in cases.items():
        path = tmp_path / "bad.npz"
        path.write_bytes(data)
        with pytest.raises(ModelFileError) as exc:
            load_model(path)
        assert str(path) in str(exc.value), name
        seen[name] = str(exc.value)
    # a few of the messages say exactly what is wrong
    assert "is not a readable .npz archive" in seen["garbage"]
    assert "appears twice" in seen["entry duplicated"]
    assert "is compressed" in seen["compressed entries"]
    assert "unexpected entry 'evil.py'" in seen["extra non-npy entry"]
    assert "declares shape (100, 1000)" in seen["shape header lies (bigger)"]
    assert "holds Python objects" in seen["dtype header object"]
    assert "unsupported dtype" in seen["dtype header string"]
    assert "fails its checksum" in seen["json edited, checksum kept"]
    assert "fails its checksum" in seen["entries swapped"]
    assert "nests 100000 levels deep" in seen["json deeply nested"]


def test_bytes_appended_after_the_archive_do_not_matter(model_file, tmp_path):
    # zip readers locate the directory from the end; what they read is still checksummed
    path = tmp_path / "extended.npz"
    path.write_bytes(model_file.read_bytes() + b"\x00" * 100)
    assert all(a.tobytes() == b.tobytes()
               for a, b in zip(load_model(path).get_weights(), load_model(model_file).get_weights()))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nope.npz")
    with pytest.raises(ModelFileError, match="is not a file"):
        load_model(tmp_path)
    with pytest.raises(ModelFileError, match="does not exist"):
        ckpt.read_checkpoint(tmp_path / "nope.npz")


# ----------------------------------------------------------------------------- pickles are never opened
class _Evil:
    """Unpickling this creates a directory: the proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_an_object_array_is_refused_without_unpickling(model_file, tmp_path):
    marker = tmp_path / "pwned"
    evil = np.empty(2, dtype=object)
    evil[0] = evil[1] = _Evil(marker)
    entries = zip_entries(model_file.read_bytes())
    bad = tmp_path / "bad.npz"
    bad.write_bytes(make_zip([(n, npy_bytes(evil, allow_pickle=True)) if n == "weights/dense/kernel.npy" else (n, b)
                              for n, b in entries]))
    with pytest.raises(ModelFileError, match="holds Python objects"):
        load_model(bad)
    bad.write_bytes(make_zip([(n, npy_bytes(evil, allow_pickle=True)) if n == JSON_KEY + ".npy" else (n, b)
                              for n, b in entries]))
    with pytest.raises(ModelFileError, match="holds Python objects"):
        load_model(bad)
    with pytest.raises(ModelFileError, match="holds Python objects"):
        ckpt.read_checkpoint(bad)
    import pickle  # the test builds the attack; the package never imports pickle
    bad.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(ModelFileError, match="not a readable .npz archive"):
        load_model(bad)
    assert not marker.exists()


# ----------------------------------------------------------------------------- configs with a valid checksum
def _edited(model_file, edit):
    arrays, meta = contents(model_file)
    arrays = dict(arrays)
    meta = json.loads(json.dumps(meta))
    edit(arrays, meta)
    return signed(arrays, meta)


def _layer(meta, i):
    return meta["model"]["layers"][i]


def _set(d, key, value):
    d[key] = value


CONFIG_EDITS = {
    "unknown layer class": (lambda a, m: _set(_layer(m, 0), "class_name", "Lambda"), "unknown layer class 'Lambda'"),
    "class path os.system": (lambda a, m: _layer(m, 0).update(class_name="os.system", config={"command": "mkdir {marker}"}),
                             "unknown layer class 'os.system'"),
    "class path builtins.eval": (lambda a, m: _set(_layer(m, 1), "class_name", "builtins.eval"), "unknown layer class"),
    "layer with a module key": (lambda a, m: _layer(m, 0)["config"].update(module="os", fn="system"),
                                "TypeError"),
    "initializer os.system": (lambda a, m: _set(_layer(m, 0)["config"], "kernel_initializer", "os.system"),
                              "unknown initializer 'os.system'"),
    "activation os.system": (lambda a, m: _set(_layer(m, 0)["config"], "activation", "os.system"),
                             "unknown activation 'os.system'"),
    "optimizer os.system": (lambda a, m: _set(m["compile"]["optimizer"], "name", "os.system"),
                            "invalid compile settings.*unknown optimizer 'os.system'"),
    "optimizer kwargs": (lambda a, m: _set(m["compile"]["optimizer"], "__class__", "x"), "invalid compile settings"),
    "loss builtins.exec": (lambda a, m: _set(m["compile"]["loss"], "name", "builtins.exec"),
                           "invalid compile settings.*unknown loss"),
    "metrics not a list": (lambda a, m: _set(m["compile"], "metrics", "accuracy"), "invalid compile settings"),
    "compile is a number": (lambda a, m: _set(m, "compile", 3), "invalid compile settings"),
    "format": (lambda a, m: _set(m, "format", "minicnn-model-999"), "has format 'minicnn-model-999'"),
    "no layers": (lambda a, m: _set(m["model"], "layers", {}), "invalid architecture"),
    "model is a string": (lambda a, m: _set(m, "model", "Sequential"), "invalid architecture"),
    "no input shape": (lambda a, m: _set(m["model"], "input_shape", None), "has no input shape"),
    "input shape not numbers": (lambda a, m: _set(m["model"], "input_shape", ["a", 1, 1]), "invalid architecture"),
    "negative input shape": (lambda a, m: _set(m["model"], "input_shape", [-12, 12, 1]), "invalid architecture"),
    "huge input shape": (lambda a, m: _set(m["model"], "input_shape", [10**9, 10**9, 1]),
                         "needs .* weights but the file holds only"),
    "huge dense": (lambda a, m: _set(_layer(m, 4)["config"], "units", 10**9), "needs .* weights but the file holds"),
    "dtype int8": (lambda a, m: _set(m["model"], "dtype", "int8"), "dtype must be float32 or float64"),
    "dtype object": (lambda a, m: _set(m["model"], "dtype", "O"), "invalid architecture"),
    "filters zero": (lambda a, m: _set(_layer(m, 0)["config"], "filters", 0), "filters must be a positive int"),
    "kernel_size text": (lambda a, m: _set(_layer(m, 0)["config"], "kernel_size", "3x3"), "kernel_size"),
    "dropout rate 2": (lambda a, m: _set(_layer(m, 2)["config"], "rate", 2), "Dropout rate"),
    "dropout seed text": (lambda a, m: _set(_layer(m, 2)["config"], "seed", "x"), "invalid architecture"),
    "duplicate layer names": (lambda a, m: _set(_layer(m, 1)["config"], "name", "conv2d"), "is used twice"),
    "layer spec a list": (lambda a, m: m["model"]["layers"].__setitem__(0, [1, 2]), "invalid architecture"),
    "weight missing": (lambda a, m: a.pop("weights/dense/bias"), "missing: \\['dense/bias'\\]"),
    "weight extra": (lambda a, m: _set(a, "weights/dense/extra", np.zeros(3, np.float32)), "unexpected: \\['dense/extra'\\]"),
    "weight wrong shape": (lambda a, m: _set(a, "weights/dense/bias", np.zeros(17, np.float32)),
                           "weight 'dense/bias' is \\(17,\\) float32, expected \\(16,\\) float32"),
    "weight wrong dtype": (lambda a, m: _set(a, "weights/dense/bias", np.zeros(16, np.float64)),
                           "is \\(16,\\) float64, expected \\(16,\\) float32"),
    "weight big-endian": (lambda a, m: _set(a, "weights/dense/bias", np.zeros(16, ">f4")), "expected \\(16,\\) float32"),
    "unexpected entry": (lambda a, m: _set(a, "perm", np.arange(3)), "unexpected entries \\['perm'\\]"),
}


@pytest.mark.parametrize("name", list(CONFIG_EDITS))
def test_a_doctored_config_with_a_valid_checksum_is_refused_and_runs_nothing(model_file, tmp_path, name):
    edit, match = CONFIG_EDITS[name]
    marker = tmp_path / "pwned"

    def edit_with_marker(arrays, meta):
        edit(arrays, meta)
        text = json.dumps(meta).replace("{marker}", str(marker))
        meta.clear()
        meta.update(json.loads(text))

    path = tmp_path / "doctored.npz"
    path.write_bytes(_edited(model_file, edit_with_marker))
    with pytest.raises(ModelFileError, match=match):
        load_model(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    small_model().fit(X, Y, batch_size=20, epochs=2, verbose=0, seed=0, checkpoint_dir=d, checkpoint_every=2,
                      keep_checkpoints=10)
    mid = [p for p in ckpt.list_checkpoints(d) if ckpt.read_checkpoint(p)[1]["step"] > 0][-1]
    return Path(mid)


def test_checkpoint_damage_is_a_model_file_error(checkpoint_file, tmp_path):
    for name, data in damage_cases_for_checkpoint(checkpoint_file.read_bytes()).items():
        path = tmp_path / "bad.npz"
        path.write_bytes(data)
        with pytest.raises(ModelFileError):
            ckpt.read_checkpoint(path)
        with pytest.raises(ModelFileError):
            ckpt.model_from_checkpoint(path)


def damage_cases_for_checkpoint(data):
    entries = zip_entries(data)
    names = [n for n, _ in entries]
    return {"truncated": data[: len(data) // 3], "flipped": _flip(data, len(data) // 2),
            "entry dropped": make_zip([e for e in entries if e[0] != "perm.npy"]),
            "swapped": make_zip([(names[0], entries[1][1]), (names[1], entries[0][1])] + entries[2:])}


def _perm_not_a_permutation(a, m):
    a["perm"] = np.zeros_like(a["perm"])


CHECKPOINT_EDITS = {
    "format": (lambda a, m: _set(m, "format", "minicnn-model-1"), "has format 'minicnn-model-1'"),
    "epoch text": (lambda a, m: _set(m, "epoch", "1"), "field 'epoch' must be a non-negative integer"),
    "step negative": (lambda a, m: _set(m, "step", -1), "field 'step' must be a non-negative integer"),
    "step beyond the epoch": (lambda a, m: _set(m, "step", 99), "step 99 is beyond the 6 steps"),
    "step zero with a perm": (lambda a, m: _set(m, "step", 0), "has a sample order but no step"),
    "sums not numbers": (lambda a, m: _set(m["sums"], "loss", "x"), "field 'sums'"),
    "count negative": (lambda a, m: _set(m["sums"], "count", -3), "invalid sample count"),
    "history malformed": (lambda a, m: _set(m["history"], "history", {"loss": ["x"]}), "field 'history'"),
    "rng garbage": (lambda a, m: _set(m, "rng", {"bit_generator": "os.system", "state": {}}), "invalid RNG state"),
    "rng a list": (lambda a, m: _set(m, "rng", [1, 2]), "field 'rng'"),
    "rng huge state": (lambda a, m: _set(m["rng"]["state"], "state", -5), "invalid RNG state"),
    "optimizer no name": (lambda a, m: _set(m, "optimizer", {}), "field 'optimizer'"),
    "fit missing": (lambda a, m: m.pop("fit"), "field 'fit'"),
    "fit batch zero": (lambda a, m: _set(m["fit"], "batch_size", 0), "field 'fit'"),
    "model no layers": (lambda a, m: _set(m, "model", {"layers": 3}), "field 'model'"),
    "perm missing": (lambda a, m: a.pop("perm"), "no valid sample order"),
    "perm wrong length": (lambda a, m: _set(a, "perm", a["perm"][:-1]), "no valid sample order"),
    "perm float": (lambda a, m: _set(a, "perm", a["perm"].astype(np.float64)), "no valid sample order"),
    "perm out of range": (lambda a, m: _set(a, "perm", a["perm"] + 5), "out-of-range"),
    "perm repeats": (_perm_not_a_permutation, "not a permutation"),
    "weights NaN": (lambda a, m: a["weights/dense/bias"].__setitem__(0, np.nan), "contains NaN or inf"),
    "weights int": (lambda a, m: _set(a, "weights/dense/bias", np.zeros(16, np.int32)), "not floating point"),
    "no weights": (lambda a, m: [a.pop(k) for k in list(a) if k.startswith("weights/")], "holds no weights|matches no weight"),
    "no iterations": (lambda a, m: a.pop("optimizer/iterations"), "has no optimizer state"),
    "iterations negative": (lambda a, m: _set(a, "optimizer/iterations", np.array(-1)), "non-negative integer scalar"),
    "slot wrong shape": (lambda a, m: _set(a, "optimizer/m/dense/bias", np.zeros(3, np.float32)), "matches no weight"),
    "slot of a missing weight": (lambda a, m: _set(a, "optimizer/m/nope/kernel", np.zeros(3, np.float32)),
                                 "matches no weight"),
    "slot of another optimizer": (lambda a, m: _set(a, "optimizer/momentum/dense/bias", np.zeros(16, np.float32)),
                                  "does not belong to adam"),
    "unexpected entry": (lambda a, m: _set(a, "evil", np.zeros(1)), "unexpected entry 'evil'"),
    "architecture class os.system": (lambda a, m: _set(m["model"]["layers"][0], "class_name", "os.system"),
                                     "unknown layer class"),
    "architecture huge": (lambda a, m: _set(m["model"]["layers"][4]["config"], "units", 10**9),
                          "needs .* weights but the file holds"),
    "weights of another architecture": (lambda a, m: _set(a, "weights/dense/kernel", np.zeros((100, 15), np.float32)),
                                        "matches no weight|dense/kernel"),
}


@pytest.mark.parametrize("name", list(CHECKPOINT_EDITS))
def test_a_doctored_checkpoint_with_a_valid_checksum_is_refused(checkpoint_file, tmp_path, name):
    edit, match = CHECKPOINT_EDITS[name]
    path = tmp_path / "ckpt-000000007.npz"
    path.write_bytes(_edited(checkpoint_file, edit))
    with pytest.raises(ModelFileError, match=match):
        ckpt.read_checkpoint(path)
        ckpt.model_from_checkpoint(path)  # the architecture edits are only found when building


def test_the_unedited_checkpoint_reads(checkpoint_file, tmp_path):
    path = tmp_path / "ckpt-000000007.npz"
    path.write_bytes(_edited(checkpoint_file, lambda a, m: None))
    arrays, meta = ckpt.read_checkpoint(path)
    model, state = ckpt.model_from_checkpoint(path)
    assert state.step == meta["step"] > 0 and sorted(state.perm) == list(range(120))


def test_write_npz_refuses_reserved_names(tmp_path):
    for name in (JSON_KEY, "", "x.npy"):
        with pytest.raises(ValueError, match="invalid array name"):
            write_npz(tmp_path / "f.npz", {name: np.zeros(1)}, {})
    assert not list(tmp_path.iterdir())
