"""The project's own exception types.

Every error a user can provoke with bad input is one of these (or a ``ValueError`` /
``TypeError`` for bad arguments), with a message that names what is wrong and where.
"""

import errno


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


class FileWriteError(MiniCNNError, OSError):
    """Writing a file failed (disk full, file too large, read-only or forbidden place): the
    previous file, if any, is intact and nothing partial is left. One line naming path and cause."""

    def __init__(self, path, cause: OSError, context: str = ""):
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.filename = path
        self.cause = cause
        self.context = context

    def __str__(self):
        code = errno.errorcode.get(self.errno, "") if self.errno else ""
        why = f"{self.strerror} ({code})" if code else str(self.strerror)
        return (f"cannot write {self.filename!r}: {why}; the previous file (if any) is intact and "
                f"nothing partial was left{self.context}")


class LockedError(MiniCNNError):
    """A checkpoint directory is in use by another running process (names its pid)."""


class KerasUnsupportedError(MiniCNNError, NotImplementedError, ImportError):
    """Keras code asked for something Keras has and minicnn does not (names what, and what to use).

    Also an ImportError, so that ``from minicnn.keras.layers import LSTM`` fails with this
    message and ``try: ... except ImportError`` feature checks keep working."""
