"""A training report: learning curves, the confusion matrix, the most confidently wrong images.

:func:`write_report` writes ``curves.png`` (from the history JSON that ``minicnn train`` saves
next to the model as ``<model>.history.json``), ``confusion.png``, ``errors.png`` and a short
``report.md`` linking them. The computations (:func:`confusion_matrix`,
:func:`most_confident_errors`) need only NumPy; without matplotlib ``report.md`` still gets the
numbers as tables.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from ..errors import MiniCNNError
from .figures import _bare, _input_image, _new_figure, save_figure
from .inspect import MissingDependency


def history_path_for(model_path) -> str:
    """Where ``minicnn train`` writes the history of ``model_path``."""
    return os.path.splitext(os.fspath(model_path))[0] + ".history.json"


def load_history(path) -> dict:
    """Read a history JSON; returns the dict (keys epoch, history, test_loss, ...)."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"history file {p!r} does not exist")
    try:
        with open(p) as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MiniCNNError(f"cannot read history file {p!r}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("history"), dict):
        raise MiniCNNError(f"history file {p!r} has no 'history' mapping (is it from minicnn train?)")
    for k, v in data["history"].items():
        if not isinstance(v, list) or not all(isinstance(t, (int, float)) for t in v):
            raise MiniCNNError(f"history file {p!r}: '{k}' is not a list of numbers")
    return data


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels, y_pred {y_pred.size}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def most_confident_errors(probs, y_true, n=16) -> np.ndarray:
    """Indices of the ``n`` wrongly classified samples with the highest predicted probability
    (most confident first; ties keep dataset order)."""
    probs = np.asarray(probs)
    y_true = np.asarray(y_true).reshape(-1)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    conf = probs[wrong, pred[wrong]]
    order = np.argsort(-conf, kind="stable")
    return wrong[order[:n]]


# ----------------------------------------------------------------------------- figures
def plot_history(history: dict):
    """Loss and accuracy per epoch, training and validation (and the test value if known)."""
    h = history.get("history", history)
    epochs = history.get("epoch")
    n = max((len(v) for v in h.values()), default=0)
    xs = [e + 1 for e in epochs] if epochs and len(epochs) == n else list(range(1, n + 1))
    fig = _new_figure(9.0, 3.6)
    axes = [fig.add_axes([0.07, 0.15, 0.38, 0.7]), fig.add_axes([0.57, 0.15, 0.38, 0.7])]
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style, label in ((metric, "-o", "training"), (f"val_{metric}", "--s", "validation")):
            v = h.get(key)
            if v:
                ax.plot(xs[:len(v)], v, style, label=label, markersize=4)
        test = history.get(f"test_{metric}")
        if isinstance(test, (int, float)):
            ax.axhline(test, color="gray", linestyle=":", linewidth=1)
            ax.plot([xs[-1] if xs else 1], [test], "D", color="gray", markersize=5, label=f"test ({test:.4f})")
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.tick_params(labelsize=8)
        if xs:
            ax.set_xticks(xs if len(xs) <= 20 else xs[:: math.ceil(len(xs) / 10)])
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle("training curves", fontsize=11)
    return fig


#: what each training-dynamics figure shows (title, y axis, log scale)
DYNAMICS = {
    "grad_norm": ("gradient norm per layer", "||gradient|| (mean over sampled steps)", True),
    "update_ratio": ("update-to-weight ratio per layer", "||step update|| / ||weights||", True),
    "dead_relu": ("dead ReLU units", "share of units 0 on every probe sample", False),
    "maxpool_ties": ("max-pool windows with a tied maximum", "share of windows", False),
    "act_mean": ("activation mean per layer", "mean output on the probe batch", False),
    "act_std": ("activation standard deviation per layer", "std of the output on the probe batch", True),
}


def plot_dynamics(history: dict, quantity: str):
    """One training-dynamics quantity per epoch, one line per layer (``history['dynamics']``)."""
    per_layer = history.get("dynamics", {}).get(quantity, {})
    title, ylabel, log = DYNAMICS[quantity]
    fig = _new_figure(6.4, 3.8)
    ax = fig.add_axes([0.16, 0.14, 0.58, 0.74])
    for name, values in per_layer.items():
        ax.plot(range(1, len(values) + 1), values, "-o", markersize=4, label=name)
    if log and all(v > 0 for vals in per_layer.values() for v in vals):
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=8)
    n = max((len(v) for v in per_layer.values()), default=0)
    if n:
        ax.set_xticks(range(1, n + 1) if n <= 20 else range(1, n + 1, math.ceil(n / 10)))
    ax.grid(alpha=0.3)
    if per_layer:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def plot_confusion(cm, labels=None):
    """The confusion matrix with the count in every non-empty cell (rows: true, columns: predicted)."""
    cm = np.asarray(cm)
    k = cm.shape[0]
    labels = labels or [str(i) for i in range(k)]
    fig = _new_figure(6.5, 6.0)
    ax = fig.add_axes([0.16, 0.14, 0.74, 0.74])
    shown = np.log1p(cm)  # log scale: the diagonal would otherwise wash out every error
    ax.imshow(shown, cmap="Blues", interpolation="nearest")
    hi = shown.max() or 1.0
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7 if k > 10 else 8,
                        color="white" if shown[i, j] > 0.6 * hi else "black")
    rot = 0 if max(map(len, labels)) <= 3 else 45
    ax.set_xticks(range(k), labels, fontsize=8, rotation=rot, ha="center" if rot == 0 else "right")
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set_xlabel("predicted class", fontsize=9)
    ax.set_ylabel("true class", fontsize=9)
    total = cm.sum()
    acc = np.trace(cm) / total if total else 0.0
    fig.suptitle(f"confusion matrix on {total} test images (accuracy {acc:.4f}; colour: log count)",
                 fontsize=10)
    return fig


def plot_errors(x, y_true, probs, indices, labels=None, ncols=4):
    """A grid of the given images, each titled 'true T / pred P / p=0.99 / #index'."""
    indices = list(indices)
    k = np.asarray(probs).shape[1]
    labels = labels or [str(i) for i in range(k)]
    n = max(len(indices), 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    cell, head = 1.6, 0.55
    width = ncols * (cell + 0.3) + 0.3
    height = nrows * (cell + head) + 0.6
    fig = _new_figure(width, height)
    if not indices:
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    for i, idx in enumerate(indices):
        r, c = divmod(i, ncols)
        left = 0.3 + c * (cell + 0.3)
        bottom = height - 0.6 - (r + 1) * (cell + head) + 0.1
        ax = fig.add_axes([left / width, bottom / height, cell / width, cell / height])
        img, cmap = _input_image(x[idx])
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        _bare(ax)
        p = np.asarray(probs[idx], dtype=np.float64)
        pred = int(p.argmax())
        ax.set_title(f"true {labels[int(y_true[idx])]} / pred {labels[pred]}\np={p[pred]:.3f}  #{idx}",
                     fontsize=8, pad=3)
    fig.suptitle("most confidently wrong test images", fontsize=11, y=1 - 0.1 / height, va="top")
    return fig


# ----------------------------------------------------------------------------- report
def _md_table(cm, labels) -> str:
    head = "| true \\ pred | " + " | ".join(labels) + " |"
    sep = "|---|" + "---:|" * len(labels)
    rows = [f"| **{labels[i]}** | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(cm)]
    return "\n".join([head, sep, *rows])


def predict_probs(model, x, batch_size=500) -> np.ndarray:
    return model.predict(np.asarray(x).astype(model.dtype, copy=False), batch_size=batch_size)


def write_report(model, x_test, y_test, out_dir, history=None, labels=None, model_name="model",
                 n_errors=16, figures=True) -> dict:
    """Write the report files into ``out_dir``.

    Parameters
    ----------
    model : a built Sequential whose last layer outputs class probabilities.
    x_test, y_test : float images in [0, 1] (N, H, W, C) and integer labels (N,).
    history : the dict from :func:`load_history`, or None (no curves).
    figures : False (or matplotlib missing) writes ``report.md`` with tables only.

    Returns
    -------
    dict with 'report' (path of report.md), 'figures' (paths written), 'accuracy', 'confusion',
    'errors' (indices of the most confidently wrong images), 'skipped' (why figures were skipped,
    or None).
    """
    os.makedirs(out_dir, exist_ok=True)
    y_test = np.asarray(y_test).reshape(-1)
    probs = predict_probs(model, x_test)
    k = probs.shape[1]
    labels = labels or [str(i) for i in range(k)]
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_test, pred, k)
    acc = float((pred == y_test).mean()) if y_test.size else 0.0
    errors = most_confident_errors(probs, y_test, n_errors)

    written, skipped = [], None
    if figures:
        try:
            if history is not None:
                written.append(save_figure(plot_history(history), os.path.join(out_dir, "curves.png")))
                for q in DYNAMICS:
                    if history.get("dynamics", {}).get(q):
                        written.append(save_figure(plot_dynamics(history, q),
                                                   os.path.join(out_dir, f"dynamics-{q}.png")))
            written.append(save_figure(plot_confusion(cm, labels), os.path.join(out_dir, "confusion.png")))
            written.append(save_figure(plot_errors(x_test, y_test, probs, errors, labels),
                                       os.path.join(out_dir, "errors.png")))
        except MissingDependency as e:
            skipped = str(e)
    else:
        skipped = "figures were not asked for"

    lines = [f"# Report: {model_name}", ""]
    lines.append(f"Test accuracy: **{acc:.4f}** ({int(np.trace(cm))} of {len(y_test)} test images correct).")
    if history is not None:
        h = history.get("history", {})
        parts = [f"{key} {vals[-1]:.4f}" for key in ("loss", "accuracy", "val_loss", "val_accuracy")
                 if (vals := h.get(key))]
        n_ep = max((len(v) for v in h.values()), default=0)
        lines += ["", f"Training: {n_ep} epoch{'s' if n_ep != 1 else ''}; last epoch: " + ", ".join(parts) + "."]
        if isinstance(history.get("test_accuracy"), (int, float)):
            lines.append(f"Test accuracy recorded by `minicnn train`: {history['test_accuracy']:.4f}.")
    else:
        lines += ["", "No training history was found, so there are no learning curves."]
    if skipped:
        lines += ["", f"Figures were skipped: {skipped}."]
    names = {os.path.basename(p) for p in written}
    if "curves.png" in names:
        lines += ["", "## Training curves", "", "![loss and accuracy per epoch](curves.png)"]
    shown = [q for q in DYNAMICS if f"dynamics-{q}.png" in names]
    if shown:
        lines += ["", "## Training dynamics", "", "Per layer and epoch, recorded by `minicnn train` "
                  "(callbacks.TrainingDynamics); one figure per quantity, layers as lines.", ""]
        lines += [f"![{DYNAMICS[q][0]}](dynamics-{q}.png)" for q in shown]
    lines += ["", "## Confusion matrix", "", "Rows: true class; columns: predicted class.", ""]
    if "confusion.png" in names:
        lines += ["![confusion matrix](confusion.png)", ""]
    lines.append(_md_table(cm, labels))
    off = cm - np.diag(np.diag(cm))
    if off.any():
        i, j = np.unravel_index(int(off.argmax()), off.shape)
        lines += ["", f"The most frequent mistake: true {labels[i]} predicted as {labels[j]} ({off[i, j]} times)."]
    lines += ["", "## Most confidently wrong test images", ""]
    if "errors.png" in names:
        lines += ["![most confidently wrong test images](errors.png)", ""]
    if len(errors):
        lines += ["| test index | true | predicted | probability |", "|---:|---|---|---:|"]
        lines += [f"| {i} | {labels[int(y_test[i])]} | {labels[int(pred[i])]} | {probs[i, pred[i]]:.4f} |"
                  for i in errors]
    else:
        lines.append("No test image is misclassified.")
    report = os.path.join(out_dir, "report.md")
    with open(report, "w") as f:
        f.write("\n".join(lines) + "\n")
    return {"report": report, "figures": written, "accuracy": acc, "confusion": cm,
            "errors": errors, "skipped": skipped}
