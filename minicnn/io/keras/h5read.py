"""Reading the weights out of Keras HDF5 files (legacy layer groups and Keras 3 ``layers/``).

Every file is checked as a whole when it is opened (:func:`check_self_contained`), before any
dataset is read: a model file must be self-contained (no soft or external links, no virtual
datasets, no external storage), and every dataset must store what it declares (a dataset that
declares 3.6 TiB but stores nothing, or a filter that could inflate it without bound, is refused),
within :data:`~minicnn.fileio.MAX_DATA_BYTES` in all.
"""

from __future__ import annotations

import math

import numpy as np

from ...fileio import DEFLATE_MAX_RATIO, MAX_DATA_BYTES
from ...fileio import parse_json as parse_json_bounded
from .common import fail, h5py_module

#: HDF5 filters a Keras file may use (deflate, shuffle, fletcher32, lzf); none inflates more than deflate
ALLOWED_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}


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
    """The HDF5 file ``source`` opened read-only, after :func:`check_self_contained`."""
    h5py = h5py_module()
    try:
        h5 = h5py.File(source, "r")
    except Exception as e:  # OSError for damaged files; anything else h5py raises on garbage
        fail(path, f"is not a readable HDF5 file ({type(e).__name__}: {e})")
    try:
        check_self_contained(h5, path)
    except BaseException:
        h5.close()
        raise
    return h5


def check_self_contained(h5, path) -> int:
    """Refuse (ModelFileError naming the object and the property) any soft, external or
    user-defined link, virtual dataset, dataset with external storage, unknown filter, or dataset
    whose declared size its storage cannot hold; return the declared bytes of all datasets.
    Only metadata is read: no link is followed and no dataset read."""
    h5py = h5py_module()
    total = 0

    # the low-level API: link names as bytes (a fuzzed name need not be UTF-8) and link types
    # without following anything; collected first (an exception inside h5py's callback is mangled)
    h5l, h5o, h5d = h5py.h5l, h5py.h5o, h5py.h5d
    links = []
    h5.id.links.visit(lambda name, info: links.append((name, info.type)) and None, info=True)
    for name, kind in links:
        where = repr("/" + name.decode("utf-8", "backslashreplace"))
        if kind == h5l.TYPE_SOFT:
            target = h5.id.links.get_val(name).decode("utf-8", "backslashreplace")
            fail(path, f"{where} is an HDF5 soft link (to {target!r}); a model file must be "
                       "self-contained, links are not followed")
        if kind == h5l.TYPE_EXTERNAL:
            file, target = (v.decode("utf-8", "backslashreplace") for v in h5.id.links.get_val(name))
            fail(path, f"{where} is an HDF5 external link (to {file!r}:{target!r}); a model file must "
                       "be self-contained, links are not followed")
        if kind != h5l.TYPE_HARD:
            fail(path, f"{where} is an HDF5 link of an unsupported kind (type {kind})")
        oid = h5o.open(h5.id, name)
        if isinstance(oid, h5d.DatasetID):
            total += _check_dataset(h5py.Dataset(oid), path, where)
            if total > MAX_DATA_BYTES:
                fail(path, f"its datasets declare more than {MAX_DATA_BYTES} bytes in all (the hard cap)")
    return total


def _check_dataset(ds, path, where) -> int:
    if ds.is_virtual:
        fail(path, f"dataset {where} is a virtual dataset (its data live in other files); a model "
                   "file must be self-contained")
    if ds.external:
        fail(path, f"dataset {where} has external storage ({ds.external[0][0]!r}, ...); a model file "
                   "must be self-contained")
    if ds.shape is None:  # a null dataspace holds nothing
        return 0
    declared = math.prod(ds.shape) * ds.dtype.itemsize
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    unknown = [f for f in filters if f not in ALLOWED_FILTERS]
    if unknown:
        fail(path, f"dataset {where} uses HDF5 filter {unknown[0]}, which minicnn does not read "
                   f"(allowed: {', '.join(ALLOWED_FILTERS.values())})")
    stored = ds.id.get_storage_size()
    if ds.chunks is not None:
        chunk = math.prod(ds.chunks) * ds.dtype.itemsize
        if chunk > max(declared, 1 << 20):
            fail(path, f"dataset {where} declares chunks of {chunk} bytes, larger than its {declared} bytes")
    possible = stored * DEFLATE_MAX_RATIO + (1 << 16) if filters else stored
    if declared > possible:
        fail(path, f"dataset {where} declares shape {ds.shape} {ds.dtype} ({declared} bytes) but stores "
                   f"only {stored} bytes; refused before reading")
    return declared


def parse_json(text, path, what):
    return parse_json_bounded(text, lambda msg: fail(path, msg), what)


def stored_values(group) -> int:
    """Total number of values in every dataset under an HDF5 group (metadata only; true of the
    file, since :func:`check_self_contained` checked every dataset stores what it declares)."""
    h5py = h5py_module()
    total = 0

    def visit(_, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            total += int(np.prod(obj.shape, dtype=np.int64))

    group.visititems(visit)
    return total
