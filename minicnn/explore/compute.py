"""What the explorer shows, computed with the library itself (NumPy only, no web code here).

:class:`Explorer` wraps one built model and answers the app's questions for one input
(an (H, W, C) array in [0, 1]):

* :meth:`Explorer.forward`: every layer's output and statistics, as :func:`minicnn.study.inspect_model`
  computes them (``Network.forward(record=True)``), and the class probabilities;
* :meth:`Explorer.unit`: where one unit's value comes from (conv: input patch, kernel, products,
  sum, bias, activation; pooling: the window and its winner; dense: the largest contributions;
  softmax: the exponentials) and its receptive field on the input;
* :meth:`Explorer.backward`: dL/d(output) of every layer for a chosen class (``Network.backward``
  with ``record=True``), the ReLU masks, saliency (the gradient of the class score at the input)
  and Grad-CAM on the last spatial layer;
* :meth:`Explorer.optimizer_step`: one Adam step (``train_on_batch`` on a copy of the model) and,
  for one filter, its weights before and after, the gradient, m, v and the bias-corrected step.

Arrays travel as :func:`pack` dicts (shape, dtype, base64 of the raw little-endian values), so
what the app shows is bit for bit what the library computed.
"""

from __future__ import annotations

import base64
import copy
import threading

import numpy as np

from ..layers import (AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                      MaxPool2D)
from ..optimizers import Adam
from ..study.inspect import class_labels, inspect_model

#: how many contributions a dense unit lists
TOP_CONTRIBUTIONS = 12


def pack(a) -> dict:
    """An array as JSON: shape, dtype ('float32' or 'float64') and base64 of its bytes (little endian)."""
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float32)
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return {"shape": list(a.shape), "dtype": a.dtype.name, "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def unpack(d: dict) -> np.ndarray:
    """The inverse of :func:`pack`."""
    return np.frombuffer(base64.b64decode(d["b64"]), dtype=np.dtype(d["dtype"]).newbyteorder("<")).reshape(d["shape"])


def _f(v) -> float:
    return float(v)


def layer_geometry(layer) -> dict | None:
    """How a layer's output cells map to its input cells: window, strides, dilation and pads
    (top, bottom, left, right) of a sliding-window layer (a zero padding is a shift, an
    element-wise layer the identity); None when every output sees the whole input."""
    out, inp = tuple(layer.output_shape), tuple(layer.input_shape or ())
    if len(out) != 3 or len(inp) != 3:
        return None
    window = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
    pads = getattr(layer, "pads", None)
    if window is None and pads is not None:
        window = (1, 1)
    if window is not None and pads is not None:
        return {"window": list(window), "strides": list(getattr(layer, "strides", (1, 1))),
                "dilation": list(getattr(layer, "dilation_rate", (1, 1))), "pads": list(pads)}
    if inp[:2] == out[:2]:
        return {"window": [1, 1], "strides": [1, 1], "dilation": [1, 1], "pads": [0, 0, 0, 0]}
    return None


class Explorer:
    """The computations behind ``minicnn explore`` for one model.

    Parameters
    ----------
    model : a built :class:`minicnn.Sequential` (its weights are never changed).
    test_x, test_y : optional test images (N, H, W, C) in [0, 1] and labels, for picking inputs.
    dataset : names the classes ('mnist', 'fashion_mnist', 'cifar10').
    """

    def __init__(self, model, test_x=None, test_y=None, dataset="mnist", name=None, twin_factory=None):
        if not model.built:
            model.build()
        self.model = model
        self.name = name or model.name
        self.dataset = dataset
        self.test_x = None if test_x is None else np.asarray(test_x)
        self.test_y = None if test_y is None else np.asarray(test_y).astype(np.int64)
        self.labels = class_labels(int(model.output_shape[-1]), dataset)
        #: the layers keep caches between forward and backward: one computation at a time
        self.lock = threading.Lock()
        self._predictions = None
        #: builds the TensorFlow twin (:mod:`reference.explore_tf`) on the first comparison
        self.twin_factory = twin_factory
        self._twin = None

    # ------------------------------------------------------------------------------ model
    @property
    def input_shape(self) -> tuple:
        return tuple(self.model.input_shape)

    def describe_model(self) -> dict:
        layers = []
        shape = self.input_shape
        for i, layer in enumerate(self.model.layers):
            layers.append({"index": i, "name": layer.name, "kind": type(layer).__name__,
                           "describe": layer.describe(), "activation": getattr(layer, "activation", None)
                           if isinstance(getattr(layer, "activation", None), str) else None,
                           "input_shape": list(shape), "output_shape": list(layer.output_shape),
                           "params": int(layer.count_params()), "geometry": layer_geometry(layer)})
            shape = layer.output_shape
        return {"name": self.name, "input_shape": list(self.input_shape), "labels": self.labels,
                "params": int(self.model.count_params()), "layers": layers,
                "test_images": 0 if self.test_x is None else int(len(self.test_x)),
                "tensorflow": self.twin_factory is not None,
                "ends_in_softmax": bool(getattr(self.model.layers[-1], "ends_in_softmax", False))}

    # ------------------------------------------------------------------------------ inputs
    def check_input(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.shape != self.input_shape:
            raise ValueError(f"the input must have shape {self.input_shape}, received {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("the input contains NaN or inf")
        if x.min() < 0 or x.max() > 1:
            raise ValueError("input values must lie in [0, 1]")
        return x.astype(self.model.dtype)

    def test_image(self, index: int) -> tuple[np.ndarray, int]:
        if self.test_x is None:
            raise LookupError("no test set is loaded (set MINICNN_DATA_DIR or pass --data-dir)")
        n = len(self.test_x)
        if not 0 <= index < n:
            raise ValueError(f"test image index {index} is out of range 0..{n - 1}")
        return self.test_x[index], int(self.test_y[index])

    def predictions(self) -> np.ndarray:
        """The predicted class of every test image (computed once)."""
        if self.test_x is None:
            raise LookupError("no test set is loaded (set MINICNN_DATA_DIR or pass --data-dir)")
        with self.lock:
            if self._predictions is None:
                x = self.test_x.astype(self.model.dtype, copy=False)
                self._predictions = self.model.predict(x, batch_size=128).argmax(axis=1)
        return self._predictions

    def find_test_images(self, label=None, misclassified=False, start=0, limit=20) -> list[dict]:
        """Test images (index, label, predicted) of one class and/or misclassified, from ``start``."""
        if self.test_x is None:
            raise LookupError("no test set is loaded (set MINICNN_DATA_DIR or pass --data-dir)")
        k = len(self.labels)
        if label is not None and not 0 <= label < k:
            raise ValueError(f"class {label} is out of range 0..{k - 1}")
        pred = self.predictions() if misclassified else None
        keep = np.ones(len(self.test_y), dtype=bool)
        keep[:max(start, 0)] = False
        if label is not None:
            keep &= self.test_y == label
        if misclassified:
            keep &= pred != self.test_y
        idx = np.flatnonzero(keep)[:limit]
        return [{"index": int(i), "label": int(self.test_y[i]),
                 "predicted": None if pred is None else int(pred[i])} for i in idx]

    # ------------------------------------------------------------------------------ forward
    def forward(self, x) -> dict:
        x = self.check_input(x)
        with self.lock:
            records = inspect_model(self.model, x)
        layers = [{"index": r.index, "name": r.name, "kind": r.kind, "shape": list(r.output_shape),
                   "min": r.minimum, "max": r.maximum, "mean": r.mean, "zero_share": r.zero_share,
                   "tie_share": r.tie_share, "activation": r.activation, "output": pack(r.output)}
                  for r in records]
        out = {"input": pack(x), "layers": layers}
        if records[-1].is_probabilities:
            p = records[-1].output.astype(np.float64)
            out["probabilities"] = [float(v) for v in p]
            out["predicted"] = int(np.argmax(p))
        return out

    def _outputs(self, x) -> list[np.ndarray]:
        """Each layer's output for one input (no batch axis), as forward(record=True) gives them."""
        _, outs = self.model.forward(x[None], training=False, record=True)
        return [np.asarray(o[0]) for o in outs]

    # ------------------------------------------------------------------------------ units
    def check_unit(self, layer, unit) -> tuple[int, tuple]:
        n = len(self.model.layers)
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n:
            raise ValueError(f"layer must be an integer in 0..{n - 1}, received {layer!r}")
        shape = tuple(self.model.layers[layer].output_shape)
        if (not isinstance(unit, (list, tuple)) or len(unit) != len(shape)
                or any(isinstance(u, bool) or not isinstance(u, int) for u in unit)):
            raise ValueError(f"unit must be a list of {len(shape)} integers (layer {layer} outputs {shape}), "
                             f"received {unit!r}")
        for u, s in zip(unit, shape):
            if not 0 <= u < s:
                raise ValueError(f"unit {list(unit)} is outside layer {layer}'s output shape {list(shape)}")
        return layer, tuple(unit)

    def receptive_field(self, layer: int, unit: tuple) -> dict | None:
        """The input rows and columns (inclusive, clipped) that unit ``unit`` of ``layer`` can see;
        None when it sees the whole input (after a Flatten, Dense or global pooling). The page's
        ``receptiveField`` (static/app.js) repeats this from :func:`layer_geometry`."""
        if len(unit) != 3:
            return None
        r0 = r1 = unit[0]
        c0 = c1 = unit[1]
        for i in range(layer, -1, -1):
            g = layer_geometry(self.model.layers[i])
            if g is None:
                return None
            (kh, kw), (sh, sw), (dh, dw), (top, _, left, _) = g["window"], g["strides"], g["dilation"], g["pads"]
            r0, r1 = r0 * sh - top, r1 * sh - top + (kh - 1) * dh
            c0, c1 = c0 * sw - left, c1 * sw - left + (kw - 1) * dw
        h, w = self.input_shape[:2]
        return {"rows": [max(r0, 0), min(r1, h - 1)], "cols": [max(c0, 0), min(c1, w - 1)]}

    def unit(self, x, layer, unit) -> dict:
        """Where the value of one unit comes from, as numbers."""
        x = self.check_input(x)
        layer, unit = self.check_unit(layer, unit)
        with self.lock:
            outs = self._outputs(x)
        lay = self.model.layers[layer]
        inp = x if layer == 0 else outs[layer - 1]
        value = outs[layer][unit]
        out = {"layer": layer, "name": lay.name, "kind": type(lay).__name__, "unit": list(unit),
               "value": _f(value), "receptive_field": self.receptive_field(layer, unit)}
        if isinstance(lay, Conv2D):
            out.update(self._conv_unit(lay, inp, unit))
        elif isinstance(lay, (MaxPool2D, AveragePooling2D)):
            out.update(self._pool_unit(lay, inp, unit))
        elif isinstance(lay, Dense):
            out.update(self._dense_unit(lay, inp, unit[0]))
        elif isinstance(lay, Flatten):
            src = np.unravel_index(unit[0], inp.shape)
            out["source"] = [int(v) for v in src]
            out["receptive_field"] = self.receptive_field(layer - 1, tuple(int(v) for v in src)) if layer else None
        if getattr(lay, "ends_in_softmax", False):
            out["softmax"] = self._softmax(lay, unit[0])
        return out

    @staticmethod
    def _activate(lay, z):
        act = getattr(lay, "activation", None)
        if act in (None, "linear", "softmax"):
            return z
        return float(np.asarray(lay._act.forward(np.asarray([z], dtype=np.float64))).reshape(-1)[0])

    def _conv_unit(self, lay: Conv2D, inp, unit) -> dict:
        r, c, f = unit
        top, _, left, _ = lay.pads
        xp = np.pad(inp, ((top, lay.pads[1]), (left, lay.pads[3]), (0, 0)))
        (sh, sw), (dh, dw), (kh, kw) = lay.strides, lay.dilation_rate, lay.kernel_size
        rows = r * sh + np.arange(kh) * dh
        cols = c * sw + np.arange(kw) * dw
        patch = xp[rows][:, cols]                       # (KH, KW, C)
        kernel = lay.params["kernel"][:, :, :, f]
        products = patch.astype(np.float64) * kernel.astype(np.float64)
        total = float(products.sum())
        bias = float(lay.params["bias"][f]) if lay.use_bias else 0.0
        z = total + bias
        return {"patch": pack(patch), "kernel": pack(kernel), "products": pack(products), "sum": total,
                "bias": bias, "z": z, "activation": lay.activation, "activated": self._activate(lay, z),
                "patch_origin": [int(r * sh - top), int(c * sw - left)],
                "note": "sum and z in float64; value is the layer's float32 output"}

    def _pool_unit(self, lay, inp, unit) -> dict:
        r, c, ch = unit
        top, bottom, left, right = lay.pads
        fill = -np.inf if isinstance(lay, MaxPool2D) else np.nan
        xp = np.pad(inp.astype(np.float64), ((top, bottom), (left, right), (0, 0)), constant_values=fill)
        (ph, pw), (sh, sw) = lay.pool_size, lay.strides
        win = xp[r * sh:r * sh + ph, c * sw:c * sw + pw, ch]
        out = {"window": [[None if not np.isfinite(v) else float(v) for v in row] for row in win],
               "window_origin": [int(r * sh - top), int(c * sw - left)]}
        if isinstance(lay, MaxPool2D):
            flat = np.where(np.isfinite(win), win, -np.inf).reshape(-1)
            m = flat.max()
            out["winner"] = [int(v) for v in np.unravel_index(int(np.argmax(flat)), win.shape)]
            out["tied"] = int((flat == m).sum())
            out["rule"] = "the first maximum in row-major order takes the whole gradient (as TensorFlow)"
        else:
            out["mean"] = float(np.nanmean(win))
        return out

    def _dense_unit(self, lay: Dense, inp, k) -> dict:
        xv = inp.reshape(-1).astype(np.float64)
        w = lay.params["kernel"][:, k].astype(np.float64)
        products = xv * w
        order = np.argsort(-np.abs(products), kind="stable")[:TOP_CONTRIBUTIONS]
        total = float(products.sum())
        bias = float(lay.params["bias"][k]) if lay.use_bias else 0.0
        z = total + bias
        return {"contributions": [{"input": int(i), "x": float(xv[i]), "w": float(w[i]), "product": float(products[i])}
                                  for i in order],
                "inputs": int(xv.size), "nonzero_inputs": int((xv != 0).sum()), "sum": total, "bias": bias,
                "z": z, "activation": lay.activation, "activated": self._activate(lay, z)}

    def _softmax(self, lay, k) -> dict:
        z = np.asarray(lay.logits[0], dtype=np.float64)
        e = np.exp(z - z.max())
        return {"logits": [float(v) for v in z], "max_logit": float(z.max()),
                "exponentials": [float(v) for v in e], "sum": float(e.sum()),
                "probability": float(e[k] / e.sum()), "class": int(k)}

    # ------------------------------------------------------------------------------ backward
    def _forward_for_gradients(self, x):
        """Forward that keeps every cache backward needs, in inference behaviour: Dropout is the
        identity, BatchNormalization uses its moving statistics (its frozen-layer gradient)."""
        h = x[None]
        outs = []
        for layer in self.model.layers:
            if isinstance(layer, Dropout):
                layer._cache = {"mask": None}
            elif isinstance(layer, BatchNormalization):
                h = layer.forward(h, training=False)
            else:
                h = layer.forward(h, training=True)
            outs.append(h)
        return outs

    def _gradients(self, x, dz):
        """Input gradient of every layer for dz at the last layer's logits (or output)."""
        last = self.model.layers[-1]
        from_logits = bool(getattr(last, "keeps_logits", False))
        dx, grads = self.model.backward(dz.astype(self.model.dtype), need_input_grad=True,
                                        from_logits=from_logits, record=True, penalties=False)
        return dx, grads

    def check_target(self, target) -> int:
        k = len(self.labels)
        if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < k:
            raise ValueError(f"target must be a class number in 0..{k - 1}, received {target!r}")
        return target

    def backward(self, x, target, layer=None, unit=None) -> dict:
        """Gradients of the cross-entropy loss -log p[target] for every layer, the ReLU masks,
        saliency and Grad-CAM; with ``layer`` (a Conv2D or Dense) and ``unit``, also the clicked
        filter's weight gradient and the sum that produced one of its entries."""
        x = self.check_input(x)
        target = self.check_target(target)
        if layer is not None:
            layer, unit = self.check_unit(layer, unit)
        with self.lock:
            outs = self._forward_for_gradients(x)
            p = np.asarray(outs[-1][0], dtype=np.float64)
            onehot = np.zeros((1, len(self.labels)))
            onehot[0, target] = 1.0
            ends_in_softmax = bool(getattr(self.model.layers[-1], "keeps_logits", False))
            dz = (p[None] - onehot) if ends_in_softmax else -onehot / np.maximum(p[None], 1e-12)
            dx, grads = self._gradients(x, dz)
            self._recorded_grads, self._recorded_dz = grads, dz
            weight = self._weight_gradient(outs, x, layer, unit) if layer is not None else None
            # the class score (the logit) for saliency and Grad-CAM
            self._forward_for_gradients(x)
            sx, sgrads = self._gradients(x, onehot)
        loss = float(-np.log(max(p[target], 1e-300)))
        maps = []
        for i, l in enumerate(self.model.layers):
            g = grads[i + 1][0] if i + 1 < len(grads) else (dz[0] if not ends_in_softmax else None)
            entry = {"index": i, "name": l.name, "kind": type(l).__name__}
            if g is not None:
                entry["grad"] = pack(g)
            if i == len(self.model.layers) - 1 and ends_in_softmax:
                entry["grad_logits"] = pack(dz[0])
                entry["note"] = "gradient w.r.t. the logits: p - onehot(target)"
            act = getattr(l, "activation", None)
            if act == "relu" or type(l).__name__ == "ReLU":
                entry["relu_mask"] = pack((np.asarray(outs[i][0]) > 0).astype(np.float32))
            if isinstance(l, MaxPool2D):
                entry["routing"] = "each window's gradient goes to its first maximal cell"
            maps.append(entry)
        out = {"target": target, "loss": loss, "probability": float(p[target]),
               "input_grad": pack(dx[0]), "layers": maps,
               "saliency": {"map": pack(np.abs(sx[0]).max(axis=-1)),
                            "what": f"|d score / d input|: the largest absolute gradient over channels of the "
                                    f"class-{target} score (the logit before softmax) at each input pixel"},
               "gradcam": self._gradcam(outs, sgrads, target)}
        if weight is not None:
            out["weight_grad"] = weight
        return out

    def _gradcam(self, outs, sgrads, target):
        convs = [i for i, l in enumerate(self.model.layers) if isinstance(l, Conv2D)]
        spatial = [i for i, l in enumerate(self.model.layers) if len(l.output_shape) == 3]
        if not (convs or spatial):
            return None
        i = (convs or spatial)[-1]
        a = np.asarray(outs[i][0], dtype=np.float64)
        g = np.asarray(sgrads[i + 1][0], dtype=np.float64)
        alpha = g.mean(axis=(0, 1))
        cam = np.maximum((a * alpha).sum(axis=-1), 0)
        return {"layer": i, "name": self.model.layers[i].name, "map": pack(cam), "weights": pack(alpha),
                "what": f"Grad-CAM: ReLU(sum_k alpha_k A_k) on '{self.model.layers[i].name}' (the last "
                        f"convolution's output A), alpha_k = mean over positions of d score(class {target}) / d A_k"}

    def _weight_gradient(self, outs, x, layer, unit) -> dict | None:
        lay = self.model.layers[layer]
        if not isinstance(lay, (Conv2D, Dense)):
            return None
        f = unit[-1]
        dk = lay.grads["kernel"]
        inp = (x if layer == 0 else np.asarray(outs[layer - 1][0])).astype(np.float64)
        dy_layer = self._dz_of(layer)
        if isinstance(lay, Conv2D):
            top, bottom, left, right = lay.pads
            xp = np.pad(inp, ((top, bottom), (left, right), (0, 0)))
            oh, ow = dy_layer.shape[:2]
            (sh, sw), (dh, dw) = lay.strides, lay.dilation_rate
            # one entry of dL/dW: sum over output positions of input * dL/dz
            g = dk[:, :, :, f]
            i, j, c = (int(v) for v in np.unravel_index(int(np.argmax(np.abs(g))), g.shape))
            xs = xp[i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw, c]
            terms = xs * dy_layer[:, :, f]
            return {"layer": layer, "filter": f, "grad": pack(g), "grad_bias": _f(lay.grads["bias"][f]) if lay.use_bias else None,
                    "entry": [i, j, c], "entry_value": _f(g[i, j, c]), "terms": pack(terms),
                    "terms_sum": float(terms.sum()), "dz": pack(dy_layer[:, :, f]),
                    "what": f"dL/dW[{i},{j},{c},{f}] = sum over output positions (r, c) of "
                            f"input[r*{sh}+{i}, c*{sw}+{j}, {c}] * dL/dz[r, c, {f}] (z: before the activation)"}
        g = dk[:, f]
        i = int(np.argmax(np.abs(g)))
        return {"layer": layer, "filter": f, "grad": pack(g), "grad_bias": _f(lay.grads["bias"][f]) if lay.use_bias else None,
                "entry": [i], "entry_value": _f(g[i]), "terms": pack(np.array([inp.reshape(-1)[i] * dy_layer[f]])),
                "terms_sum": float(inp.reshape(-1)[i] * dy_layer[f]), "dz": pack(np.array([dy_layer[f]])),
                "what": f"dL/dW[{i},{f}] = input[{i}] * dL/dz[{f}] (one sample)"}

    def _dz_of(self, layer) -> np.ndarray:
        """dL/dz (before the activation) of a Conv2D/Dense layer, from its bias gradient's
        ingredients: recomputed as dL/dy * act'(z) from the next layer's input gradient."""
        lay = self.model.layers[layer]
        dy = self._recorded_grads[layer + 1] if layer + 1 < len(self._recorded_grads) else None
        y = np.asarray(lay._cache.get("y")) if "y" in lay._cache else None
        if dy is None:
            return np.asarray(self._recorded_dz, dtype=np.float64)[0]
        dy = np.asarray(dy[0], dtype=np.float64)
        act = getattr(lay, "activation", None)
        if act == "relu":
            return dy * (y[0] > 0)
        if act in (None, "linear"):
            return dy
        return np.asarray(lay._act.backward(dy[None].astype(lay.params["kernel"].dtype), lay._cached(lay._act.needs)),
                          dtype=np.float64)[0]

    # ------------------------------------------------------------------------------ optimizer
    def optimizer_step(self, x, target, layer, unit, learning_rate=0.001) -> dict:
        """One Adam step on this input (a copy of the model, ``train_on_batch`` as ``fit`` runs it:
        dropout active, BatchNormalization on the batch's statistics) and, for the clicked
        filter (Conv2D) or unit (Dense) of ``layer``: weights before and after, gradient, Adam's
        m and v, the bias-corrected moments and the step."""
        x = self.check_input(x)
        target = self.check_target(target)
        layer, unit = self.check_unit(layer, unit)
        lay = self.model.layers[layer]
        if not isinstance(lay, (Conv2D, Dense)):
            raise ValueError(f"layer {layer} ('{lay.name}', {type(lay).__name__}) has no kernel: pick a Conv2D or Dense unit")
        if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate <= 1):
            raise ValueError(f"learning_rate must be a number in (0, 1], received {learning_rate!r}")
        with self.lock:
            twin = copy.deepcopy(self.model)
        opt = Adam(learning_rate=float(learning_rate))
        twin.compile(optimizer=opt, loss="categorical_crossentropy")
        y = np.zeros((1, len(self.labels)), dtype=twin.dtype)
        y[0, target] = 1
        f = unit[-1]
        tl = twin.layers[layer]
        sel = (lambda a: a[..., f])
        before = sel(tl.params["kernel"]).copy()
        loss = twin.train_on_batch(x[None], y)[0]
        after = sel(tl.params["kernel"]).copy()
        key = f"{tl.name}/kernel"
        m, v = sel(opt.slots["m"][key]), sel(opt.slots["v"][key])
        g = sel(tl.grads["kernel"])
        t = opt.iterations
        b1, b2, eps = opt.beta_1, opt.beta_2, opt.epsilon
        m_hat = m.astype(np.float64) / (1 - b1 ** t)
        v_hat = v.astype(np.float64) / (1 - b2 ** t)
        alpha = learning_rate * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        predicted = alpha * m.astype(np.float64) / (np.sqrt(v.astype(np.float64)) + eps)
        return {"layer": layer, "filter": f, "loss": float(loss), "iterations": t, "learning_rate": float(learning_rate),
                "beta_1": b1, "beta_2": b2, "epsilon": eps, "alpha": float(alpha),
                "before": pack(before), "after": pack(after), "grad": pack(g), "m": pack(m), "v": pack(v),
                "m_hat": pack(m_hat), "v_hat": pack(v_hat), "step": pack(before.astype(np.float64) - after),
                "step_formula": pack(predicted),
                "what": "Keras Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; "
                        "p -= alpha m / (sqrt(v) + eps), alpha = lr sqrt(1-b2^t) / (1-b1^t) "
                        "(= lr m_hat / (sqrt(v_hat) + eps'), the bias-corrected step)"}

    # ------------------------------------------------------------------------------ TensorFlow
    def compare(self, x, target) -> dict:
        """Keras's value of every tensor the app shows, for the same input and weights, with the
        largest absolute difference from minicnn's: each layer's output and dL/d(output), and
        dL/d(input). Needs TensorFlow (``twin_factory``)."""
        x = self.check_input(x)
        target = self.check_target(target)
        if self.twin_factory is None:
            raise LookupError("TensorFlow is not available: install the tf extra (pip install minicnn[tf]) "
                              "and run from a source checkout")
        with self.lock:
            if self._twin is None:
                self._twin = self.twin_factory(self.model)
            outs = [np.asarray(o[0]) for o in self._forward_for_gradients(x)]
            p = np.asarray(outs[-1], dtype=np.float64)
            onehot = np.zeros((1, len(self.labels)))
            onehot[0, target] = 1.0
            ends_in_softmax = bool(getattr(self.model.layers[-1], "keeps_logits", False))
            dz = (p[None] - onehot) if ends_in_softmax else -onehot / np.maximum(p[None], 1e-12)
            dx, grads = self._gradients(x, dz)
        theirs = self._twin.compute(x, target)

        def diff(a, b):
            return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if a.size else 0.0

        layers = []
        for i, (mine, tf_out) in enumerate(zip(outs, theirs["outputs"])):
            entry = {"index": i, "output": pack(tf_out), "output_max_abs_diff": diff(mine, tf_out)}
            tg = theirs["grads"][i] if i < len(theirs["grads"]) else None
            if tg is not None and i + 1 < len(grads) and grads[i + 1] is not None:
                entry["grad"] = pack(tg)
                entry["grad_max_abs_diff"] = diff(grads[i + 1][0], tg)
            layers.append(entry)
        return {"target": target, "tensorflow": getattr(self._twin, "version", "?"), "layers": layers,
                "input_grad": pack(theirs["input_grad"]), "input_grad_max_abs_diff": diff(dx[0], theirs["input_grad"]),
                "loss_tf": theirs["loss"]}
