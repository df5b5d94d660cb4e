"""Figures of what :func:`~minicnn.study.inspect.inspect_model` records.

The ``plot_*`` functions turn records into matplotlib :class:`~matplotlib.figure.Figure`
objects; they import matplotlib when called (it is an optional extra) and never touch pyplot's
global state (no window opens, nothing needs closing), so they work headless.
:func:`save_figures` writes the whole set as PNG files.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Softmax
from .inspect import DPI, LayerRecord, describe, require_matplotlib, top_k


# ----------------------------------------------------------------------------- figure helpers
def _new_figure(width_in: float, height_in: float):
    """A Figure (no pyplot) whose size is a whole number of pixels at :data:`DPI`."""
    require_matplotlib()
    from matplotlib.figure import Figure
    # n pixels + a hair, so that float round-off can never truncate the saved size to n - 1
    w, h = [(round(v * DPI) + 1e-3) / DPI for v in (width_in, height_in)]
    return Figure(figsize=(w, h), dpi=DPI)


def _frac_grid(fig, left_in, bottom_in, width_in, height_in, nrows, ncols, wspace=0.08, hspace=0.08):
    """A GridSpec occupying the given rectangle (in inches from the bottom-left corner)."""
    W, H = fig.get_size_inches()
    return fig.add_gridspec(nrows, ncols, left=left_in / W, right=(left_in + width_in) / W,
                            bottom=bottom_in / H, top=(bottom_in + height_in) / H,
                            wspace=wspace, hspace=hspace)


def _bare(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def _map_limits(maps: np.ndarray):
    lo, hi = float(maps.min()), float(maps.max())
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def _layer_title(rec: LayerRecord) -> str:
    desc = describe(rec)
    shape = "x".join(map(str, rec.output_shape))
    return f"layer {rec.index}: {rec.name} ({rec.kind}{', ' + desc if desc else ''}) -> {shape}"


def _input_image(x):
    """(H, W) or (H, W, 3) image of one input for imshow, and its colormap."""
    x = np.asarray(x)
    if x.ndim == 4:
        x = x[0]
    if x.ndim == 3 and x.shape[-1] == 1:
        return x[:, :, 0], "gray"
    if x.ndim == 3 and x.shape[-1] == 3:
        return np.clip(x, 0, 1), None
    if x.ndim == 3:
        return x.mean(axis=-1), "gray"
    return x, "gray"


# ----------------------------------------------------------------------------- figures
def plot_input(x, title="input", width_in=3.0):
    """The input image (gray: 0 = black, 1 = white, which is how MNIST stores digits)."""
    img, cmap = _input_image(x)
    fig = _new_figure(width_in, width_in + 0.4)
    ax = fig.add_axes([0.08, 0.04, 0.84, 0.84 * width_in / (width_in + 0.4)])
    ax.imshow(img, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    _bare(ax)
    ax.set_title(title, fontsize=10)
    return fig


def _filter_panels(kernel: np.ndarray):
    """Per-filter images for a kernel (KH, KW, C, F) with C in (1, 3), else None."""
    kh, kw, c, f = kernel.shape
    if c == 1:
        return [kernel[:, :, 0, i] for i in range(f)]
    return None


def _filter_mosaic(kernel: np.ndarray, gap=1):
    """All (KH, KW) slices of a kernel (KH, KW, C, F) tiled: rows = input channels, columns = filters.

    Gaps between tiles are NaN (drawn as background)."""
    kh, kw, c, f = kernel.shape
    m = np.full((c * (kh + gap) - gap, f * (kw + gap) - gap), np.nan)
    for ci in range(c):
        for fi in range(f):
            m[ci * (kh + gap):ci * (kh + gap) + kh, fi * (kw + gap):fi * (kw + gap) + kw] = kernel[:, :, ci, fi]
    return m


def plot_filters(rec_or_layer, ncols=8):
    """The conv kernel of a Conv2D layer (or its record).

    One channel in: one panel per filter (``filters`` panels, titled f0, f1, ...). More channels:
    one mosaic, a row per input channel and a column per filter, each cell a KHxKW kernel slice.
    Colours are centred on 0 (red positive, blue negative) on a scale shared by all filters.
    """
    layer = getattr(rec_or_layer, "layer", rec_or_layer)
    if not isinstance(layer, Conv2D):
        raise ValueError(f"plot_filters needs a Conv2D layer, got {type(layer).__name__}")
    k = np.asarray(layer.params["kernel"], dtype=np.float64)
    kh, kw, c, f = k.shape
    lim = float(np.abs(k).max()) or 1.0
    title = (f"{layer.name}: {f} filters of {kh}x{kw}x{c} (weights; red > 0, blue < 0, shared scale)")
    panels = _filter_panels(k)
    if panels is not None:
        ncols = min(ncols, f)
        nrows = math.ceil(f / ncols)
        cell, gap_w, gap_h = 0.8, 0.12, 0.3
        width = 0.3 + ncols * (cell + gap_w) + 0.9
        height = 0.7 + nrows * (cell + gap_h)
        fig = _new_figure(width, height)
        gs = _frac_grid(fig, 0.3, 0.15, ncols * (cell + gap_w), nrows * (cell + gap_h), nrows, ncols,
                        wspace=gap_w / cell, hspace=gap_h / cell)
        im = None
        for i, p in enumerate(panels):
            ax = fig.add_subplot(gs[i // ncols, i % ncols])
            im = ax.imshow(p, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            _bare(ax)
            ax.set_title(f"f{i}", fontsize=8, pad=2)
        cax = fig.add_axes([(width - 0.7) / width, 0.15 / height, 0.15 / width, nrows * (cell + gap_h) * 0.8 / height])
        fig.colorbar(im, cax=cax)
    else:
        m = _filter_mosaic(k)
        width = 9.0
        aspect = m.shape[0] / m.shape[1]
        img_w = width - 1.6
        img_h = max(1.0, img_w * aspect)
        height = img_h + 1.2
        fig = _new_figure(width, height)
        ax = fig.add_axes([0.7 / width, 0.5 / height, img_w / width, img_h / height])
        im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest", aspect="auto")
        ax.set_xlabel(f"filter (0..{f - 1})", fontsize=9)
        ax.set_ylabel(f"input channel (0..{c - 1})", fontsize=9)
        ax.set_xticks([(kw + 1) * i + (kw - 1) / 2 for i in range(0, f, 8)], [str(i) for i in range(0, f, 8)], fontsize=7)
        ax.set_yticks([(kh + 1) * i + (kh - 1) / 2 for i in range(0, c, 8)], [str(i) for i in range(0, c, 8)], fontsize=7)
        cax = fig.add_axes([(width - 0.75) / width, 0.5 / height, 0.15 / width, img_h / height])
        fig.colorbar(im, cax=cax)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    return fig


def plot_feature_maps(rec: LayerRecord, ncols=8, cmap="viridis"):
    """One panel per channel of a spatial (H, W, C) output, titled with the channel number.

    All panels share one colour scale (the layer's min..max), so a dark panel is a channel
    that is weak (or silent) for this input; the colour bar gives the values.
    """
    maps = rec.output
    if maps.ndim != 3:
        raise ValueError(f"layer '{rec.name}' has no feature maps (output shape {rec.output_shape})")
    h, w, c = maps.shape
    ncols = min(ncols, c)
    nrows = math.ceil(c / ncols)
    cell_w = 1.0
    cell_h = cell_w * h / w
    gap_w, gap_h = 0.1, 0.25
    grid_w = ncols * (cell_w + gap_w)
    grid_h = nrows * (cell_h + gap_h)
    width = 0.3 + grid_w + 0.9
    height = 0.25 + grid_h + 0.6
    fig = _new_figure(width, height)
    gs = _frac_grid(fig, 0.3, 0.25, grid_w, grid_h, nrows, ncols, wspace=gap_w / cell_w, hspace=gap_h / cell_h)
    lo, hi = _map_limits(maps)
    im = None
    for ch in range(c):
        ax = fig.add_subplot(gs[ch // ncols, ch % ncols])
        im = ax.imshow(maps[:, :, ch], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        _bare(ax)
        ax.set_title(f"ch {ch}", fontsize=8, pad=2)
    cax = fig.add_axes([(width - 0.7) / width, 0.25 / height, 0.15 / width, min(grid_h, 3.0) / height])
    fig.colorbar(im, cax=cax)
    fig.suptitle(f"{_layer_title(rec)}\n{c} feature maps of {h}x{w}, one colour scale",
                 fontsize=10, y=1 - 0.08 / height, va="top")
    return fig


def plot_vector(rec: LayerRecord, width_in=9.0):
    """A 1-D output: bars for up to 256 units (Dense), a wrapped heat strip for longer ones
    (Flatten: the values in H, W, C order, wrapped into rows)."""
    v = rec.output.reshape(-1).astype(np.float64)
    n = v.size
    if n <= 256:
        fig = _new_figure(width_in, 2.6)
        ax = fig.add_axes([0.08, 0.2, 0.9, 0.62])
        ax.bar(np.arange(n), v, width=0.85, color="tab:blue")
        ax.set_xlim(-1, n)
        ax.set_xlabel("unit", fontsize=9)
        ax.set_ylabel("activation", fontsize=9)
        ax.tick_params(labelsize=8)
        title = f"{_layer_title(rec)}\n"
        if rec.zero_share is not None:
            title += f"{100 * rec.zero_share:.0f}% of the {n} units are 0 for this input"
    else:
        cols = _strip_columns(rec)
        rows = math.ceil(n / cols)
        strip = np.full(rows * cols, np.nan)
        strip[:n] = v
        strip = strip.reshape(rows, cols)
        fig = _new_figure(width_in, 3.2)
        ax = fig.add_axes([0.08, 0.15, 0.8, 0.62])
        im = ax.imshow(strip, cmap="viridis", aspect="auto", interpolation="nearest")
        ax.set_xlabel(f"position in a row of {cols}", fontsize=9)
        ax.set_ylabel("row", fontsize=9)
        ax.tick_params(labelsize=8)
        cax = fig.add_axes([0.9, 0.15, 0.015, 0.62])
        fig.colorbar(im, cax=cax)
        title = f"{_layer_title(rec)}\n{n} values, wrapped into {rows} rows of {cols}"
        shape = getattr(rec.layer, "input_shape", None)
        if isinstance(rec.layer, Flatten) and shape and len(shape) == 3 and rows == shape[0]:
            title += f": row h holds image row h, its {shape[1]} x {shape[2]} values in (w, c) order"
    fig.suptitle(title, fontsize=10, y=0.97, va="top")
    return fig


def _strip_columns(rec) -> int:
    shape = getattr(rec.layer, "input_shape", None)
    if shape and len(shape) == 3:  # Flatten of (H, W, C): one row per image row h
        return int(shape[1] * shape[2])
    return 256


def plot_probabilities(probs, labels=None, true_label=None, title="class probabilities", width_in=6.0,
                       ax=None):
    """Bar chart of class probabilities with the class labels; the top class is highlighted."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    labels = labels or [str(i) for i in range(p.size)]
    fig = None
    if ax is None:
        fig = _new_figure(width_in, 3.0)
        ax = fig.add_axes([0.1, 0.2 if max(map(len, labels)) <= 3 else 0.32, 0.86, 0.6])
    _draw_probabilities(ax, p, labels, true_label)
    ax.set_title(title, fontsize=10)
    return fig if fig is not None else ax.figure


def _draw_probabilities(ax, p, labels, true_label=None):
    best = int(np.argmax(p))
    colors = ["tab:orange" if i == best else "tab:blue" for i in range(p.size)]
    ax.bar(np.arange(p.size), p, color=colors, width=0.7)
    ax.set_ylim(0, 1.15)
    ax.set_xticks(np.arange(p.size), labels, fontsize=8, rotation=0 if max(map(len, labels)) <= 3 else 45,
                  ha="center" if max(map(len, labels)) <= 3 else "right")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_ylabel("probability", fontsize=9)
    for i, v in enumerate(p):
        if v >= 0.005:
            ax.text(i, v + 0.02, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    if true_label is not None and 0 <= int(true_label) < p.size:
        ax.get_xticklabels()[int(true_label)].set_fontweight("bold")
        ax.set_xlabel(f"class (true class in bold: {labels[int(true_label)]})", fontsize=8)


def plot_layer(rec: LayerRecord, labels=None, true_label=None):
    """The main figure for one layer: maps (conv/pool), bars or strip (dense/flatten), or
    probabilities (softmax). Returns None for layers with nothing to show (dropout)."""
    if isinstance(rec.layer, Dropout):
        return None
    if rec.is_probabilities:
        return plot_probabilities(rec.output, labels=labels, true_label=true_label,
                                  title=f"{_layer_title(rec)}\nclass probabilities")
    if rec.is_spatial:
        return plot_feature_maps(rec)
    return plot_vector(rec)


# ----------------------------------------------------------------------------- overview
def _overview_stages(records):
    stages = []
    first_conv = True
    for rec in records:
        if isinstance(rec.layer, Conv2D):
            if first_conv and _filter_panels(np.asarray(rec.layer.params["kernel"])) is not None:
                stages.append(("filters", rec))
            first_conv = False
            stages.append(("maps", rec))
        elif rec.is_spatial and isinstance(rec.layer, (MaxPool2D, ReLU)):
            stages.append(("maps", rec))
        elif rec.is_probabilities:
            stages.append(("probs", rec))
        elif isinstance(rec.layer, (Dense, Softmax)):
            stages.append(("dense", rec))
    return stages


def plot_overview(records, x, labels=None, true_label=None, title=None, width_in=9.0, per_row=16):
    """Input -> first-layer filters -> feature maps of every conv/pool layer -> dense
    activations -> class probabilities, one row per stage, sized for a README (9 in = 900 px).
    """
    stages = _overview_stages(records)
    margin_l, margin_r = 0.25, 0.25
    grid_w = width_in - margin_l - margin_r
    head = 0.34                                  # band for each row's title
    heights = [1.9]                              # the input row
    for kind, rec in stages:
        if kind in ("filters", "maps"):
            n = rec.layer.filters if kind == "filters" else rec.output.shape[-1]
            h, w = ((rec.layer.kernel_size) if kind == "filters" else rec.output.shape[:2])
            nrows = math.ceil(n / per_row)
            gap = 0.1 if kind == "filters" else 0.04
            c_w = (grid_w - (per_row - 1) * gap) / per_row
            heights.append(nrows * c_w * h / w + (nrows - 1) * gap)
        elif kind == "dense":
            heights.append(1.25)
        else:
            heights.append(1.8)
    top_pad = 0.55 if title else 0.1
    height = top_pad + sum(heights) + head * len(heights) + 0.35
    fig = _new_figure(width_in, height)
    y = height - top_pad                          # running top edge, inches
    if title:
        fig.suptitle(title, fontsize=12, y=1 - 0.12 / height, va="top")

    def band(text, content_h):
        nonlocal y
        fig.text(margin_l / width_in, (y - 0.06) / height, text, fontsize=9.5, va="top", ha="left",
                 fontweight="bold")
        bottom = y - head - content_h
        y = bottom
        return bottom

    probs_rec = next((r for k, r in stages if k == "probs"), None)
    # row 1: the input, and the prediction in words
    b = band("input", heights[0])
    img, cmap = _input_image(x)
    ax = fig.add_axes([margin_l / width_in, b / height, heights[0] / width_in, heights[0] / height])
    ax.imshow(img, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    _bare(ax)
    lines = [f"{'x'.join(map(str, np.shape(img)))} pixels, 0 = black, 1 = white"]
    if true_label is not None:
        lines.append(f"true class: {labels[true_label] if labels else true_label}")
    if probs_rec is not None:
        (i, lab, p), = top_k(probs_rec.output, 1, labels)
        lines.append(f"predicted: {lab} (probability {p:.2f})")
    fig.text((margin_l + heights[0] + 0.3) / width_in, (b + heights[0] - 0.2) / height, "\n".join(lines),
             fontsize=10, va="top", ha="left", linespacing=1.6)

    for (kind, rec), ch in zip(stages, heights[1:]):
        if kind == "filters":
            k = np.asarray(rec.layer.params["kernel"], dtype=np.float64)
            kh, kw, c, f = k.shape
            b = band(f"{rec.name}: its {f} filters ({kh}x{kw} weights; red > 0, blue < 0)", ch)
            lim = float(np.abs(k).max()) or 1.0
            _panel_row(fig, _filter_panels(k), b, ch, margin_l, grid_w, per_row,
                       dict(cmap="RdBu_r", vmin=-lim, vmax=lim), gap=0.1)
        elif kind == "maps":
            h, w, c = rec.output.shape
            what = "filter responses after ReLU" if rec.activation == "relu" else "maps"
            if isinstance(rec.layer, MaxPool2D):
                what = f"after {rec.layer.pool_size[0]}x{rec.layer.pool_size[1]} max pooling"
            b = band(f"{rec.name}: {c} feature maps of {h}x{w} ({what})", ch)
            lo, hi = _map_limits(rec.output)
            _panel_row(fig, [rec.output[:, :, i] for i in range(c)], b, ch, margin_l, grid_w, per_row,
                       dict(cmap="viridis", vmin=lo, vmax=hi))
        elif kind == "dense":
            v = rec.output.reshape(-1)
            zeros = f", {100 * rec.zero_share:.0f}% zero" if rec.zero_share is not None else ""
            b = band(f"{rec.name}: {v.size} dense units{zeros}", ch)
            ax = fig.add_axes([(margin_l + 0.35) / width_in, (b + 0.25) / height, (grid_w - 0.35) / width_in,
                               (ch - 0.25) / height])
            ax.bar(np.arange(v.size), v, width=0.85, color="tab:blue")
            ax.set_xlim(-1, v.size)
            ax.tick_params(labelsize=7)
            for s in ("top", "right"):
                ax.spines[s].set_visible(False)
        else:
            b = band(f"{rec.name}: class probabilities (softmax)", ch)
            ax = fig.add_axes([(margin_l + 0.35) / width_in, (b + 0.45) / height, (grid_w - 0.35) / width_in,
                               (ch - 0.45) / height])
            _draw_probabilities(ax, rec.output.reshape(-1).astype(np.float64),
                                labels or [str(i) for i in range(rec.output.size)], true_label)
            ax.set_ylabel("")
            for s in ("top", "right"):
                ax.spines[s].set_visible(False)
    return fig


def _panel_row(fig, images, bottom_in, height_in, left_in, grid_w, per_row, style, gap=0.04):
    W, H = fig.get_size_inches()
    n = len(images)
    nrows = math.ceil(n / per_row)
    ih, iw = images[0].shape
    cell = (grid_w - (per_row - 1) * gap) / per_row
    ch = cell * ih / iw
    for i, img in enumerate(images):
        r, c = divmod(i, per_row)
        l = left_in + c * (cell + gap)
        b = bottom_in + height_in - (r + 1) * ch - r * gap
        ax = fig.add_axes([l / W, b / H, cell / W, ch / H])
        ax.imshow(img, interpolation="nearest", **style)
        _bare(ax)
    return nrows


# ----------------------------------------------------------------------------- files
def figure_axes_with_images(fig):
    """The axes of ``fig`` that show an image (colour bars excluded)."""
    cbar_axes = {getattr(getattr(ax, "_colorbar", None), "ax", None) for ax in fig.axes}
    return [ax for ax in fig.axes if ax.images and ax not in cbar_axes]


def save_figure(fig, path) -> str:
    fig.savefig(path, dpi=DPI)
    return str(path)


def save_figures(records, x, out_dir, labels=None, true_label=None, title=None) -> list[str]:
    """Write ``overview.png``, ``input.png`` and one PNG per layer (plus ``*_filters.png`` for
    every conv layer) into ``out_dir``; returns the paths written, overview first."""
    os.makedirs(out_dir, exist_ok=True)
    written = [save_figure(plot_overview(records, x, labels=labels, true_label=true_label, title=title),
                           os.path.join(out_dir, "overview.png")),
               save_figure(plot_input(x, title="input" + (f" (class {labels[true_label] if labels else true_label})"
                                                          if true_label is not None else "")),
                           os.path.join(out_dir, "input.png"))]
    for rec in records:
        stem = f"layer{rec.index}_{rec.name}"
        if isinstance(rec.layer, Conv2D):
            written.append(save_figure(plot_filters(rec), os.path.join(out_dir, f"{stem}_filters.png")))
        fig = plot_layer(rec, labels=labels, true_label=true_label)
        if fig is not None:
            suffix = "probabilities" if rec.is_probabilities else ("maps" if rec.is_spatial else "activations")
            written.append(save_figure(fig, os.path.join(out_dir, f"{stem}_{suffix}.png")))
    return written
