"""``minicnn inspect``, ``minicnn report`` and ``minicnn predict``: study a model.

MODEL is a preset name ('seed', 'pooled': freshly initialised, untrained, seed 0) or a model
file saved by ``minicnn train`` / ``Sequential.save``.
"""

from __future__ import annotations

import os

import numpy as np

from .. import datasets
from ..kernels import backend_name
from ..presets import PRESETS, build_preset
from ..study import figures, images, inspect, report, text
from ..study.images import STEPS as PREPROCESSING_STEPS
from ..study.inspect import class_labels
from .runtime import add_runtime_options
from .train import load_any_model

DATASETS = ("mnist", "fashion_mnist", "cifar10")
#: per-sample input shape of each dataset (for presets, which have no stored shape)
DATASET_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}


def register(sub) -> None:
    p = sub.add_parser(
        "inspect", help="per-layer outputs, statistics and figures for one input",
        description="Run one input (a test image or an image file) through MODEL and print, per "
                    "layer, the output shape and activation statistics (min, max, mean, share of zeros "
                    "after ReLU, share of max-pool windows with tied maxima); write figures of the input, "
                    "the filters, the feature maps, the dense activations and the class probabilities "
                    "to --out. Without matplotlib it prints the input as text instead.")
    p.add_argument("model", metavar="MODEL", help="a preset name ('seed', 'pooled'; untrained) or a model file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--index", type=int, help="index of a test-set image")
    src.add_argument("--image", metavar="PATH", help="an image file (PNG/JPEG), prepared as `minicnn predict` does")
    p.add_argument("--out", default="inspect", help="directory for the figures (default: ./inspect)")
    p.add_argument("--dataset", choices=DATASETS, default="mnist", help="test set for --index and class names")
    p.add_argument("--data-dir", default=None, help="directory with the dataset files (default: $MINICNN_DATA_DIR, caches)")
    p.add_argument("--no-figures", action="store_true", help="print text only, write no figures")
    p.add_argument("--text", choices=("matrix", "ascii"), default="matrix",
                   help="how the input is printed when there are no figures: pixel values 0..255 "
                        "(matrix, default) or ASCII shades")
    add_runtime_options(p)
    p.set_defaults(func=run_inspect)

    p = sub.add_parser(
        "report", help="training curves, confusion matrix and worst errors as PNGs + report.md",
        description="Write curves.png (loss and accuracy per epoch from the history JSON that "
                    "`minicnn train` saves next to the model), confusion.png (test set), errors.png "
                    "(the most confidently wrong test images) and report.md linking them.")
    p.add_argument("model", metavar="MODEL", help="a model file (or a preset name: untrained)")
    p.add_argument("--history", default=None,
                   help="history JSON (default: <model>.history.json next to the model, if it exists)")
    p.add_argument("--out", default="report", help="output directory (default: ./report)")
    p.add_argument("--dataset", choices=DATASETS, default="mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--errors", type=int, default=16, help="how many wrong images to show (default 16)")
    add_runtime_options(p)
    p.set_defaults(func=run_report)

    p = sub.add_parser(
        "predict", help="classify image files (PNG/JPEG): top-3 classes per image",
        description="Print the 3 most probable classes of each image. " + PREPROCESSING_STEPS)
    p.add_argument("model", metavar="MODEL", help="a model file (or a preset name: untrained)")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    p.add_argument("--dataset", choices=DATASETS, default="mnist", help="class names (and input shape for presets)")
    p.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                   help="invert the gray values: auto (when the border mean > 127), yes, no")
    p.add_argument("--top", type=int, default=3, help="how many classes to print (default 3)")
    p.add_argument("--show", action="store_true", help="also print each prepared 28x28 input as ASCII shades")
    add_runtime_options(p)
    p.set_defaults(func=run_predict)


# ----------------------------------------------------------------------------- helpers
def load_study_model(spec: str, input_shape=(28, 28, 1)):
    """A preset (built for ``input_shape``, seed 0) or a saved model file."""
    if spec in PRESETS and not os.path.exists(spec):
        return build_preset(spec, input_shape=input_shape, seed=0)
    if not os.path.exists(spec):
        raise FileNotFoundError(f"model {spec!r} is neither a preset ({', '.join(PRESETS)}) nor an existing file")
    return load_any_model(spec)


def load_test_set(dataset: str, data_dir=None):
    """Test images as float NHWC in [0, 1] and integer labels."""
    (_, _), (xte, yte) = datasets.load(dataset, path=data_dir)
    return datasets.to_float_nhwc(xte), np.asarray(yte).astype(np.int64)


def _check_model_input(model, shape, what):
    if tuple(model.input_shape) != tuple(shape):
        raise ValueError(f"the model expects inputs of shape {tuple(model.input_shape)} but {what} "
                         f"has shape {tuple(shape)}")


def _labels(model, dataset):
    return class_labels(int(model.output_shape[-1]), dataset)


# ----------------------------------------------------------------------------- inspect
def run_inspect(args) -> int:

    true_label = None
    if args.index is not None:
        xte, yte = load_test_set(args.dataset, args.data_dir)
        if not 0 <= args.index < len(xte):
            raise ValueError(f"--index {args.index} is out of range: the {args.dataset} test set has "
                             f"{len(xte)} images (0..{len(xte) - 1})")
        x = xte[args.index]
        true_label = int(yte[args.index])
        model = load_study_model(args.model, input_shape=x.shape)
        _check_model_input(model, x.shape, f"the {args.dataset} test set")
        source = f"{args.dataset} test image {args.index} (class {true_label})"
    else:
        model = load_study_model(args.model, input_shape=DATASET_SHAPES[args.dataset])
        prepared = images.load_image(args.image, model.input_shape)
        x = prepared.array
        source = (f"{args.image} ({prepared.original_size[0]}x{prepared.original_size[1]} pixels"
                  f"{', inverted' if prepared.inverted else ''}, resized to "
                  f"{prepared.resized_size[0]}x{prepared.resized_size[1]} and padded)")
    labels = _labels(model, args.dataset)
    if true_label is not None and true_label < len(labels):
        source = source.replace(f"(class {true_label})", f"(class {labels[true_label]})")
    records = inspect.inspect_model(model, x)
    print(f"model: {args.model} ('{model.name}', {model.count_params():,} parameters), backend {backend_name()}")
    print(f"input: {source}, shape {'x'.join(map(str, x.shape))}, values in [{x.min():.2f}, {x.max():.2f}]")
    last = records[-1]
    if last.is_probabilities:
        top = inspect.top_k(last.output, 3, labels)
        print("prediction: " + ", ".join(f"{lab} ({p:.4f})" for _, lab, p in top))
    print()
    print(inspect.format_table(records))
    print()

    skipped = None
    if args.no_figures:
        skipped = "--no-figures"
    else:
        try:
            inspect.require_matplotlib()
        except inspect.MissingDependency:
            skipped = "matplotlib"
    if skipped:
        print(f"input ({'pixel values 0..255' if args.text == 'matrix' else 'ASCII shades'}):")
        print(text.render_image(x, args.text))
        if last.is_probabilities:
            print()
            print("class probabilities:")
            print(text.probability_bars(last.output, labels))
        if skipped == "matplotlib":
            print()
            print(f"figures were skipped: matplotlib is not installed. Install it with: {inspect.INSTALL_HINT}")
        return 0
    title = f"{model.name}: {source.split(' (')[0]}"
    written = figures.save_figures(records, x, args.out, labels=labels, true_label=true_label, title=title)
    print(f"figures written to {os.path.join(args.out, '')}: " + ", ".join(os.path.basename(p) for p in written))
    return 0


# ----------------------------------------------------------------------------- report
def run_report(args) -> int:
    if args.errors < 0:
        raise ValueError("--errors must be >= 0")
    history = None
    if args.history is not None:
        history = report.load_history(args.history)
    else:
        guess = report.history_path_for(args.model)
        if os.path.exists(guess):
            history = report.load_history(guess)
    xte, yte = load_test_set(args.dataset, args.data_dir)
    model = load_study_model(args.model, input_shape=xte.shape[1:])
    _check_model_input(model, xte.shape[1:], f"the {args.dataset} test set")
    res = report.write_report(model, xte, yte, args.out, history=history, labels=_labels(model, args.dataset),
                              model_name=os.path.basename(args.model), n_errors=args.errors)
    print(f"test accuracy {res['accuracy']:.4f} on {len(yte)} {args.dataset} test images")
    if history is None:
        print("no history file found: no training curves (pass --history FILE)")
    if res["skipped"]:
        print(f"figures were skipped: {res['skipped']}")
    written = [os.path.basename(p) for p in res["figures"]]
    print(f"wrote {res['report']}" + (f" and {', '.join(written)}" if written else ""))
    return 0


# ----------------------------------------------------------------------------- predict
def run_predict(args) -> int:
    if args.top < 1:
        raise ValueError("--top must be >= 1")
    invert = {"auto": "auto", "yes": True, "no": False}[args.invert]
    # Read every image before loading the model: a bad path fails fast, before any output.
    for path in args.images:
        images.open_image(path)
    model = load_study_model(args.model, input_shape=DATASET_SHAPES[args.dataset])
    labels = _labels(model, args.dataset)
    prepared = [images.load_image(path, model.input_shape, invert=invert) for path in args.images]
    batch = np.stack([p.array for p in prepared]).astype(model.dtype)
    probs = model.predict(batch, batch_size=64)
    for prep, p in zip(prepared, probs):
        top = inspect.top_k(p, min(args.top, p.size), labels)
        print(f"{prep.path}: " + ", ".join(f"{lab} ({q:.4f})" for _, lab, q in top))
        if args.show:
            print(text.ascii_shades(prep.array))
    return 0
