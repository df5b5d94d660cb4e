"""Files: minicnn model files (:mod:`.model_file`), Keras files (:mod:`.keras`, with h5py but
never TensorFlow) and training checkpoints (:mod:`.checkpoint`). Everything here reads without
pickle and writes atomically (:mod:`minicnn.fileio`); damaged input is a ModelFileError.

Depends on the model and the layers, never on training.
"""

from . import checkpoint, keras, model_file
from .model_file import is_keras_path, load_model, save_model

__all__ = ["checkpoint", "keras", "model_file", "load_model", "save_model", "is_keras_path"]
