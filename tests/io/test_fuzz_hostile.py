"""Structure-aware fuzzing of the hostile-file classes: build a valid file, break one property
that a reader must check *before* reading or allocating, and require a ModelFileError naming the
file -- and that reading it allocated little (peak traced memory, which numpy's allocations are
part of, stays under 64 MiB for files whose honest reading needs about 1 MiB).

Classes: for minicnn ``.npz`` model files and checkpoints -- overlapping zip entries, declared
sizes the archive cannot hold, deflated and bomb members, ``.npy`` headers declaring huge shapes,
arrays beyond what the architecture needs, JSON nested too deep or too large; for Keras files
(``.h5``, ``.weights.h5``, and the weights inside ``.keras``) -- any dataset replaced by an HDF5
soft or external link, a virtual dataset, external storage, an unknown filter or a huge declared
shape with nothing stored; and for ``.keras`` archives -- members whose declared or real inflated
size exceeds what the architecture needs, and config JSON nested too deep.
"""

from __future__ import annotations

import itertools
import tracemalloc
import zlib
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from minicnn import load_model
from minicnn import fileio
from minicnn.errors import ModelFileError
from minicnn.fileio import JSON_KEY, npz_bytes
from minicnn.io import checkpoint as ckpt
from minicnn.io import model_file

from tests.io import hostile as H
from tests.io.test_fuzz import CHECKPOINT_BASES, KERAS_BASES, MODEL_BASES, _WORK, _built_small_model, _read_valid
from tests.io.test_model_file import npy_bytes, with_header

FUZZ = settings(max_examples=500, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: peak traced allocation a refused file may cause
PEAK = 64 << 20
#: a small JSON cap for the fuzzed runs (the real one is 16 MiB; the logic is the same)
SMALL_JSON_CAP = 64 << 10
_counter = itertools.count()
_BOMB = None


def _bomb():
    """(deflate stream, CRC) of 64 MiB of zeros (64 KiB compressed), built once."""
    global _BOMB
    if _BOMB is None:
        _BOMB = H.zeros_bomb(64 << 20)
    return _BOMB


def _refused(read, path):
    tracemalloc.start()
    try:
        with mock.patch.object(fileio, "MAX_JSON_BYTES", SMALL_JSON_CAP):
            read(path)
    except ModelFileError as e:
        assert str(path) in str(e)
        return str(e)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < PEAK, f"reading allocated {peak} bytes"
    pytest.fail(f"{path} was accepted")


# ----------------------------------------------------------------------------- npz
NPZ_CLASSES = ["overlap", "declared size", "deflated", "bomb", "header shape", "beyond architecture",
               "json depth", "json size"]


@st.composite
def hostile_npz(draw, bases):
    data = draw(st.sampled_from(bases)).data
    members = H.zip_members(data)
    names = list(members)
    how = draw(st.sampled_from(NPZ_CLASSES))
    name = draw(st.sampled_from(names))
    entries = [H.stored(n, b) for n, b in members.items()]
    i = names.index(name)
    if how == "overlap":  # entries that reuse another's bytes: more declared than the file holds
        k = draw(st.integers(1, 64))
        body = members[name]
        if len(body) * k <= len(data):
            k = len(data) // max(len(body), 1) + 1
        entries += [(f"weights/dup{j}.npy", 0, body, 0, len(body), name) for j in range(k)]
    elif how == "declared size":
        n, m, payload, crc, usize, off = entries[i]
        entries[i] = (n, m, payload, crc, draw(st.integers(usize + 1, 2**32 - 1) | st.integers(0, max(usize - 1, 0))), off)
    elif how == "deflated":
        entries[i] = H.deflated(name, members[name])
    elif how == "bomb":
        bomb, crc = _bomb()
        entries[i] = (name, 8, bomb, crc, draw(st.sampled_from([64 << 20, len(members[name])])), None)
    elif how == "header shape":
        shape = tuple(draw(st.lists(st.integers(2**20, 2**40), min_size=1, max_size=3)))
        entries[i] = H.stored(name, with_header(members[name], f"{{'descr': '<f4', 'fortran_order': False, "
                                                                f"'shape': {shape!r}, }}"))
    elif how == "beyond architecture":
        arrays, meta = _read_valid(data)
        # the budget is the architecture's weights in float64 plus slack; go past it
        budget = (ckpt.checkpoint_budget if "epoch" in meta else model_file.model_budget)(meta)
        extra = draw(st.integers(budget // 4 + 1, budget // 4 + 4096))
        arrays["weights/extra"] = np.zeros(extra, np.float32)
        return H.raw_zip([H.stored(n, b) for n, b in H.zip_members(npz_bytes(arrays, meta)).items()]), how
    elif how == "json depth":
        depth = draw(st.integers(fileio.MAX_JSON_DEPTH + 1, 20_000))
        body = b"[" * depth + b"]" * depth if draw(st.booleans()) else b'{"a":' * depth + b"1" + b"}" * depth
        entries[names.index(JSON_KEY + ".npy")] = H.stored(JSON_KEY + ".npy", npy_bytes(np.frombuffer(body, np.uint8)))
    else:  # json size
        body = b'{"pad": "' + b" " * draw(st.integers(SMALL_JSON_CAP, 2 * SMALL_JSON_CAP)) + b'"}'
        entries[names.index(JSON_KEY + ".npy")] = H.stored(JSON_KEY + ".npy", npy_bytes(np.frombuffer(body, np.uint8)))
    return H.raw_zip(entries), how


@FUZZ
@given(case=hostile_npz(MODEL_BASES))
def test_fuzz_hostile_model_files(case):
    data, how = case
    event(how)
    path = _WORK / f"hostile-{next(_counter) % 4}.npz"
    path.write_bytes(data)
    _refused(lambda p: load_model(p), path)


@FUZZ
@given(case=hostile_npz(CHECKPOINT_BASES))
def test_fuzz_hostile_checkpoints(case):
    data, how = case
    event(how)
    path = _WORK / "ckpt-000000007.npz"
    path.write_bytes(data)
    _refused(lambda p: ckpt.model_from_checkpoint(p), path)


# ----------------------------------------------------------------------------- Keras
H5_PHRASES = {"external_link": "external link", "soft_link": "soft link", "virtual": "virtual dataset",
              "external_storage": "external storage", "huge_empty": "but stores only",
              "filter": "uses HDF5 filter"}


def _keras_paths():
    if KERAS_BASES is None:
        return {}
    out = {}
    for suffix, data in KERAS_BASES.items():
        out[suffix] = _WORK / f"hostile-base{suffix}"
        out[suffix].write_bytes(data)
    out["inner"] = _WORK / "hostile-inner.weights.h5"
    out["inner"].write_bytes(H.zip_members(KERAS_BASES[".keras"])["model.weights.h5"])
    return out


KERAS_PATHS = _keras_paths()


@st.composite
def hostile_keras(draw):
    where = draw(st.sampled_from([".h5", ".weights.h5", ".keras", ".keras zip", ".keras zip"]))
    if where == ".keras zip":
        members = H.zip_members(KERAS_BASES[".keras"])
        name, how = draw(st.sampled_from([("config.json", "bomb"), ("model.weights.h5", "bomb"),
                                          ("config.json", "declared size"), ("model.weights.h5", "declared size"),
                                          ("config.json", "json depth")]))
        entries = [H.stored(n, b) for n, b in members.items()]
        i = list(members).index(name)
        if how == "bomb":
            bomb, crc = _bomb()
            entries[i] = (name, 8, bomb, crc, draw(st.sampled_from([64 << 20, len(members[name])])), None)
        elif how == "declared size":
            n, m, payload, crc, usize, off = entries[i]
            entries[i] = (n, m, payload, crc, draw(st.integers((16 << 20) + 1, 2**32 - 1)), off)
        else:
            depth = draw(st.integers(fileio.MAX_JSON_DEPTH + 1, 20_000))
            entries[i] = H.deflated(name, b"[" * depth + b"]" * depth)
        path = _WORK / "hostile-zip.keras"
        path.write_bytes(H.raw_zip(entries))
        return path, f"{where} {name} {how}", None
    base = KERAS_PATHS["inner" if where == ".keras" else where]
    names = [n for n in H.datasets_of(base)]
    name = draw(st.sampled_from(names))
    how = draw(st.sampled_from(H.H5_HOW))
    huge = tuple(draw(st.lists(st.integers(10**4, 10**7), min_size=1, max_size=3)))
    out = _WORK / f"hostile-variant{'.weights.h5' if where != '.h5' else '.h5'}"
    H.h5_variant(base, out, how, _WORK, name=name, huge_shape=huge)
    if where == ".keras":
        out = H.keras_with_inner(KERAS_PATHS[".keras"], _WORK / "hostile-variant.keras", out)
    return out, f"{where} {how}", H5_PHRASES[how]


@pytest.mark.skipif(KERAS_BASES is None, reason="minicnn.io.keras or h5py not available")
@FUZZ
@given(case=hostile_keras())
def test_fuzz_hostile_keras_files(case):
    from minicnn.io import keras as keras_files
    path, how, phrase = case
    event(how)
    arch = _built_small_model()
    message = _refused(lambda p: keras_files.load(p, architecture=arch), path)
    if phrase is not None:
        assert phrase in message, (how, message)
