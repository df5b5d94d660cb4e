"""The tolerance table of the crosscheck and the rule that applies it.

A judged tensor passes when ``max|d| <= atol + rtol * max|ref|``: ``d`` is minicnn minus Keras over
the whole tensor and ``max|ref|`` the largest Keras magnitude in it. ``atol`` is 0 everywhere, so
every criterion is normwise and an all-zero reference must be matched exactly. An entry of
``(None, None)`` means the quantity is reported but not judged.

The reasons and the measured values behind each number are in docs/parity.md, section
"Tolerances"; keep the two in sync. The numbers are targets, not fitted to the measurements: each
leaves orders of magnitude of margin over what is measured, and a 1e-6 relative error in one layer
fails the float64 rows (tests/reference/test_crosscheck_teeth.py).
"""

from __future__ import annotations

import numpy as np

DOC = "docs/parity.md"

#: the rule, as printed in the report
RULE = "a judged tensor passes when max|d| <= atol + rtol * max|ref| (atol 0 everywhere)"

#: (dtype, check) -> (rtol, atol); rtol is relative to the largest |reference| in the tensor.
TOLERANCES = {
    # float64: the same maths in different summation orders; errors are ~1e-15 (docs/parity.md,
    # "Tolerances", rows float64 layer outputs and dX/dW/db).
    ("float64", "out"): (1e-10, 0.0),
    ("float64", "grad"): (1e-10, 0.0),
    # float64 training runs free for K steps (Adam, SGD with or without momentum, RMSprop); the
    # update rules are the same arithmetic, so the trajectories stay within ~1e-15 (rows "loss at
    # each of K free-running steps", "weights"), under either Keras floatx.
    ("float64", "loss"): (1e-9, 0.0),
    ("float64", "weights"): (1e-9, 0.0),
    # under Keras floatx float32 Keras reports a float64 model's loss through its loss tracker, a
    # floatx metric: rounded to float32 (row "loss, Keras floatx float32")
    ("float64", "loss/floatx-float32"): (1e-6, 0.0),
    # float32: epsilon 6e-8 times sums of up to ~37k terms in different orders (row "float32
    # layer outputs"); gradient sums are longer and cancel more (row "float32 dX, dW, db").
    ("float32", "out"): (1e-5, 0.0),
    ("float32", "grad"): (1e-4, 0.0),
    # float32 training is judged step by step: same start, same batch, the loss differs by the
    # forward rounding only (row "float32 loss, step by step").
    ("float32", "loss"): (1e-4, 0.0),
    # float32 weights after K steps are not judged: free-running float32 trajectories are
    # ill-conditioned (docs/parity.md, "Training in float32").
    ("float32", "weights"): (None, None),
}

#: why the float32 free-running losses and weights are not judged, as printed in the report
FREE_RUNNING_FLOAT32 = f'free-running float32 trajectories are ill-conditioned; {DOC}, "Training in float32"'

#: why an entry of the table is not judged
NOT_JUDGED_REASON = {
    ("float32", "weights"): FREE_RUNNING_FLOAT32,
}


#: how a gradient row's tolerance grows with the length of its reduction, as printed in the report
REDUCTION_RULE = ("dW/db rows: rtol = max(table rtol, u * n / 16), n = the terms each element sums (batch x "
                  "output positions), u = the dtype's unit roundoff: the worst case (n - 1) u of recursive "
                  "summation (Higham, Accuracy and Stability of Numerical Algorithms, 4.2) over 16 vector lanes")


def reduction_rtol(rtol, dtype, n) -> float:
    """The tolerance of a reduction of ``n`` terms in ``dtype`` (:data:`REDUCTION_RULE`): the
    table's ``rtol``, or u * n / 16 when that is larger."""
    u = float(np.finfo(np.dtype(dtype)).eps) / 2
    return max(rtol, u * n / 16)


def tolerance(dtype, check, keras_floatx=None):
    """(rtol, atol) of ``check`` ('out', 'grad', 'loss', 'weights') in ``dtype``, Keras running
    under floatx ``keras_floatx`` (default ``dtype``); (None, None) when the quantity is not
    judged."""
    dtype = np.dtype(dtype).name
    if check == "loss" and keras_floatx is not None and np.dtype(keras_floatx).name != dtype:
        check = f"loss/floatx-{np.dtype(keras_floatx).name}"
    return TOLERANCES[(dtype, check)]


def is_judged(dtype, check) -> bool:
    return tolerance(dtype, check)[0] is not None


def table_for(dtype) -> dict:
    """The rows of :data:`TOLERANCES` for one dtype, keyed 'dtype/check' (the report's form)."""
    dtype = np.dtype(dtype).name
    return {f"{d}/{c}": {"rtol": v[0], "atol": v[1]} for (d, c), v in TOLERANCES.items() if d == dtype}
