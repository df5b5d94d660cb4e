"""Gradient checking: analytic gradients against float64 central differences.

Rather than perturbing every element (millions for a conv kernel), each check compares one
*directional* derivative per random unit direction ``d`` (Chainer's ``check_backward``)::

    numeric  = (L(theta + eps d) - L(theta - eps d)) / (2 eps)
    analytic = <dL/dtheta, d>
    rel_err  = |numeric - analytic| / max(|numeric|, |analytic|, tiny)

A layer is checked through the scalar ``L = sum(layer(x) * G)`` with a random upstream gradient
``G`` (not all ones, which can hide transposition bugs), so ``backward(G)`` gives dL/dx and the
weight gradients. Use float64 layers: in float32 the finite difference is dominated by rounding.
Dropout masks are replayed from the saved RNG state, so the same units are dropped in every
evaluation. Inputs should avoid kinks (ReLU at 0, max-pool ties): a perturbation that crosses one makes the
numeric derivative meaningless, not the analytic one wrong.
"""

from __future__ import annotations

import numpy as np

TINY = 1e-30


def directional_errors(loss_fn, arrays: dict, grads: dict, seed=0, n_directions=3, eps=1e-6) -> dict:
    """Relative error of the directional derivative for each named array.

    Parameters
    ----------
    loss_fn : callable() -> float, computing the loss from the *current contents* of ``arrays``
        (they are perturbed in place and restored).
    arrays : name -> float64 array.
    grads : name -> analytic gradient of the loss w.r.t. that array (same shape).

    Returns
    -------
    dict name -> worst relative error over ``n_directions`` random directions.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, a in arrays.items():
        g = grads[name]
        if g is None or g.shape != a.shape:
            raise ValueError(f"gradient for {name!r} has shape {None if g is None else g.shape}, expected {a.shape}")
        if a.dtype != np.float64:
            raise ValueError(f"gradient checks need float64 arrays; {name!r} is {a.dtype}")
        worst = 0.0
        for _ in range(n_directions):
            d = rng.standard_normal(a.shape)
            d /= np.linalg.norm(d) or 1.0
            saved = a.copy()
            a += eps * d
            plus = float(loss_fn())
            a[...] = saved - eps * d
            minus = float(loss_fn())
            a[...] = saved
            numeric = (plus - minus) / (2 * eps)
            analytic = float(np.sum(g * d))
            err = abs(numeric - analytic) / max(abs(numeric), abs(analytic), TINY)
            worst = max(worst, err)
        out[name] = worst
    return out


def check_layer(layer, x: np.ndarray, seed=0, n_directions=3, eps=1e-6) -> dict:
    """Check ``layer.backward`` for the input and every weight; returns name -> relative error.

    ``layer`` must be built in float64; ``x`` (N, ...) float64 and may be non-contiguous.
    """
    rng = np.random.default_rng(seed + 1)
    dropout_rng = getattr(layer, "rng", None)
    rng_state = dropout_rng.bit_generator.state if dropout_rng is not None else None
    y = layer.forward(x, training=True)
    upstream = rng.uniform(-1.0, 1.0, size=y.shape)
    dx = layer.backward(upstream)
    grads = {"input": dx, **{k: v.copy() for k, v in layer.grads.items()}}
    xw = np.array(x, dtype=np.float64)  # a private copy we can perturb
    arrays = {"input": xw, **layer.params}
    if dx is None:
        arrays.pop("input"), grads.pop("input")

    def loss():
        if rng_state is not None:  # same dropout mask as the analytic pass
            dropout_rng.bit_generator.state = rng_state
        return np.sum(layer.forward(xw, training=True) * upstream)

    return directional_errors(loss, arrays, grads, seed=seed, n_directions=n_directions, eps=eps)


def check_loss(loss_obj, y_true, y_pred, seed=0, n_directions=3, eps=1e-6) -> dict:
    """Check a loss's gradient w.r.t. its predictions."""
    y_pred = np.array(y_pred, dtype=np.float64)
    _, g = loss_obj.loss_and_grad(y_true, y_pred)
    return directional_errors(lambda: loss_obj(y_true, y_pred), {"y_pred": y_pred}, {"y_pred": g},
                              seed=seed, n_directions=n_directions, eps=eps)


def check_model(model, x, y, seed=0, n_directions=2, eps=1e-6) -> dict:
    """Check a compiled float64 model end to end (loss -> every weight and the input)."""
    if model.dtype != np.float64:
        raise ValueError("check_model needs a float64 model")
    x = np.array(x, dtype=np.float64)
    rng_state = model.train_rng.bit_generator.state  # replayed so dropout masks stay fixed
    out = model.forward(x, training=True)
    loss, g, fused = model.loss_and_output_grad(y, out)
    dx = model.backward(g, need_input_grad=True, from_logits=fused)
    arrays = {"input": x}
    grads = {"input": dx}
    for key, p, gr in model.named_parameters():
        arrays[key], grads[key] = p, gr.copy()

    def loss_fn():
        model.train_rng.bit_generator.state = rng_state
        return model.batch_loss(y, model.forward(x, training=True))

    return directional_errors(loss_fn, arrays, grads, seed=seed, n_directions=n_directions, eps=eps)
