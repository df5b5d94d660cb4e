"""``TrainingDynamics``: what each layer does during training, per epoch, cheaply enough to leave on.

Recorded per epoch and per layer into ``model.history.dynamics`` (saved with the history:
``History.to_dict()['dynamics']``, and so in the JSON ``minicnn train`` writes), as
``{quantity: {layer name: [one value per epoch]}}``:

``grad_norm``
    L2 norm of the layer's gradients (all its trainable weights together), averaged over the
    sampled steps of the epoch (every ``every``-th step).
``update_ratio``
    ``||w_after - w_before|| / ||w_before||`` of one step, averaged over the sampled steps: the
    update-to-weight ratio (around 1e-3 is the classic healthy value).
``dead_relu``
    For layers ending in ReLU: the share of units (Dense units; a convolution's filters, at every
    position) whose output is 0 for every sample of a fixed probe batch: units that pass no
    gradient any more.
``maxpool_ties``
    For MaxPooling2D: the share of pooling windows whose maximum is attained more than once
    (after ReLU, mostly all-zero windows): there the gradient is routed by the tie rule alone.
``act_mean``, ``act_std``
    Mean and standard deviation of every layer's output on the probe batch.

The probe batch is the first ``probe_samples`` training samples, run in inference mode at the end
of each epoch. Cost: one probe forward pass per epoch plus one copy of the weights every
``every`` steps.
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels.numpy_backend import pad_nhwc, windows
from .base import Callback

QUANTITIES = ("grad_norm", "update_ratio", "dead_relu", "maxpool_ties", "act_mean", "act_std")


def _sq(arrays) -> float:
    """Sum of squares of every array (BLAS dot in the arrays' dtype: no copies)."""
    return float(sum(float(np.vdot(a, a)) for a in arrays))


def is_relu(layer) -> bool:
    return getattr(layer, "activation", None) == "relu" or layer.kind == "re_lu"


def dead_share(out) -> float:
    """Share of a ReLU layer's units (a Dense unit; a convolution's filter, over all positions)
    whose output is 0 for every sample of ``out``."""
    return float((out <= 0).reshape(-1, out.shape[-1]).all(axis=0).mean())


def maxpool_tie_share(layer, x) -> float:
    """Share of ``layer``'s (a MaxPool2D) windows on input ``x`` whose maximum occurs twice or more."""
    w = windows(pad_nhwc(x, layer.pads, value=-np.inf), layer.pool_size, layer.strides, layer.output_shape[:2])
    m = w.max(axis=(3, 4), keepdims=True)
    return float(((w == m).sum(axis=(3, 4)) > 1).mean())


class TrainingDynamics(Callback):
    """Record per-layer training dynamics each epoch (see the module docstring)."""

    def __init__(self, every: int = 50, probe_samples: int = 128):
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.every, self.probe_samples = every, int(probe_samples)
        self.probe = None
        self.record = {}

    def set_data(self, x, y):
        self.probe = x[:self.probe_samples]

    def on_train_begin(self, logs=None):
        previous = getattr(self.model.history, "dynamics", None)  # a resumed run goes on
        self.record = {q: {k: list(v) for k, v in previous.get(q, {}).items()} for q in QUANTITIES} \
            if previous else {q: {} for q in QUANTITIES}
        self._before = None

    def on_epoch_begin(self, epoch):
        self._grad, self._ratio = {}, {}

    def on_batch_begin(self, step):
        if (step - 1) % self.every == 0:
            self._before = {l.name: [l.params[k].copy() for k in l.trainable_names]
                            for l in self.model.layers if l.trainable_names}

    def on_batch_end(self, step, logs):
        if self._before is None:
            return
        for layer in self.model.layers:
            old = self._before.get(layer.name)
            if old is None:
                continue
            new = [layer.params[k] for k in layer.trainable_names]
            self._grad.setdefault(layer.name, []).append(math.sqrt(_sq(layer.grads[k] for k in layer.trainable_names)))
            norm = math.sqrt(_sq(old))
            for n, o in zip(new, old):
                np.subtract(n, o, out=o)  # the snapshot becomes the update
            self._ratio.setdefault(layer.name, []).append(math.sqrt(_sq(old)) / norm if norm > 0 else 0.0)
        self._before = None

    def _add(self, quantity, layer, value):
        self.record[quantity].setdefault(layer, []).append(float(value))

    def on_epoch_end(self, epoch, logs):
        for name, values in self._grad.items():
            self._add("grad_norm", name, np.mean(values))
        for name, values in self._ratio.items():
            self._add("update_ratio", name, np.mean(values))
        if self.probe is not None and len(self.probe):
            model = self.model
            x = model.check_x(self.probe, "x")
            _, outs = model.forward(x, training=False, record=True)
            inputs = [x, *outs[:-1]]
            for layer, inp, out in zip(model.layers, inputs, outs):
                self._add("act_mean", layer.name, out.mean(dtype=np.float64))
                self._add("act_std", layer.name, out.std(dtype=np.float64))
                if is_relu(layer):
                    self._add("dead_relu", layer.name, dead_share(out))
                if layer.kind == "max_pooling2d":
                    self._add("maxpool_ties", layer.name, maxpool_tie_share(layer, inp))
        self.model.history.dynamics = {q: {k: list(v) for k, v in d.items()} for q, d in self.record.items() if d}
