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


def read_array(ds, path, what):
    h5py = h5py_module()
    if not isinstance(ds, h5py.Dataset):
        fail(path, f"{what} is not a dataset")
    if ds.dtype.kind != "f":
        fail(path, f"{what} has dtype {ds.dtype}, expected floating point")
    arr = np.asarray(ds[()])
    if not np.isfinite(arr).all():
        fail(path, f"{what} contains NaN or inf")
    return arr


def _legacy_weight_kind(weight_name):
    base = weight_name.rsplit("/", 1)[-1].split(":")[0]
    if base in ("kernel", "bias"):
        return base
    return None


def read_legacy_layers(group, path):
    """[(layer group name, {'kernel': arr, 'bias': arr})] for every layer with weights, in order."""
    h5py = h5py_module()
    names = attr_list(group, "layer_names")
    if not names:
        fail(path, f"group {group.name!r} has no 'layer_names' attribute (not a Keras weights group)")
    out = []
    for lname in names:
        if lname not in group or not isinstance(group[lname], h5py.Group):
            fail(path, f"layer group {lname!r} listed in {group.name!r} is missing")
        lg = group[lname]
        weights = {}
        for wname in attr_list(lg, "weight_names"):
            kind = _legacy_weight_kind(wname)
            if kind is None:
                fail(path, f"layer {lname!r} has a weight {wname!r} that minicnn does not know "
                            "(only kernel and bias)")
            if wname not in lg:
                fail(path, f"weight {wname!r} of layer {lname!r} is missing")
            weights[kind] = read_array(lg[wname], path, f"weight {lname}/{wname}")
        if weights:
            out.append((lname, weights))
    return out


def read_keras3_layers(h5, path):
    """{key: {'kernel': arr, 'bias': arr}} for every layer group under ``layers/`` with weights."""
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
        if len(idx) > 2:
            fail(path, f"layer '{key}' has {len(idx)} weights; minicnn layers have a kernel and a bias")
        arrays = [read_array(v[s], path, f"weight {v.name}/{s}") for s in idx]
        out[key] = dict(zip(("kernel", "bias"), arrays))
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
