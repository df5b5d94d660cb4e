"""The project's own exception types.

Every error a user can provoke with bad input is one of these (or a ``ValueError`` /
``TypeError`` for bad arguments), with a message that names what is wrong and where.
"""


class MiniCNNError(Exception):
    """Base class of minicnn's own errors."""


class DatasetError(MiniCNNError):
    """A dataset file is missing, corrupt, truncated or not what it claims to be."""


class ModelFileError(MiniCNNError):
    """A model, weights or checkpoint file is missing, damaged, tampered with or unsupported."""


class NonFiniteError(MiniCNNError, FloatingPointError):
    """Training produced a NaN or inf (in the loss, a gradient or an activation)."""


class KerasConfigError(ValueError):
    """A Keras architecture uses a layer or an option minicnn does not have (names which)."""


class KerasUnsupportedError(MiniCNNError, NotImplementedError, ImportError):
    """Keras code asked for something Keras has and minicnn does not (names what, and what to use).

    Also an ImportError, so that ``from minicnn.keras.layers import LSTM`` fails with this
    message and ``try: ... except ImportError`` feature checks keep working."""
