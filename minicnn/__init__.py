"""minicnn: a from-scratch CNN (NumPy reference maths, numba kernels) with a Keras-like API,
cross-checked layer by layer against TensorFlow/Keras. It never imports TensorFlow."""

from . import callbacks, layers, losses, optimizers
from .callbacks import EarlyStopping, History
from .errors import DatasetError, MiniCNNError, ModelFileError, NonFiniteError
from .kernels import backend_name, get_backend, use_backend
from .model import Sequential, TrainingInterrupted, load_model
from .presets import build_preset

__version__ = "0.1.0"

__all__ = ["Sequential", "load_model", "build_preset", "use_backend", "get_backend", "backend_name",
           "layers", "losses", "optimizers", "callbacks", "datasets", "EarlyStopping", "History",
           "DatasetError", "ModelFileError", "MiniCNNError", "NonFiniteError", "TrainingInterrupted"]


def __getattr__(name):
    # datasets, gradcheck, saving, ... load on first use: `import minicnn` stays cheap
    if name in ("datasets", "gradcheck", "saving", "checkpoint", "presets", "keras_files"):
        import importlib
        return importlib.import_module(f"minicnn.{name}")
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")
