"""Keras model and weights files, read and written with h5py, zipfile and json (no TensorFlow).

Reads
  * Keras 3 ``.keras`` archives: ``config.json`` (architecture) + ``model.weights.h5``;
  * Keras 3 ``.weights.h5``: datasets ``layers/<key>/vars/<i>`` (0 = kernel, 1 = bias), where
    ``<key>`` is the snake-cased *class* name made unique by a counter in model order
    (``conv2d``, ``conv2d_1``, ``dense``, ...), not the layer name;
  * legacy full-model ``.h5`` (``model.save('m.h5')``): attribute ``model_config`` (JSON) and
    ``model_weights/<layer>/...`` datasets listed by each layer group's ``weight_names``
    attribute (``<layer>/kernel:0`` from Keras 2, ``<model>/<layer>/kernel`` from Keras 3);
  * legacy weights-only ``.h5`` (Keras 2 ``save_weights('w.h5')``): the same layer groups at the
    root of the file.

The file's *content* decides the layout (zip or HDF5, which groups exist); the suffix only says
whether the caller expects a full model. Weights-only files carry no architecture: pass
``architecture=`` (a built :class:`~minicnn.model.Sequential`), and its weighted layers are
matched to the file's in order (Keras 3 keys are derived from that order exactly as Keras does;
legacy files list their layers in order). Layer names are never used for matching.

Writes ``.weights.h5`` (what ``keras.Model.load_weights`` reads), ``.keras`` and legacy ``.h5``
(what ``keras.saving.load_model`` reads), and Keras 2's weights-only ``.h5`` layout
(:func:`save_weights` of any other ``.h5`` name; Keras 3's ``load_weights`` reads it); all are
round-trip tested against Keras.

Only the layers and options minicnn implements are accepted (Conv2D, Dense, MaxPooling2D,
Flatten, ReLU, Softmax, Activation, Dropout, InputLayer: see :data:`minicnn.layers.KERAS_CLASSES`). Anything else,
including Lambda layers and custom objects, is refused with a :class:`ModelFileError` naming the
layer and the option. Nothing from a file is ever executed or imported: class names are looked
up in a fixed table. Every failure on a damaged file is a :class:`ModelFileError` naming it.

Hostile files are refused before anything is read or allocated: HDF5 files must be
self-contained (no soft or external links, virtual datasets, external storage or unknown
filters; no link is ever followed) and every dataset must store what it declares; a ``.keras``
archive's ``config.json`` is capped (16 MiB, 64 levels of nesting) and its ``model.weights.h5``
may inflate no further than the architecture in ``config.json`` needs (checked against the zip
directory, then enforced by a bounded read); every dataset's shape and dtype are checked against
the architecture before it is read.
"""

from ...errors import KerasConfigError
from .common import (
           ALLOCATION_ALLOWANCE,
           CONFIG_NAME,
           HDF5_MAGIC,
           METADATA_NAME,
           WEIGHTS_NAME,
           ZIP_MAGIC,
)
from .config import (
           keras3_keys,
           keras3_keys_of,
           keras_config,
           keras_layer_spec,
           layer_from_keras,
           model_from_keras_config,
)
from .files import load, load_weights, save, save_weights

__all__ = ["load", "save", "load_weights", "save_weights", "model_from_keras_config", "keras_config", "keras_layer_spec", "layer_from_keras",
           "keras3_keys", "keras3_keys_of", "KerasConfigError", "ALLOCATION_ALLOWANCE", "CONFIG_NAME",
           "HDF5_MAGIC", "METADATA_NAME", "WEIGHTS_NAME", "ZIP_MAGIC"]
