"""minicnn: a from-scratch CNN (NumPy reference maths, numba kernels) with a Keras-like API,
cross-checked layer by layer against TensorFlow/Keras. It never imports TensorFlow.

Layering (imports point one way): ``kernels <- layers <- model <- io <- training <- sequential,
presets <- study, cli`` (``reference/`` and ``benchmarks/`` sit outside the package).
"""

from . import (activations, callbacks, datasets, gradcheck, io, layers, losses, optimizers, presets,
               regularizers, training)
from .callbacks import EarlyStopping, History
from .errors import (DatasetError, FileWriteError, KerasConfigError, LockedError, MiniCNNError, ModelFileError,
                     NonFiniteError)
from .kernels import backend_name, get_backend, use_backend
from .presets import build_preset
from .sequential import Sequential, load_model
from .training import TrainingInterrupted

__version__ = "0.1.0"

__all__ = ["Sequential", "load_model", "build_preset", "use_backend", "get_backend", "backend_name",
           "layers", "losses", "optimizers", "callbacks", "datasets", "gradcheck", "io", "presets",
           "activations", "regularizers",
           "training", "EarlyStopping", "History", "DatasetError", "ModelFileError", "MiniCNNError",
           "NonFiniteError", "KerasConfigError", "TrainingInterrupted", "FileWriteError", "LockedError"]
