"""Reading the weights out of Keras HDF5 files (legacy layer groups and Keras 3 ``layers/``)."""

from __future__ import annotations

import json

import numpy as np

from .common import fail, h5py_module


def attr_list(group, name):
    """A string-list attribute, also when Keras split it into name0, name1, ... chunks."""
    if name in group.attrs:
        raw = list(np.asarray(group.attrs[name]).reshape(-1))
    else:
        raw, k = [], 0
        while f"{name}{k}" in group.attrs:
            raw.extend(np.asarray(group.attrs[f"{name}{k}"]).reshape(-1))
            k += 1
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in raw]


def str_attr(obj, name):
    v = obj.attrs[name]
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if not isinstance(v, str):
        raise ValueError(f"attribute {name!r} is not a string")
    return v


def dataset(obj, path, what):
    """``obj`` if it is an HDF5 dataset of floats (nothing is read), else a ModelFileError."""
    h5py = h5py_module()
    if not isinstance(obj, h5py.Dataset):
        fail(path, f"{what} is not a dataset")
    if obj.dtype.kind != "f":
        fail(path, f"{what} has dtype {obj.dtype}, expected floating point")
    return obj


def read_array(ds, path, what):
    """The values of a dataset already checked by :func:`dataset` (and against the architecture)."""
    arr = np.asarray(ds[()])
    if not np.isfinite(arr).all():
        fail(path, f"{what} contains NaN or inf")
    return arr


def weight_base_name(weight_name: str) -> str:
    """'kernel' from 'conv2d/kernel:0' (Keras 2) or 'seq/conv2d/kernel' (Keras 3 legacy .h5)."""
    return weight_name.rsplit("/", 1)[-1].split(":")[0]


def read_legacy_layers(group, path):
    """[(layer group name, [(weight base name, dataset), ...])] for every layer with weights, in
    the file's order. Nothing is read yet: the caller checks shapes against the architecture."""
    h5py = h5py_module()
    names = attr_list(group, "layer_names")
    if not names:
        fail(path, f"group {group.name!r} has no 'layer_names' attribute (not a Keras weights group)")
    out = []
    for lname in names:
        if lname not in group or not isinstance(group[lname], h5py.Group):
            fail(path, f"layer group {lname!r} listed in {group.name!r} is missing")
        lg = group[lname]
        weights = []
        for wname in attr_list(lg, "weight_names"):
            if wname not in lg:
                fail(path, f"weight {wname!r} of layer {lname!r} is missing")
            weights.append((weight_base_name(wname), dataset(lg[wname], path, f"weight {lname}/{wname}")))
        if weights:
            out.append((lname, weights))
    return out


def read_keras3_layers(h5, path):
    """{key: [dataset 0, dataset 1, ...]} for every layer group under ``layers/`` with weights
    (Keras 3 numbers a layer's variables in creation order, which is get_weights order)."""
    h5py = h5py_module()
    root = None
    for cand in ("layers", "_layer_checkpoint_dependencies"):
        if cand in h5 and isinstance(h5[cand], h5py.Group):
            root = h5[cand]
            break
    if root is None:
        fail(path, "no 'layers' group (not a Keras 3 weights file)")
    out = {}
    for key in root:
        g = root[key]
        if not isinstance(g, h5py.Group):
            fail(path, f"'{root.name}/{key}' is not a group")
        if "vars" not in g:
            continue
        v = g["vars"]
        if not isinstance(v, h5py.Group):
            fail(path, f"'{v.name}' is not a group")
        idx = sorted(v.keys(), key=lambda s: int(s) if s.isdigit() else -1)
        if not idx:
            continue
        if any(not s.isdigit() for s in idx) or [int(s) for s in idx] != list(range(len(idx))):
            fail(path, f"'{v.name}' holds {list(v.keys())}, expected datasets 0, 1, ...")
        out[key] = [dataset(v[s], path, f"weight {v.name}/{s}") for s in idx]
    return out


def open_h5(source, path):
    h5py = h5py_module()
    try:
        return h5py.File(source, "r")
    except Exception as e:  # OSError for damaged files; anything else h5py raises on garbage
        fail(path, f"is not a readable HDF5 file ({type(e).__name__}: {e})")


def parse_json(text, path, what):
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
        fail(path, f"{what} is not valid JSON: {e}")


def stored_values(group) -> int:
    """Total number of values in every dataset under an HDF5 group (metadata only)."""
    h5py = h5py_module()
    total = 0

    def visit(_, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            total += int(np.prod(obj.shape, dtype=np.int64))

    group.visititems(visit)
    return total
