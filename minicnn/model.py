"""Network: a stack of minicnn layers, and the maths of a whole model.

Forward runs the layers in order, backward in reverse; ``compile`` fixes the loss and the
optimizer; ``evaluate`` and ``predict`` run batches; inputs and labels are validated here, before
any computation. Files are :mod:`minicnn.io`'s business and training (``fit``, the guard against
non-finite values, checkpoints, signals) :mod:`minicnn.training`'s; the user-facing
:class:`minicnn.Sequential` puts the three together.
"""

from __future__ import annotations

import numpy as np

from . import losses as losses_mod
from . import optimizers as optimizers_mod
from .arrays import all_finite, as_array, int_arg
from .kernels.threads import ThreadPicker
from .layers import LAYER_CLASSES, Layer

DTYPES = ("float32", "float64")
#: predict runs the network on at most this many samples at a time, whatever its batch_size: a
#: chunk's activations stay in cache. Measured (seed model, numba, 1000 images, 2 cores): 104 ms
#: in chunks of 100-200, 125 ms as one batch of 1000 (its 147 MB conv2 output goes to DRAM)
PREDICT_CHUNK = 128


def _dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.name not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dt.name}")
    return dt


class Network:
    """A linear stack of layers (see :class:`minicnn.Sequential` for the training API).

    Parameters
    ----------
    layers : list of layers, or None (then use :meth:`add`).
    input_shape : per-sample input shape, e.g. (28, 28, 1); may also be given to the first layer,
        to :meth:`build`, or inferred on the first ``fit``/``predict``.
    dtype : 'float32' (default) or 'float64'; weights, activations and gradients all use it.
    seed : seeds weight initialisation and the training RNG (shuffling, dropout).
    """

    #: summary() names layer types as Keras does (MaxPooling2D for MaxPool2D): minicnn.keras's models
    summary_uses_keras_names = False

    def __init__(self, layers=None, name="sequential", input_shape=None, dtype="float32", seed=None):
        self.name = name
        self.layers: list[Layer] = []
        self.dtype = _dtype(dtype)
        self.seed = seed
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.optimizer = None
        self.loss = None
        self.metrics: list[str] = []
        self.stop_training = False
        self.built = False
        self.history = None
        self._init_rng, self.train_rng = self._rngs(seed)
        for layer in layers or []:
            self.add(layer)

    def reseed_training(self, seed) -> None:
        """Restart the training RNG (shuffling, dropout) from ``seed``."""
        self.train_rng.bit_generator.state = self._rngs(seed)[1].bit_generator.state

    @staticmethod
    def _rngs(seed):
        init_seq, train_seq = np.random.SeedSequence(seed).spawn(2)
        return np.random.default_rng(init_seq), np.random.default_rng(train_seq)

    # ------------------------------------------------------------------------------ structure
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a minicnn layer, got {type(layer).__name__}")
        if self.built:
            raise ValueError("cannot add layers to a model that is already built")
        taken = {l.name for l in self.layers}
        if layer.name is None:
            i, name = 0, layer.kind
            while name in taken:
                i += 1
                name = f"{layer.kind}_{i}"
            layer.name = name
        elif layer.name in taken:
            raise ValueError(f"layer name '{layer.name}' is used twice in model '{self.name}'")
        if not self.layers and layer.input_shape is not None and self.input_shape is None:
            self.input_shape = layer.input_shape
        self.layers.append(layer)

    def build(self, input_shape=None) -> None:
        """Create every layer's weights for per-sample ``input_shape`` (no batch axis)."""
        if input_shape is not None:
            self.input_shape = tuple(int(d) for d in input_shape)
        if self.input_shape is None:
            raise ValueError(f"model '{self.name}' needs an input shape: pass input_shape= to the "
                             "model or its first layer, or call build((H, W, C))")
        if not self.layers:
            raise ValueError(f"model '{self.name}' has no layers")
        shape = self.input_shape
        for layer in self.layers:
            layer.build(shape, self.dtype, self._init_rng)
            if hasattr(layer, "rng"):
                layer.rng = self.train_rng
            shape = layer.output_shape
        self.output_shape = shape
        self.built = True

    def _ensure_built(self, x):
        if not self.built:
            self.build(self.input_shape or np.shape(x)[1:])

    @property
    def trainable_layers(self):
        return [l for l in self.layers if l.params]

    def named_parameters(self):
        """(key, param, grad) for every *trainable* weight, in Keras order; key is 'layer/weight'."""
        for layer in self.layers:
            for k in layer.trainable_names:
                yield f"{layer.name}/{k}", layer.params[k], layer.grads[k]

    def non_trainable_weights(self) -> list:
        """The weights no gradient updates (e.g. BatchNormalization's moving statistics)."""
        return [layer.params[k] for layer in self.layers for k in layer.non_trainable_names
                if k in layer.params]

    def named_weights(self):
        """(key, array) for every weight, trainable or not, in Keras get_weights order."""
        for layer in self.layers:
            for k in layer.weight_names:
                if k in layer.params:
                    yield f"{layer.name}/{k}", layer.params[k]

    def get_weights(self) -> list[np.ndarray]:
        return [w for layer in self.layers for w in layer.get_weights()]

    @property
    def weights(self) -> list[np.ndarray]:
        """Every weight array, in get_weights order (Keras's ``model.weights``)."""
        return self.get_weights()

    def set_weights(self, weights) -> None:
        weights = list(weights)
        expected = sum(len(l.get_weights()) for l in self.layers)
        if len(weights) != expected:
            raise ValueError(f"model '{self.name}' has {expected} weight arrays, received {len(weights)}")
        i = 0
        for layer in self.layers:
            n = len(layer.get_weights())
            layer.set_weights(weights[i:i + n])
            i += n

    def count_params(self) -> int:
        return sum(l.count_params() for l in self.layers)

    def get_layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; layers are {', '.join(l.name for l in self.layers)}")

    # ------------------------------------------------------------------------------ config
    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype.name,
                "input_shape": list(self.input_shape) if self.input_shape else None,
                "layers": [{"class_name": type(l).__name__, "config": l.get_config()} for l in self.layers]}

    @classmethod
    def from_config(cls, config: dict, seed=None) -> "Network":
        """Rebuild a model from :meth:`get_config` output. Only minicnn's own layer classes are
        looked up; nothing in a config can name code to run."""
        layers = []
        for i, spec in enumerate(config["layers"]):
            cls_name = spec.get("class_name")
            if cls_name not in LAYER_CLASSES:
                raise ValueError(f"layer {i}: unknown layer class {cls_name!r}; "
                                 f"supported: {', '.join(LAYER_CLASSES)}")
            layers.append(LAYER_CLASSES[cls_name].from_config(dict(spec["config"])))
        model = cls(layers, name=config.get("name", "sequential"), dtype=config.get("dtype", "float32"),
                    input_shape=config.get("input_shape"), seed=seed)
        if model.input_shape is not None:
            model.build()
        return model

    # ------------------------------------------------------------------------------ summary
    def summary(self, print_fn=print) -> str:
        """Keras 3's summary table; returns the text and passes it to ``print_fn`` (None: don't print)."""
        if not self.built:
            self.build()
        rows = [(f"{l.name} ({l.keras_class_name() if self.summary_uses_keras_names else type(l).__name__})", "(None, " + ", ".join(map(str, l.output_shape)) + ")",
                 f"{l.count_params():,}") for l in self.layers]
        w = [max(31, *(len(r[0]) for r in rows)), max(22, *(len(r[1]) for r in rows)),
             max(13, *(len(r[2]) for r in rows))]
        head = ("Layer (type)", "Output Shape", "Param #")

        def line(left, mid, right, fill):
            return left + mid.join(fill * (n + 2) for n in w) + right

        out = [f'Model: "{self.name}"', line("┏", "┳", "┓", "━"),
               f"┃ {head[0]:<{w[0]}} ┃ {head[1]:<{w[1]}} ┃ {head[2]:>{w[2]}} ┃",
               line("┡", "╇", "┩", "━")]
        # Keras 3 rules a line between rows
        body = [f"│ {a:<{w[0]}} │ {b:<{w[1]}} │ {c:>{w[2]}} │" for a, b, c in rows]
        for i, row in enumerate(body):
            out += [line("├", "┼", "┤", "─"), row] if i else [row]
        out.append(line("└", "┴", "┘", "─"))
        total = self.count_params()
        trainable = sum(l.count_trainable_params() for l in self.layers)

        def counted(n):
            return f"{n:,} ({_readable_bytes(n * self.dtype.itemsize)})"

        out += [f" Total params: {counted(total)}", f" Trainable params: {counted(trainable)}",
                f" Non-trainable params: {counted(total - trainable)}"]
        text = "\n".join(out)
        if print_fn is not None:
            print_fn(text)
        return text

    # ------------------------------------------------------------------------------ compile
    def compile(self, optimizer="adam", loss="categorical_crossentropy", metrics=None) -> None:
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        metrics = list(metrics or [])
        for m in metrics:
            if m not in ("accuracy", "acc"):
                raise ValueError(f"unknown metric {m!r}; minicnn supports 'accuracy'")
        self.metrics = ["accuracy"] if metrics else []

    def require_compiled(self, what):
        if self.loss is None:
            raise RuntimeError(f"call model.compile(...) before model.{what}()")

    @property
    def fused_softmax_loss(self) -> bool:
        """Keras's TF backend takes the loss from the logits when the model ends in softmax, and
        also when it ends in sigmoid (both outputs carry ``_keras_logits``): softmax cross-entropy
        of the pre-activation values."""
        return (self.loss is not None and not self.loss.from_logits
                and getattr(self.layers[-1], "keeps_logits", False))

    # ------------------------------------------------------------------------------ passes
    def forward(self, x, training=False, record=False):
        """Run every layer. With ``record=True`` returns (output, [each layer's output]).

        Without ``record``, a layer that fuses the next one (``layer.fuses_next``: a
        BatchNormalization followed by a plain ReLU) computes both outputs in one pass, and the
        next layer adopts the result (the same values, one pass over the activations fewer); with
        ``record`` every layer runs alone, so that each output is there to record."""
        self._ensure_built(x)
        if not training:  # inference: on one thread or the pool, whichever measured faster
            return self.thread_picker.run(("infer", int(np.shape(x)[0])),
                                          lambda: self._forward(x, False, record))
        return self._forward(x, training, record)

    @property
    def thread_picker(self) -> ThreadPicker:
        """Chooses, per kind of pass and batch size, one thread or the pool
        (:mod:`minicnn.kernels.threads`; ``choices()`` tells what it picked)."""
        picker = self.__dict__.get("_thread_picker")
        if picker is None:
            picker = self.__dict__["_thread_picker"] = ThreadPicker()
        return picker

    def _forward(self, x, training, record):
        outputs = []
        layers, i = self.layers, 0
        while i < len(layers):
            layer = layers[i]
            if not record and i + 1 < len(layers) and layer.fuses_next(layers[i + 1]):
                x = layers[i + 1].adopt_output(layer.forward(x, training=training, relu=True), training)
                i += 2
                continue
            x = layer.forward(x, training=training)
            if record:
                outputs.append(x)
            i += 1
        return (x, outputs) if record else x

    def backward(self, dy, need_input_grad=False, from_logits=False, record=False, penalties=True):
        """Backpropagate ``dy`` (w.r.t. the output, or the last softmax's logits if
        ``from_logits``) through every layer; fills each layer's ``grads`` and, with
        ``penalties`` (the default), adds the gradients of the weight penalties
        (``kernel_regularizer``, ...) to them, so that they are the gradients of the loss
        :meth:`loss_and_output_grad` reports; returns dx or None. ``penalties=False`` gives the
        gradients of ``sum(output * dy)`` alone.

        With ``record=True`` returns (dx, [each layer's input gradient, in forward order]);
        an entry is None where no gradient was computed (the first layer's, unless
        ``need_input_grad``)."""
        first = self.layers[0]
        if hasattr(first, "need_dx"):
            first.need_dx = need_input_grad
        grads = [None] * len(self.layers)
        i = len(self.layers) - 1
        while i >= 0:
            layer = self.layers[i]
            if i == len(self.layers) - 1 and from_logits:
                dy = layer.logits_backward(dy)
            elif not record and i > 0 and self.layers[i - 1].fuses_next(layer):  # as in forward
                i -= 1
                dy = self.layers[i].backward(dy, relu_y=layer.fused_output())
            else:
                dy = layer.backward(dy)
            grads[i] = dy
            if dy is None:
                break
            i -= 1
        if penalties:
            for layer in self.layers:
                layer.add_regularization_gradients()
        return (dy, grads) if record else dy

    def loss_and_output_grad(self, y, out):
        """Mean loss plus the weight penalties, and the gradient to feed :meth:`backward` (fused
        when the model ends in softmax or sigmoid)."""
        if self.fused_softmax_loss:
            loss, g = self.loss.logits_loss_and_grad(y, self.layers[-1].logits)
            return self._penalised(loss), g, True
        loss, g = self.loss.loss_and_grad(y, out)
        return self._penalised(loss), g, False

    def batch_loss(self, y, out):
        """The loss of one batch as Keras reports it: the mean loss plus the weight penalties."""
        if self.fused_softmax_loss:
            loss = self.loss.logits_loss_and_grad(y, self.layers[-1].logits, need_grad=False)[0]
        else:
            loss = self.loss.loss_and_grad(y, out, need_grad=False)[0]
        return self._penalised(loss)

    def regularization_loss(self):
        """The sum of every weight penalty (``kernel_regularizer``, ...) in the model dtype: what
        Keras's ``Trainer.compute_loss`` adds to the loss (``model.losses``) in ``fit``,
        ``train_on_batch`` and ``evaluate`` alike."""
        total = self.dtype.type(0)
        for layer in self.layers:
            if layer.regularizers:
                total = total + layer.regularization_loss()
        return total

    def _penalised(self, loss) -> float:
        if not any(layer.regularizers for layer in self.layers):
            return float(loss)
        return float(self.dtype.type(loss) + self.regularization_loss())

    # ------------------------------------------------------------------------------ validation
    def _describe_input(self) -> str:
        first = self.layers[0]
        return f"model '{self.name}' (first layer '{first.name}', {type(first).__name__})"

    def check_x_layout(self, x, what="x") -> np.ndarray:
        """Validate rank, shape, dtype and size (no pass over the data)."""
        x = as_array(x, what)
        if x.dtype.kind in "biu":
            raise ValueError(f"{what} must be floating point (scaled to [0, 1]), received dtype {x.dtype}, "
                             f"for {self._describe_input()}: use x.astype('float32') / 255, or "
                             "minicnn.datasets.to_float_nhwc(x)")
        if x.dtype.kind != "f":
            raise ValueError(f"{what} must be a real floating-point array, received dtype {x.dtype}")
        expected = tuple(self.input_shape)
        if x.shape[1:] != expected:
            hint = ""
            if x.shape[1:] + (1,) == expected:
                hint = "; add the channel axis: x[..., None]"
            elif x.shape == expected:
                hint = "; add the batch axis: x[None]"
            raise ValueError(f"{what} has shape {x.shape} ({x.ndim}-D); {self._describe_input()} expects "
                             f"(batch, {', '.join(map(str, expected))}){hint}")
        if x.shape[0] == 0:
            raise ValueError(f"{what} has no samples (shape {x.shape})")
        return x

    def check_x(self, x, what="x"):
        """Validate rank, shape, dtype, size and finiteness; cast floats to the model dtype."""
        x = self.check_x_layout(x, what)
        with np.errstate(over="ignore"):
            cast = x.astype(self.dtype) if x.dtype != self.dtype else x
        if not all_finite(cast):
            rows = ~np.isfinite(cast.reshape(cast.shape[0], -1)).all(axis=1)
            idx = int(np.flatnonzero(rows)[0])
            if cast is not x and np.isfinite(x[idx]).all():
                raise ValueError(f"{what} has values beyond the {self.dtype} range (first at sample {idx})")
            raise ValueError(f"{what} contains NaN or inf (first at sample {idx})")
        return cast

    def check_y(self, y, n, what="y"):
        """Validate labels against ``n`` samples and the model's output and loss."""
        y = as_array(y, what)
        last = self.layers[-1]
        out_shape = tuple(self.output_shape)
        if len(out_shape) != 1:
            raise ValueError(f"the last layer '{last.name}' ({type(last).__name__}) outputs (batch, "
                             f"{', '.join(map(str, out_shape))}); cross-entropy needs (batch, classes): "
                             "end the model with Flatten and Dense")
        k = out_shape[0]
        if y.ndim == 0:
            raise ValueError(f"{what} must hold one label per sample, received a scalar")
        if y.dtype.kind not in "biuf":
            raise ValueError(f"{what} must hold numbers, received dtype {y.dtype}")
        if y.shape[0] != n:
            raise ValueError(f"{what} has {y.shape[0]} samples but x has {n}")
        loss_name = self.loss.name if self.loss is not None else "categorical_crossentropy"
        if self.loss is not None and self.loss.sparse:
            if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] != 1) or y.dtype.kind not in "iu":
                raise ValueError(f"{what} must hold integer class labels of shape ({n},) for "
                                 f"{loss_name}, received shape {y.shape} dtype {y.dtype}")
            bad = (y < 0) | (y >= k)
            if bad.any():
                i = int(np.flatnonzero(bad.reshape(-1))[0])
                raise ValueError(f"{what}: label {y.reshape(-1)[i]} at index {i} is out of range [0, {k}) "
                                 f"(the last layer '{last.name}' has {k} outputs)")
            return y
        if y.ndim == 1 and y.dtype.kind in "iu":
            raise ValueError(f"{what} holds integer labels {y.shape} but the loss is {loss_name}: "
                             "one-hot them (minicnn.datasets.one_hot) or use loss='sparse_categorical_crossentropy'")
        if y.ndim != 2 or y.shape[1] != k:
            raise ValueError(f"{what} must have shape ({n}, {k}) (one-hot; the last layer '{last.name}' "
                             f"has {k} outputs), received {y.shape}")
        if y.dtype.kind == "f" and not all_finite(y):
            i = int(np.flatnonzero(~np.isfinite(y).all(axis=1))[0])
            raise ValueError(f"{what} contains NaN or inf (first at sample {i})")
        return y

    # ------------------------------------------------------------------------------ evaluate & predict
    def evaluate(self, x, y, batch_size=32, verbose=0):
        """Mean loss (and accuracy) over ``x``; returns [loss, accuracy] (or [loss])."""
        self.require_compiled("evaluate")
        self._ensure_built(x)
        x = np.asarray(x)
        y = self.check_y(y, x.shape[0], "y")
        total = {"loss": 0.0, "correct": 0.0}
        for start in range(0, x.shape[0], batch_size):
            xb = self.check_x(x[start:start + batch_size])
            yb = y[start:start + batch_size]
            out = self.forward(xb, training=False)
            total["loss"] += self.batch_loss(yb, out) * len(xb)
            total["correct"] += losses_mod.accuracy(yb, out) * len(xb)
        n = max(x.shape[0], 1)
        res = [total["loss"] / n] + ([total["correct"] / n] if self.metrics else [])
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in zip(["loss", "accuracy"], res)))
        return res

    def predict(self, x, batch_size=32, verbose=0):
        """Outputs for ``x`` computed in batches (of at most :data:`PREDICT_CHUNK` samples);
        returns an (N, ...) array of the model dtype."""
        self._ensure_built(x)
        x = np.asarray(x)
        if x.ndim != len(self.input_shape) + 1:
            raise ValueError(f"x must have shape (batch, {', '.join(map(str, self.input_shape))}), received {x.shape}")
        # chunks never change a result: each sample's output is computed independently
        step = min(int_arg(batch_size, "batch_size", 1), PREDICT_CHUNK)
        out = np.empty((x.shape[0], *self.output_shape), dtype=self.dtype)
        for start in range(0, x.shape[0], step):
            out[start:start + step] = self.forward(self.check_x(x[start:start + step]))
        return out

    def __call__(self, x):
        return self.predict(x, batch_size=max(len(x), 1))

    # ------------------------------------------------------------------------------ health
    def first_nonfinite_weight(self):
        """Key ('layer/weight') of the first weight holding NaN/inf, or None."""
        for key, p in self.named_weights():
            if not all_finite(p):
                return key
        return None


def _readable_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024
