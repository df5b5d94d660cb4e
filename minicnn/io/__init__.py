"""Files: minicnn model files (:mod:`.model_file`), Keras files (:mod:`.keras`, with h5py but
never TensorFlow) and training checkpoints (:mod:`.checkpoint`). Everything here reads without
pickle and writes atomically (:mod:`minicnn.fileio`); damaged or hostile input is a ModelFileError
(sizes are checked against what the architecture needs before reading), a failed write a
FileWriteError, and a checkpoint directory is locked while a run uses it (:mod:`.dirlock`).

Depends on the model and the layers, never on training.
"""

from . import checkpoint, keras, model_file
from .model_file import is_keras_path, load_model, save_model

__all__ = ["checkpoint", "keras", "model_file", "load_model", "save_model", "is_keras_path"]
