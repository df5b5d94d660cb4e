"""Cross-entropy losses with Keras 3 (TensorFlow backend) semantics.

* Reduction is the mean over the batch ("sum_over_batch_size").
* ``from_logits=False``: categorical CE renormalises the probabilities to sum to 1, clips them to
  [eps, 1 - eps] with eps = 1e-7, then takes -sum(y * log p). Sparse CE clips first and
  renormalises through log-softmax of log(p), as ``keras.backend.sparse_categorical_crossentropy``
  does. The clip zeroes the gradient where p is outside [eps, 1 - eps].
* When the model ends in softmax, Keras's TF backend quietly computes the loss from the logits
  (``_get_logits``). minicnn does the same through :meth:`logits_loss_and_grad`, the fused
  softmax + cross-entropy whose gradient is ``(softmax(z) - y) / N``.
"""

from __future__ import annotations

import numpy as np

from .activations import log_softmax, softmax

EPSILON = 1e-7


def _check_pair(y_true, y_pred, sparse):
    if y_pred.ndim != 2:
        raise ValueError(f"cross-entropy expects predictions of shape (batch, classes), received {y_pred.shape}")
    n, k = y_pred.shape
    if sparse:
        if y_true.shape not in ((n,), (n, 1)):
            raise ValueError(f"sparse labels must have shape ({n},), received {y_true.shape}")
        labels = y_true.reshape(n).astype(np.intp)
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            bad = int(np.flatnonzero((labels < 0) | (labels >= k))[0])
            raise ValueError(f"label {y_true.reshape(n)[bad]} at index {bad} is out of range [0, {k})")
        return labels
    if y_true.shape != y_pred.shape:
        raise ValueError(f"one-hot labels must have shape {y_pred.shape}, received {y_true.shape}")
    return y_true.astype(y_pred.dtype, copy=False)


class CategoricalCrossentropy:
    """Cross-entropy for one-hot (or soft) labels ``y_true`` (N, K) and predictions (N, K)."""

    sparse = False
    name = "categorical_crossentropy"

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    # -- helpers shared by both label kinds ------------------------------------------------
    def _labels(self, y_true, y_pred):
        return _check_pair(np.asarray(y_true), y_pred, self.sparse)

    def _pick(self, labels, logp):
        """-sum(y * logp) per sample."""
        return -(labels * logp).sum(axis=-1)

    def _onehot_like(self, labels, z):
        return labels

    # -- public ------------------------------------------------------------------------------
    def __call__(self, y_true, y_pred) -> float:
        return self.loss_and_grad(y_true, y_pred, need_grad=False)[0]

    def loss_and_grad(self, y_true, y_pred, need_grad=True):
        """Mean loss and its gradient w.r.t. ``y_pred`` (probabilities, or logits if from_logits)."""
        labels = self._labels(y_true, y_pred)
        if self.from_logits:
            return self.logits_loss_and_grad(labels, y_pred, need_grad, checked=True)
        n = y_pred.shape[0]
        eps = y_pred.dtype.type(EPSILON)
        total = y_pred.sum(axis=-1, keepdims=True)
        q = y_pred / total
        qc = np.clip(q, eps, 1 - eps)
        loss = self._pick(self._onehot_like(labels, q), np.log(qc)).mean()
        if not need_grad:
            return loss, None
        y = self._onehot_like(labels, q)
        inside = (q >= eps) & (q <= 1 - eps)
        g = np.where(inside, -y / qc, 0).astype(y_pred.dtype)  # dL/dq per sample
        dp = (g - (g * q).sum(axis=-1, keepdims=True)) / total  # through q = p / sum(p)
        return loss, dp / y_pred.dtype.type(n)

    def logits_loss_and_grad(self, y_true, z, need_grad=True, checked=False):
        """Fused softmax + cross-entropy from logits ``z`` (N, K): loss, dL/dz = (softmax(z) - y) / N."""
        labels = y_true if checked else self._labels(y_true, z)
        y = self._onehot_like(labels, z)
        loss = self._pick(y, log_softmax(z)).mean()
        if not need_grad:
            return loss, None
        return loss, (softmax(z) - y) / z.dtype.type(z.shape[0])

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy for integer labels ``y_true`` (N,) in [0, K)."""

    sparse = True
    name = "sparse_categorical_crossentropy"

    def _onehot_like(self, labels, z):
        y = np.zeros(z.shape, dtype=z.dtype)
        y[np.arange(z.shape[0]), labels] = 1
        return y

    def loss_and_grad(self, y_true, y_pred, need_grad=True):
        labels = self._labels(y_true, y_pred)
        if self.from_logits:
            return self.logits_loss_and_grad(labels, y_pred, need_grad, checked=True)
        # Keras: clip the probabilities, then log-softmax of their log (renormalises after clipping)
        eps = y_pred.dtype.type(EPSILON)
        pc = np.clip(y_pred, eps, 1 - eps)
        total = pc.sum(axis=-1, keepdims=True)
        n = y_pred.shape[0]
        rows = np.arange(n)
        loss = (np.log(total[:, 0]) - np.log(pc[rows, labels])).mean()
        if not need_grad:
            return loss, None
        y = self._onehot_like(labels, y_pred)
        g = 1 / total - y / pc
        g = np.where((y_pred >= eps) & (y_pred <= 1 - eps), g, 0).astype(y_pred.dtype)
        return loss, g / y_pred.dtype.type(n)


LOSSES = {"categorical_crossentropy": CategoricalCrossentropy,
          "sparse_categorical_crossentropy": SparseCategoricalCrossentropy}


def get(loss):
    if isinstance(loss, CategoricalCrossentropy):
        return loss
    if isinstance(loss, dict):
        return get(loss["name"]).__class__(from_logits=loss.get("from_logits", False))
    try:
        return LOSSES[loss]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}") from None


def accuracy(y_true, y_pred) -> float:
    """Share of samples whose argmax prediction equals the label (one-hot or sparse labels)."""
    y_true = np.asarray(y_true)
    labels = y_true.argmax(axis=-1) if y_true.ndim == 2 and y_true.shape[1] > 1 else y_true.reshape(-1)
    return float((y_pred.argmax(axis=-1) == labels).mean())
