"""Make the figures embedded in docs/tutorial.md and the README (into docs/images/).

    python docs/make_figures.py                         # edge_pipeline.png (no data needed)
    python docs/make_figures.py --model models/seed.npz # also overview.png, the per-layer
                                                        # figures of MNIST test image 0, and the
                                                        # report's confusion.png and errors.png

The second form runs ``minicnn inspect MODEL --index 0 --out docs/images/`` and ``minicnn report
MODEL --out docs/images/`` and needs the MNIST files (``MINICNN_DATA_DIR``). The committed
figures come from a seed model trained with ``minicnn train --epochs 2 --validation-split 0.1``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "images")
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

from minicnn.layers import Conv2D, MaxPool2D  # noqa: E402
from minicnn.study.figures import _new_figure  # noqa: E402
from minicnn.study.inspect import DPI  # noqa: E402


def edge_example():
    """The tutorial's 6x6 image and its two edge filters, through conv, ReLU and 2x2 max pooling."""
    img = np.zeros((6, 6), dtype=np.float32)
    img[:, 3:] = 1
    img[0, 3] = 0
    img[4:, 2] = 1
    edge = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=np.float32)
    kernel = np.stack([edge, -edge], axis=-1)[:, :, None, :]
    conv = Conv2D(2, 3, name="edges")
    conv.build((6, 6, 1))
    conv.set_weights([kernel, np.zeros(2, np.float32)])
    z = conv.forward(img.reshape(1, 6, 6, 1))[0]
    r = np.maximum(z, 0)
    pool = MaxPool2D(2)
    pool.build(r.shape)
    p = pool.forward(r[None])[0]
    return img, kernel[:, :, 0, :], z, r, p, pool.last_argmax[0]


def _cells(ax, a, cmap, vmin, vmax, fmt="{:g}", bold=None):
    ax.imshow(a, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    mid = (vmin + vmax) / 2
    for (i, j), v in np.ndenumerate(a):
        dark = v > mid if cmap == "gray" else abs(v) > 0.6 * max(abs(vmin), abs(vmax))
        ax.text(j, i, fmt.format(float(v) + 0.0), ha="center", va="center", fontsize=9,
                color=("black" if dark else "white") if cmap == "gray" else ("white" if dark else "black"),
                fontweight="bold" if bold is not None and bold[i, j] else "normal")
    ax.set_xticks(np.arange(-0.5, a.shape[1], 1), minor=True)
    ax.set_yticks(np.arange(-0.5, a.shape[0], 1), minor=True)
    ax.grid(which="minor", color="0.6", linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)


def plot_edge_pipeline():
    img, filters, z, r, p, _ = edge_example()
    fig = _new_figure(9.0, 4.6)
    lim = float(np.abs(z).max())
    # the image, once, centred between the two filter rows
    ax = fig.add_axes([0.02, 0.31, 0.19, 0.37])
    _cells(ax, img, "gray", 0, 1)
    ax.set_title("image (6x6)", fontsize=9)
    names = ["dark -> light edge", "light -> dark edge"]
    # per filter row: filter, convolution, ReLU, max pool (left, width, height in figure fractions)
    panels = [(0.25, 0.12, 0.24), (0.41, 0.17, 0.33), (0.61, 0.17, 0.33), (0.81, 0.09, 0.17)]
    titles = ["filter {row}: {name}", "convolution (4x4)", "after ReLU", "2x2 max pool"]
    for row in range(2):
        centre = 0.69 - row * 0.42
        data = [(filters[:, :, row], -1.5, 1.5), (z[:, :, row], -lim, lim), (r[:, :, row], -lim, lim),
                (p[:, :, row], -lim, lim)]
        for (left, w, h), (a, lo, hi), title in zip(panels, data, titles):
            ax = fig.add_axes([left, centre - h / 2, w, h])
            _cells(ax, a, "RdBu_r", lo, hi)
            ax.set_title(title.format(row=row, name=names[row]), fontsize=9)
    fig.text(0.5, 0.02, "each convolution cell = sum of filter x (3x3 window of the image)\n"
             "ReLU zeroes the negative responses; max pooling keeps the largest value of each 2x2 block",
             ha="center", fontsize=8.5, linespacing=1.5)
    fig.suptitle("one image, two edge filters: convolution -> ReLU -> max pooling", fontsize=11)
    return fig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a trained seed model: also write overview.png and per-layer figures")
    ap.add_argument("--out", default=IMAGES)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "edge_pipeline.png")
    plot_edge_pipeline().savefig(path, dpi=DPI)
    print(f"wrote {path}")
    if args.model:
        from minicnn.cli import main as cli
        code = cli(["inspect", args.model, "--index", "0", "--out", args.out])
        if code:
            return code
        code = cli(["report", args.model, "--out", args.out])
        if code:
            return code
        for name in ("input.png", "curves.png", "report.md"):   # not embedded: keep docs/images small
            if os.path.exists(os.path.join(args.out, name)):
                os.remove(os.path.join(args.out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
