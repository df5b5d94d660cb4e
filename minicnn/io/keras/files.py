"""Loading and saving Keras files as a whole: sniffing the format, building the architecture,
matching and assigning weights (nothing is assigned before everything checked out)."""

from __future__ import annotations

import io
import os
import zipfile

from ...errors import KerasConfigError, ModelFileError
from ...fileio import MAX_DATA_BYTES, MAX_JSON_BYTES, atomic_write, read_bounded
from ...model import Network
from .common import CONFIG_NAME, HDF5_MAGIC, WEIGHTS_NAME, ZIP_MAGIC, fail, h5py_module
from .compile import compile_from_keras
from .config import keras3_keys_of, model_from_keras_config
from .h5read import (
    open_h5,
    parse_json,
    read_array,
    read_keras3_layers,
    read_legacy_layers,
    stored_values,
    str_attr,
)
from .write import keras3_weights_bytes, keras_zip_bytes, legacy_h5_bytes, legacy_weights_h5_bytes


def _weighted_layers(model):
    return [layer for layer in model.layers if layer.params]


def _match(layer, label, entries, path):
    """[(weight name, dataset)] in the layer's order: Keras 3 entries are datasets in get_weights
    order; legacy entries are (name, dataset) pairs matched by name."""
    names = [k for k in layer.weight_names if k in layer.params]
    if entries and isinstance(entries[0], tuple):
        by_name = {layer.keras_weight_aliases.get(n, n): ds for n, ds in entries}
        if set(by_name) != set(names) or len(by_name) != len(entries):
            fail(path, f"file layer {label!r} has weights {sorted(n for n, _ in entries)}, but layer "
                       f"'{layer.name}' ({type(layer).__name__}) has {sorted(names)}")
        return [(k, by_name[k]) for k in names]
    if len(entries) != len(names):
        fail(path, f"file layer {label!r} has {len(entries)} weights, but layer '{layer.name}' "
                   f"({type(layer).__name__}) has {len(names)} ({', '.join(names)})")
    return list(zip(names, entries))


def _assign(model, per_layer, path, dtype_cast=False):
    """Copy [(label, entries)] into the model's weighted layers, in order. Every declared shape
    and dtype is checked against the architecture before anything is read."""
    targets = _weighted_layers(model)
    if len(per_layer) != len(targets):
        fail(path, f"the file has weights for {len(per_layer)} layers "
                   f"({', '.join(l for l, _ in per_layer) or 'none'}) but the architecture has "
                   f"{len(targets)} layers with weights ({', '.join(l.name for l in targets)})")
    matched = []
    for (label, entries), layer in zip(per_layer, targets):
        for k, ds in _match(layer, label, entries, path):
            p = layer.params[k]
            if tuple(ds.shape) != p.shape:
                fail(path, f"weight {k!r} of file layer {label!r} has shape {tuple(ds.shape)}, but layer "
                           f"'{layer.name}' expects {p.shape}")
            if ds.dtype != p.dtype and not dtype_cast:
                fail(path, f"weight {k!r} of file layer {label!r} is {ds.dtype}, expected {p.dtype}")
            matched.append((p, ds, f"weight {label}/{k}"))
    staged = [(p, read_array(ds, path, what)) for p, ds, what in matched]
    for p, arr in staged:  # only after everything checked out and was read
        p[...] = arr


def _sniff(path):
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise ModelFileError(f"Keras file {os.fspath(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ModelFileError(f"Keras file {os.fspath(path)!r} is a directory (SavedModel "
                             "directories are not supported)") from None
    except OSError as e:
        raise ModelFileError(f"Keras file {os.fspath(path)!r} cannot be read: {e}") from None
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head == HDF5_MAGIC:
        return "h5"
    return None


def _build(config, path, max_params, model_class):
    try:
        return model_from_keras_config(config, source=f"Keras file {os.fspath(path)!r}", max_params=max_params,
                                       model_class=model_class)
    except KerasConfigError as e:
        raise ModelFileError(str(e)) from None


def load(path, architecture=None, model_class=Network):
    """Load a Keras file into a minicnn :class:`~minicnn.model.Sequential`.

    Full-model files (``.keras``, legacy ``.h5`` with a ``model_config``) build their own
    architecture (``architecture`` is then not used). Weights-only files (``.weights.h5``, legacy
    weights ``.h5``) need ``architecture``: a built Sequential whose weights are overwritten
    (cast to its dtype) and which is returned.
    """
    path = os.fspath(path)
    kind = _sniff(path)
    if kind is None:
        fail(path, "is neither an HDF5 file nor a zip archive (not a Keras file, or damaged)")
    try:
        if kind == "zip":
            return _load_keras_zip(path, architecture, model_class)
        return _load_h5(path, architecture, model_class)
    except ModelFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile, EOFError, RuntimeError,
            OverflowError) as e:  # h5py reading a damaged in-memory file can overflow
        fail(path, f"is damaged or not what it claims to be ({type(e).__name__}: {e})")


def _need_architecture(path, architecture):
    if architecture is None:
        fail(path, "holds weights only; pass architecture= (a built minicnn model; on the command "
                    "line: --preset) to load it")
    if not isinstance(architecture, Network) or not architecture.built:
        raise TypeError("architecture must be a built minicnn Sequential")
    return architecture


def _load_h5(path, architecture, model_class):
    h5py = h5py_module()
    with open_h5(path, path) as h5:
        if "model_config" in h5.attrs:
            config = parse_json(str_attr(h5, "model_config"), path, "attribute 'model_config'")
            if "model_weights" not in h5 or not isinstance(h5["model_weights"], h5py.Group):
                fail(path, "has a model_config but no 'model_weights' group")
            model = _build(config, path, stored_values(h5["model_weights"]), model_class)
            _assign(model, read_legacy_layers(h5["model_weights"], path), path)
            return model
        if "layers" in h5 or "_layer_checkpoint_dependencies" in h5:
            model = _need_architecture(path, architecture)
            _assign_keras3(model, read_keras3_layers(h5, path), path, dtype_cast=True)
            return model
        if "layer_names" in h5.attrs or "layer_names0" in h5.attrs:
            model = _need_architecture(path, architecture)
            _assign(model, read_legacy_layers(h5, path), path, dtype_cast=True)
            return model
        if "model_weights" in h5:
            fail(path, "has a 'model_weights' group but no 'model_config' attribute")
        fail(path, "is an HDF5 file but not a Keras model or weights file (no 'layers' group, "
                    "'layer_names' attribute or 'model_config')")


def _assign_keras3(model, found, path, dtype_cast=False):
    """Match Keras 3 keys (class-name counters in model order) to the model's weighted layers."""
    keys = keras3_keys_of(model)
    per_layer = []
    wanted = set()
    for key, layer in zip(keys, model.layers):
        if not layer.params:
            continue
        wanted.add(key)
        if key not in found:
            fail(path, f"no weights for layer '{layer.name}' (expected group 'layers/{key}/vars'; "
                        f"the file has weights for {', '.join(sorted(found)) or 'no layer'})")
        per_layer.append((key, found[key]))
    extra = sorted(set(found) - wanted)
    if extra:
        fail(path, f"has weights for layers the architecture lacks: {', '.join(extra)}")
    _assign(model, per_layer, path, dtype_cast=dtype_cast)


def weights_limit(model) -> int:
    """The most bytes a ``.keras`` archive's weights file may inflate to for ``model``: its weights,
    the optimizer state Keras saves beside them when the model was compiled (at most four slots per
    trainable weight: Adam's m and v, AMSGrad's v-hat, an EMA copy), plus HDF5's overhead (groups
    and attributes per layer and per optimizer variable), under the hard cap."""
    need = sum(p.nbytes for _, p in model.named_weights())
    trainable = sum(p.nbytes for layer in model.layers for name, p in layer.params.items()
                    if name in layer.trainable_names)
    overhead = (1 << 20) + (64 << 10) * len(model.layers) * 2
    return min(MAX_DATA_BYTES, need + 4 * trainable + (need + 4 * trainable) // 8 + overhead)


def _member(z, name, path):
    infos = [i for i in z.infolist() if i.filename == name]
    if len(infos) != 1:
        fail(path, f"is a zip archive with {len(infos) or 'no'} {name} entries (not a Keras 3 .keras file)")
    if infos[0].flag_bits & 0x1:
        fail(path, f"entry {name} is encrypted")
    return infos[0]


def _load_keras_zip(path, architecture, model_class):
    """config.json first (bounded), then the architecture it describes bounds how far
    model.weights.h5 may inflate: its declared size is checked before decompressing, and the
    decompression itself stops one byte past the limit whatever the zip header claimed."""
    def refuse(msg):
        fail(path, msg)

    try:
        with zipfile.ZipFile(path) as z:
            cinfo, winfo = _member(z, CONFIG_NAME, path), _member(z, WEIGHTS_NAME, path)
            if cinfo.file_size > MAX_JSON_BYTES:
                fail(path, f"entry {CONFIG_NAME} declares {cinfo.file_size} bytes, more than the "
                           f"{MAX_JSON_BYTES} a minicnn reader accepts; refused before decompressing")
            with z.open(cinfo) as f:
                config = parse_json(read_bounded(f, MAX_JSON_BYTES, refuse, f"entry {CONFIG_NAME}"),
                                    path, CONFIG_NAME)
            # the declared size bounds the architecture (4 bytes a value at least) ...
            model = _build(config, path, winfo.file_size // 4, model_class)
            limit = weights_limit(model)
            # ... and the architecture bounds the decompression
            if winfo.file_size > limit:
                fail(path, f"entry {WEIGHTS_NAME} declares {winfo.file_size} bytes uncompressed, more "
                           f"than the {limit} its architecture needs; refused before decompressing")
            with z.open(winfo) as f:
                weights_bytes = read_bounded(f, limit, refuse, f"entry {WEIGHTS_NAME}")
    except zipfile.BadZipFile as e:
        fail(path, f"is not a readable zip archive: {e}")
    with open_h5(io.BytesIO(weights_bytes), path) as h5:
        _assign_keras3(model, read_keras3_layers(h5, path), path)
    if isinstance(config, dict):
        compile_from_keras(model, config.get("compile_config"))
    return model

# =============================================================================== writing


def save(model, path) -> None:
    """Write ``model`` as a Keras file chosen by suffix: ``.weights.h5`` (Keras 3 weights),
    ``.keras`` (Keras 3 archive) or ``.h5`` (legacy full model). Written atomically."""
    path = os.fspath(path)
    low = path.lower()
    if not model.built:
        raise ValueError("build the model (or fit it) before saving")
    if low.endswith(".weights.h5"):
        data = keras3_weights_bytes(model)
    elif low.endswith(".keras"):
        data = keras_zip_bytes(model)
    elif low.endswith(".h5"):
        data = legacy_h5_bytes(model)
    else:
        raise ValueError(f"{path!r}: Keras files end in .weights.h5, .keras or .h5")
    atomic_write(path, data)


def save_weights(model, path) -> None:
    """Write ``model``'s weights: ``.weights.h5`` (Keras 3 layout) or any other ``.h5`` (Keras 2's
    ``save_weights`` layout; Keras 3's ``load_weights`` reads both). Written atomically."""
    path = os.fspath(path)
    low = path.lower()
    if not model.built:
        raise ValueError("build the model (or fit it) before saving its weights")
    if low.endswith(".weights.h5"):
        data = keras3_weights_bytes(model)
    elif low.endswith((".h5", ".hdf5")):
        data = legacy_weights_h5_bytes(model)
    else:
        raise ValueError(f"{path!r}: weights files end in .weights.h5 (Keras 3) or .h5 (Keras 2 layout)")
    atomic_write(path, data)


def load_weights(model, path) -> None:
    """Overwrite a built ``model``'s weights from any Keras file (``.weights.h5``, Keras 2 ``.h5``
    weights, legacy full-model ``.h5``, ``.keras``), cast to its dtype; nothing is assigned unless
    every weight matches the architecture."""
    source = load(path, architecture=model, model_class=type(model))
    if source is model:
        return
    ours, theirs = list(model.named_weights()), list(source.named_weights())
    if [p.shape for _, p in ours] != [q.shape for _, q in theirs]:
        fail(path, f"holds weights of shapes {[q.shape for _, q in theirs]}, but model '{model.name}' "
                   f"has {[p.shape for _, p in ours]}")
    for (_, p), (_, q) in zip(ours, theirs):
        p[...] = q
