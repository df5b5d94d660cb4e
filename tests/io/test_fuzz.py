"""Fuzzing the file readers: whatever bytes they are given, they load or raise ModelFileError.

Readers: ``minicnn.load_model`` (minicnn ``.npz`` model files), ``minicnn.io.checkpoint.
read_checkpoint`` and ``model_from_checkpoint`` (training checkpoints), and ``minicnn.io.keras
.load`` (``.keras``, ``.weights.h5``, legacy ``.h5``). Inputs start from valid files and go through
mutations at three levels:

* bytes: flip, overwrite, insert, delete, truncate, extend, or wholly random bytes;
* archive: damage one entry inside a well-formed zip (valid CRCs, so the damage reaches the
  ``.npy`` parser), swap, rename, drop or duplicate entries, or rewrite an entry's ``.npy`` header
  (dtype, shape, order);
* content, re-signed: replace any node of the JSON record with a random JSON value, delete or add
  keys, replace, drop or add arrays -- then write the file with minicnn's own writer, so the
  checksum is valid and only the semantic checks stand between the file and the model.

No other exception type (and no hang or huge allocation) is acceptable.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicnn.io import checkpoint as ckpt
from minicnn.errors import ModelFileError
from minicnn.fileio import JSON_KEY, npz_bytes, read_npz
from minicnn import load_model

from tests.training._train_worker import small_model, synthetic_data
from tests.io.test_model_file import make_zip, split_npy, with_header, zip_entries

FUZZ = settings(max_examples=1000, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
X, Y = synthetic_data()
_WORK = Path(tempfile.mkdtemp(prefix="minicnn-fuzz-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)


class Blob:
    """Bytes handed to a strategy, with a short repr (hypothesis prints strategy arguments)."""

    def __init__(self, data: bytes):
        self.data = data

    def __repr__(self):
        return f"Blob({len(self.data)} bytes)"


def _trained():
    model = small_model()
    model.fit(X, Y, batch_size=20, epochs=1, verbose=0, seed=0)
    return model


def _model_bases():
    model = _trained()
    path = _WORK / "model.npz"
    model.save(path)
    uncompiled = small_model()
    uncompiled.build()
    uncompiled.loss = None
    uncompiled.save(_WORK / "uncompiled.npz")
    return [path.read_bytes(), (_WORK / "uncompiled.npz").read_bytes()]


def _checkpoint_bases():
    d = _WORK / "ckpts"
    small_model().fit(X, Y, batch_size=20, epochs=2, verbose=0, seed=0, checkpoint_dir=d, checkpoint_every=2,
                      keep_checkpoints=10)
    paths = ckpt.list_checkpoints(d)
    mid = [p for p in paths if ckpt.read_checkpoint(p)[1]["step"] > 0][0]
    return [Path(mid).read_bytes(), Path(paths[-1]).read_bytes()]


MODEL_BASES = [Blob(b) for b in _model_bases()]
CHECKPOINT_BASES = [Blob(b) for b in _checkpoint_bases()]


# ----------------------------------------------------------------------------- mutations
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.sampled_from([0, 1, -1, 10**9, 2**63])
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
    | st.sampled_from(["os.system", "builtins.eval", "Conv2D", "Dense", "adam", "float64", "same", "relu", "PCG64"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8)

DESCRS = ["'<f4'", "'<f8'", "'>f4'", "'<f2'", "'|O'", "'<U3'", "'|S2'", "'|b1'", "'<i8'", "'<c8'", "'|V4'",
          "[('a', '<f4')]", "('<f4', (2,))", "'<M8[s]'", "'bogus'", "1"]
# keras_files refuses configs whose weights outgrow the file before allocating (tested below); the
# fuzzed integers stay small anyway so every example runs the full parse
KERAS_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8) | st.sampled_from(["os.system", "builtins.eval", "Conv2D", "Dense", "float64", "same"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8)

SHAPES = st.one_of(st.tuples(), st.lists(st.integers(0, 50), max_size=3).map(tuple),
                   st.lists(st.integers(-3, 2**40), min_size=1, max_size=3).map(tuple),
                   st.sampled_from(["(3,", "None", "'x'", "(2**70,)", "[2, 3]"]))


def _node_paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _node_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _node_paths(v, prefix + (i,))


def _set_path(obj, path, value):
    if not path:
        return value
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = value
    return obj


def _del_path(obj, path):
    if path:
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        del parent[path[-1]]
    return obj


@st.composite
def byte_mutation(draw, blob: Blob) -> bytes:
    data = blob.data
    op = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate", "extend", "random"]))
    n = len(data)
    if op == "random":
        return draw(st.binary(max_size=2048))
    if op == "truncate":
        return data[:draw(st.integers(0, max(n - 1, 0)))]
    if op == "extend":
        return data + draw(st.binary(min_size=1, max_size=256))
    pos = draw(st.integers(0, max(n - 1, 0)))
    if op == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            out[draw(st.integers(0, n - 1))] ^= draw(st.integers(1, 255))
        return bytes(out)
    if op == "overwrite":
        chunk = draw(st.binary(min_size=1, max_size=64))
        return data[:pos] + chunk + data[pos + len(chunk):]
    if op == "insert":
        return data[:pos] + draw(st.binary(min_size=1, max_size=64)) + data[pos:]
    return data[:pos] + data[pos + draw(st.integers(1, 64)):]


@st.composite
def archive_mutation(draw, blob: Blob) -> bytes:
    entries = zip_entries(blob.data)
    op = draw(st.sampled_from(["entry bytes", "swap", "rename", "drop", "duplicate", "header", "header"]))
    i = draw(st.integers(0, len(entries) - 1))
    name, body = entries[i]
    if op == "entry bytes":
        entries[i] = (name, draw(byte_mutation(Blob(body))))
    elif op == "swap":
        j = draw(st.integers(0, len(entries) - 1))
        entries[i], entries[j] = (name, entries[j][1]), (entries[j][0], body)
    elif op == "rename":
        entries[i] = (draw(st.sampled_from([JSON_KEY + ".npy", "perm.npy", "weights/x.npy", "a", "../../etc.npy",
                                             "weights/dense/kernel.npy", "optimizer/iterations.npy"])), body)
    elif op == "drop":
        del entries[i]
    elif op == "duplicate":
        entries.append(entries[i])
    else:
        shape = draw(SHAPES)
        header = (f"{{'descr': {draw(st.sampled_from(DESCRS))}, 'fortran_order': {draw(st.booleans())}, "
                  f"'shape': {shape if isinstance(shape, str) else repr(shape)}, }}")
        entries[i] = (name, with_header(body, header) if body.startswith(b"\x93NUMPY") else body)
    return make_zip(entries)


@st.composite
def resigned_mutation(draw, blob: Blob) -> bytes:
    arrays, meta = _read_valid(blob.data)
    op = draw(st.sampled_from(["json node", "json node", "json node", "json delete", "json add",
                               "array replace", "array drop", "array add", "array dtype"]))
    if op.startswith("json"):
        paths = list(_node_paths(meta))[1:]
        path = draw(st.sampled_from(paths))
        if op == "json node":
            _set_path(meta, path, draw(JSON_VALUES))
        elif op == "json delete":
            _del_path(meta, path)
        else:
            target, node = meta, meta
            for k in path:  # the deepest object on the way down
                node = node[k]
                if isinstance(node, dict):
                    target = node
            target[draw(st.text(max_size=6))] = draw(JSON_VALUES)
    else:
        names = sorted(arrays)
        name = draw(st.sampled_from(names))
        if op == "array replace":
            shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
            dtype = draw(st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "float16"]))
            values = [0, 1, -1, 7] + ([np.nan, np.inf] if dtype.startswith("float") else [])
            arrays[name] = np.full(shape, draw(st.sampled_from(values)), dtype=np.float64).astype(dtype)
        elif op == "array drop":
            del arrays[name]
        elif op == "array add":
            arrays[draw(st.sampled_from(["perm", "weights/dense/extra", "optimizer/v/dense/bias", "optimizer/zz",
                                         "evil"]))] = np.zeros(draw(st.integers(0, 4)), np.float32)
        else:
            with np.errstate(all="ignore"):
                arrays[name] = arrays[name].astype(draw(st.sampled_from(["float64", ">f4", "int32", "float16"])))
    return npz_bytes(arrays, meta)


_VALID_CACHE: dict[bytes, tuple] = {}


def _read_valid(data: bytes):
    key = data[-64:] + len(data).to_bytes(8, "little")
    if key not in _VALID_CACHE:
        path = _WORK / "valid.npz"
        path.write_bytes(data)
        _VALID_CACHE[key] = read_npz(path)
    arrays, meta = _VALID_CACHE[key]
    return {k: v.copy() for k, v in arrays.items()}, json.loads(json.dumps(meta))


class Case:
    """Fuzzed bytes with a short repr (hypothesis prints the failing case)."""

    def __init__(self, data: bytes, how: str):
        self.data, self.how = data, how

    def __repr__(self):
        import hashlib
        return f"Case({self.how}, {len(self.data)} bytes, sha256 {hashlib.sha256(self.data).hexdigest()[:12]})"


@st.composite
def mutated(draw, bases):
    i = draw(st.integers(0, len(bases) - 1))
    level = draw(st.sampled_from(["bytes", "archive", "resigned"]))
    data = draw({"bytes": byte_mutation, "archive": archive_mutation, "resigned": resigned_mutation}[level](bases[i]))
    return Case(data, f"base {i}, {level}")


def _write(data: bytes, name: str) -> Path:
    path = _WORK / name
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- the fuzz tests
@FUZZ
@given(case=mutated(MODEL_BASES))
def test_fuzz_model_file_reader(case):
    path = _write(case.data, "fuzzed-model.npz")
    try:
        model = load_model(path)
    except ModelFileError:
        return
    assert model.built and len(model.get_weights()) == len(list(model.named_parameters()))


@FUZZ
@given(case=mutated(CHECKPOINT_BASES))
def test_fuzz_checkpoint_reader(case):
    path = _write(case.data, "ckpt-000000005.npz")
    try:
        ckpt.read_checkpoint(path)
    except ModelFileError:
        return
    try:
        model, state = ckpt.model_from_checkpoint(path)
    except ModelFileError:
        return
    assert model.built and state.step >= 0


def _keras_bases():
    try:
        from minicnn.io import keras as keras_files
        import h5py  # noqa: F401
    except ImportError:
        return None
    model = _trained()
    out = {}
    for suffix in (".keras", ".weights.h5", ".h5"):
        path = _WORK / f"model{suffix}"
        keras_files.save(model, path)
        out[suffix] = path.read_bytes()
    return out


KERAS_BASES = _keras_bases()


@st.composite
def keras_mutated(draw):
    suffix = draw(st.sampled_from(sorted(KERAS_BASES)))
    base = KERAS_BASES[suffix]
    if suffix == ".keras" and draw(st.booleans()):
        entries = zip_entries(base)
        i = draw(st.integers(0, len(entries) - 1))
        name, body = entries[i]
        if name == "config.json" and draw(st.booleans()):
            cfg = json.loads(body)
            path = draw(st.sampled_from(list(_node_paths(cfg))[1:]))
            body = json.dumps(_set_path(cfg, path, draw(KERAS_JSON_VALUES))).encode()
        else:
            body = draw(byte_mutation(Blob(body)))
        entries[i] = (name, body)
        return Case(make_zip(entries), f"{suffix} entry {name}"), suffix
    return Case(draw(byte_mutation(Blob(base))), f"{suffix} bytes"), suffix


@pytest.mark.skipif(KERAS_BASES is None, reason="minicnn.io.keras or h5py not available")
@FUZZ
@given(case=keras_mutated())
def test_fuzz_keras_file_reader(case):
    from minicnn.io import keras as keras_files
    case, suffix = case
    path = _write(case.data, "fuzzed" + suffix)
    try:
        keras_files.load(path, architecture=_built_small_model())
    except ModelFileError:
        pass


def _built_small_model():
    model = small_model()
    model.build()
    return model


def test_the_fuzz_bases_are_valid():
    for blob in MODEL_BASES:
        load_model(_write(blob.data, "base.npz"))
    for blob in CHECKPOINT_BASES:
        ckpt.model_from_checkpoint(_write(blob.data, "ckpt-000000001.npz"))
    assert all(split_npy(b)[0][:6] == b"\x93NUMPY" for _, b in zip_entries(MODEL_BASES[0].data))
    if KERAS_BASES is not None:
        from minicnn.io import keras as keras_files
        for suffix, data in KERAS_BASES.items():
            assert keras_files.load(_write(data, "base" + suffix), architecture=_built_small_model()).built


@pytest.mark.skipif(KERAS_BASES is None, reason="minicnn.io.keras or h5py not available")
@pytest.mark.parametrize("key, value", [("units", 10**9), ("batch_shape", [None, 10**6, 10**6, 1])])
def test_a_keras_config_asking_for_huge_weights_is_a_model_file_error(key, value):
    from minicnn.io import keras as keras_files
    entries = zip_entries(KERAS_BASES[".keras"])
    cfg = json.loads(dict(entries)["config.json"])

    def first_dict_with(obj):
        if isinstance(obj, dict):
            if key in obj:
                return obj
            obj = list(obj.values())
        for v in obj if isinstance(obj, list) else []:
            found = first_dict_with(v)
            if found is not None:
                return found
        return None

    first_dict_with(cfg)[key] = value
    data = make_zip([(n, json.dumps(cfg).encode() if n == "config.json" else b) for n, b in entries])
    with pytest.raises(ModelFileError):
        keras_files.load(_write(data, "huge.keras"))
