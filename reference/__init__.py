"""The TensorFlow/Keras side of minicnn's parity checks.

This package imports TensorFlow; :mod:`minicnn` never does. It holds

* :mod:`reference.convert`: minicnn Sequential <-> Keras 3 Sequential, weights both ways (the one
  place that knows both frameworks' layouts);
* :mod:`reference.crosscheck`: the layer-by-layer and training-trajectory comparison behind
  ``minicnn crosscheck``, with the tolerance table;
* :mod:`reference.train`: ``python -m reference.train``, the same models trained by Keras on
  whatever devices TensorFlow sees (MirroredStrategy / MultiWorkerMirroredStrategy).

Submodules are imported on demand so that ``import reference`` stays cheap.
"""

import os as _os

# Quiet TensorFlow's C++ logging unless the user asked for something else.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["convert", "crosscheck", "train"]
