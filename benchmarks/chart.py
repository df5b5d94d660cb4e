"""``results.png``: per-op times of the first model (log scale) and train/inference throughput."""

from __future__ import annotations

import numpy as np

from .analyse import FRAMEWORKS

COLORS = {"minicnn-numba": "#1f77b4", "minicnn-numba-pool": "#9ecae1", "minicnn-numba-gemm": "#6baed6",
          "minicnn-numba-malloc": "#08519c",
          "minicnn-numpy": "#c6dbef", "tensorflow": "#ff7f0e", "pytorch": "#d62728"}


def _bars(ax, groups, series, title, ylabel):
    """Grouped bars: ``series`` is {framework: [value per group]}."""
    width = 0.8 / max(1, len(series))
    xs = np.arange(len(groups))
    for i, (fw, vals) in enumerate(series.items()):
        ax.bar(xs + (i - (len(series) - 1) / 2) * width, vals, width, label=fw, color=COLORS.get(fw))
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels(groups, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)


def _ops_node(R, label, dtype, b, fw=None):
    """The per-op timings of ``fw`` (any framework when None) for one model, dtype and batch."""
    for name in ([fw] if fw else FRAMEWORKS):
        node = (R["frameworks"].get(name) or {}).get("models", {}).get(label, {}).get(dtype, {})
        node = node.get("batches", {}).get(b, {}).get("ops")
        if node:
            return node
    return None


def plot(R, A, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(16, 6), gridspec_kw={"width_ratios": [2.2, 1]})
    ops = A.get("ops", {})
    if ops:
        label = next(iter(ops))
        dtype = next(iter(ops[label]))
        b = next((b for b in ops[label][dtype] if _ops_node(R, label, dtype, b)), next(iter(ops[label][dtype])))
        rows = ops[label][dtype][b]
        groups = [f"{r['op']} {d}" for r in rows for d in ("fwd", "bwd")]
        series = {}
        for fw in FRAMEWORKS:
            node = _ops_node(R, label, dtype, b, fw)
            if not node:
                continue
            series[fw] = [((node.get(r["op"]) or {}).get(d) or {}).get("median_ms", np.nan)
                          for r in rows for d in ("fwd", "bwd")]
        _bars(axes[0], groups, series, f"Per op: {label}, {dtype}, batch {b}", "ms (median, log scale)")
    # one dtype and one batch size per kind (a run over every preset, dtype and batch would make
    # hundreds of bars): the first dtype, batch 100 for training when measured, the first
    # inference batch; results.md has the rest
    groups, series = [], {}
    for key, what in (("steps", "train"), ("infer", "infer")):
        for label, by_dt in A.get(key, {}).items():
            dtype = next(iter(by_dt), None)
            by_b = by_dt.get(dtype) or {}
            b = "100" if "100" in by_b else (100 if 100 in by_b else next(iter(by_b), None))
            if b is not None:
                by_fw = by_b[b]
                groups.append(f"{label} f{dtype[-2:]} {what} B={b}")
                for fw in FRAMEWORKS:
                    series.setdefault(fw, []).append(by_fw.get(fw, {}).get("img_s", np.nan))
    series = {fw: v for fw, v in series.items() if not all(np.isnan(v))}
    if groups:
        _bars(axes[1], groups, series, "Throughput (first dtype; train at batch 100)", "images / s (log scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
