"""Gradient checking: analytic gradients against float64 finite differences, with an error model.

Rather than perturbing every element (millions for a conv kernel), each check compares one
*directional* derivative per random unit direction ``d`` (Chainer's ``check_backward``). The
numeric derivative is Richardson-extrapolated from central differences at steps h, 2h, 4h::

    D(h)     = (L(theta + h d) - L(theta - h d)) / (2 h)           error: c2 h^2 + rounding / h
    R(h)     = (4 D(h) - D(2h)) / 3                                error: c4 h^4 + ~1.5 rounding / h
    numeric  = R(h);  analytic = <dL/dtheta, d>

The error model. ``numeric`` is off from the true directional derivative by its truncation
error and by the rounding of the loss evaluations (delta = u * S, u = 2**-53, S = the scale of the
terms summed into L: ``loss_scale``, e.g. sum|y * G| for a layer, else the largest |L| seen),
amplified by 1/h. Both are estimated from the data of each check::

    noise = |R(h) - R(2h)| + 1.5 * 64 * u * S / h

(|R(h) - R(2h)| measures what the extrapolation did not remove, truncation and rounding
together, as they actually occurred with this BLAS and these inputs; the second term is a floor
for the rounding when the two extrapolants agree by chance, with 64 covering the growth of
rounding over the reductions that compute L). The reported error is the discrepancy the model
does *not* explain, relative to the derivative::

    rel_err = max(|numeric - analytic| - SAFETY * noise, 0) / max(|numeric|, |analytic|, tiny)

What it guarantees: for a correct backward pass and an L that is smooth within 4h of theta,
``rel_err`` stays ~0 whatever BLAS kernels ran (a small directional derivative next to a large
loss no longer raises false alarms: its finite-difference error is part of the model). A wrong
gradient whose error along ``d`` exceeds SAFETY times the finite-difference noise shows up as
``rel_err`` of the order of the relative error of the gradient itself; several random directions
make it unlikely that a wrong gradient is orthogonal to all of them. Inputs should avoid kinks
(ReLU at 0, max-pool ties): a perturbation that crosses one makes the numeric derivative
meaningless, not the analytic one wrong.

A layer is checked through the scalar ``L = sum(layer(x) * G)`` with a random upstream gradient
``G`` (not all ones, which can hide transposition bugs), so ``backward(G)`` gives dL/dx and the
weight gradients. Use float64 layers: in float32 the finite difference is dominated by rounding.
Dropout masks are replayed from the saved RNG state, so the same units are dropped in every
evaluation.
"""

from __future__ import annotations

import numpy as np

TINY = 1e-300
#: how many times the estimated finite-difference error a discrepancy may be before it counts
SAFETY = 4.0
#: growth of float64 rounding over the reductions computing a loss (see the module docstring)
ROUNDING_GROWTH = 64.0
UNIT_ROUNDOFF = float(np.finfo(np.float64).eps) / 2


def directional_derivative(loss_fn, a: np.ndarray, d: np.ndarray, eps: float, loss_scale=None):
    """(numeric derivative of ``loss_fn`` along ``d`` at ``a``, its estimated error).

    ``a`` is perturbed in place and restored; see the module docstring for the error model."""
    saved = a.copy()
    values = {}
    try:
        for k in (1, 2, 4):
            for sign in (1, -1):
                a[...] = saved + (sign * k * eps) * d
                values[sign * k] = float(loss_fn())
    finally:
        a[...] = saved
    central = {k: (values[k] - values[-k]) / (2 * k * eps) for k in (1, 2, 4)}
    r1 = (4 * central[1] - central[2]) / 3
    r2 = (4 * central[2] - central[4]) / 3
    scale = loss_scale if loss_scale is not None else max(abs(v) for v in values.values())
    rounding = 1.5 * ROUNDING_GROWTH * UNIT_ROUNDOFF * abs(scale) / eps
    return r1, abs(r1 - r2) + rounding


def directional_errors(loss_fn, arrays: dict, grads: dict, seed=0, n_directions=3, eps=1e-6,
                       loss_scale=None, details=False) -> dict:
    """Unexplained relative error of the directional derivative for each named array.

    Parameters
    ----------
    loss_fn : callable() -> float, computing the loss from the *current contents* of ``arrays``
        (they are perturbed in place and restored).
    arrays : name -> float64 array.
    grads : name -> analytic gradient of the loss w.r.t. that array (same shape).
    loss_scale : the magnitude of the terms summed into the loss (default: max |L| seen).
    details : also return, per name, the worst direction's numeric and analytic derivatives and
        the estimated noise.

    Returns
    -------
    dict name -> worst ``rel_err`` over ``n_directions`` random directions (with ``details``:
    name -> dict(rel_err, numeric, analytic, noise)).
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, a in arrays.items():
        g = grads[name]
        if g is None or g.shape != a.shape:
            raise ValueError(f"gradient for {name!r} has shape {None if g is None else g.shape}, expected {a.shape}")
        if a.dtype != np.float64:
            raise ValueError(f"gradient checks need float64 arrays; {name!r} is {a.dtype}")
        worst = {"rel_err": -1.0}
        for _ in range(n_directions):
            d = rng.standard_normal(a.shape)
            d /= np.linalg.norm(d) or 1.0
            numeric, noise = directional_derivative(loss_fn, a, d, eps, loss_scale)
            analytic = float(np.sum(g * d))
            excess = max(abs(numeric - analytic) - SAFETY * noise, 0.0)
            err = excess / max(abs(numeric), abs(analytic), TINY)
            if err > worst["rel_err"]:
                worst = {"rel_err": err, "numeric": numeric, "analytic": analytic, "noise": noise}
        out[name] = worst if details else worst["rel_err"]
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
    arrays = {"input": xw, **{k: layer.params[k] for k in layer.trainable_names}}  # no moving statistics
    if dx is None:
        arrays.pop("input"), grads.pop("input")

    def loss():
        if rng_state is not None:  # same dropout mask as the analytic pass
            dropout_rng.bit_generator.state = rng_state
        return np.sum(layer.forward(xw, training=True) * upstream)

    return directional_errors(loss, arrays, grads, seed=seed, n_directions=n_directions, eps=eps,
                              loss_scale=float(np.sum(np.abs(y * upstream))))


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
