"""``minicnn explore``: the model in a local web app (or, with --export, a static page).

MODEL is a model file (minicnn .npz, Keras .keras/.h5) or a preset name: then
``models/<preset>-<dataset>.npz`` if it exists, else the preset trained briefly (one epoch on
the first --train-limit training images; ``--no-train`` keeps the random weights).
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np

from .. import datasets
from ..explore import Explorer, export_page, prepare_bytes, serve
from ..presets import PRESETS, build_preset
from ..study.inspect import class_labels
from .runtime import add_runtime_options
from .study import DATASET_SHAPES, DATASETS
from .train import load_any_model


def register(sub) -> None:
    p = sub.add_parser(
        "explore", help="a local web app: draw a digit, see every layer forward and backward",
        description="Start a local web app (127.0.0.1, a free port) that shows MODEL's feature maps, "
                    "statistics and probabilities live while you draw, the numbers behind any unit, the "
                    "backward pass (gradients, saliency, Grad-CAM) and one traced Adam step. Everything is "
                    "served from the package: it works offline. With --export DIR, write a self-contained "
                    "static page of one input instead.")
    p.add_argument("model", metavar="MODEL", help=f"a model file or a preset ({', '.join(PRESETS)})")
    p.add_argument("--dataset", choices=DATASETS, default="mnist", help="test images and class names")
    p.add_argument("--data-dir", default=None, help="directory with the dataset files (default: $MINICNN_DATA_DIR, caches)")
    p.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1; anything else is "
                                                 "reachable from other machines: a warning is printed)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="print the URL, do not open a browser")
    p.add_argument("--no-train", action="store_true", help="for a preset without a models/ file: keep random weights")
    p.add_argument("--train-limit", type=int, default=6000, help="training images for a preset's brief training")
    p.add_argument("--no-tf", action="store_true", help="no comparison with TensorFlow even when it is installed")
    p.add_argument("--export", metavar="DIR", default=None, help="write DIR/index.html for one input and exit")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", metavar="FILE", help="with --export: an image file")
    src.add_argument("--index", type=int, help="with --export: a test image (default 0)")
    add_runtime_options(p)
    p.set_defaults(func=run_explore)


def _test_set(dataset, data_dir):
    try:
        (xtr, ytr), (xte, yte) = datasets.load(dataset, path=data_dir, download=False)
    except Exception as e:  # noqa: BLE001 - any failure only means "no test images"
        print(f"minicnn explore: no {dataset} images ({e}); drawing and uploads still work", file=sys.stderr)
        return None, None
    return (xtr, np.asarray(ytr).astype(np.int64)), (datasets.to_float_nhwc(xte), np.asarray(yte).astype(np.int64))


def tensorflow_twin_factory():
    """A factory of the TensorFlow twin when TensorFlow and the ``reference`` package (a source
    checkout) are importable, else None; TensorFlow itself is imported on the first comparison."""
    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("reference") is None:
        return None

    def make(model):
        from reference.explore_tf import make_twin  # TensorFlow: only when asked for
        return make_twin(model)

    return make


def resolve_model(spec, dataset, train, no_train=False, limit=6000, print_fn=print):
    """The model MODEL names (see the module docstring)."""
    if os.path.exists(spec):
        return load_any_model(spec)
    if spec not in PRESETS:
        raise FileNotFoundError(f"model {spec!r} is neither a preset ({', '.join(PRESETS)}) nor an existing file")
    saved = os.path.join("models", f"{spec}-{dataset}.npz")
    if os.path.exists(saved):
        print_fn(f"minicnn explore: loading {saved}")
        return load_any_model(saved)
    model = build_preset(spec, input_shape=DATASET_SHAPES[dataset], seed=0)
    if no_train or train is None:
        print_fn(f"minicnn explore: preset {spec} with random weights (seed 0)"
                 + ("" if no_train else f": no {dataset} training images to train it on"))
        return model
    x, y = train  # uint8 images: only the subset is converted
    n = max(1, min(limit, len(x)))
    print_fn(f"minicnn explore: training preset {spec} for one epoch on {n} {dataset} images "
             f"(save a better one as {saved})")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(datasets.to_float_nhwc(x[:n]), y[:n], batch_size=100, epochs=1, verbose=0, seed=0)
    return model


def run_explore(args) -> int:
    if args.export is None and (args.image or args.index is not None):
        raise ValueError("--image and --index go with --export DIR")
    train, test = _test_set(args.dataset, args.data_dir)
    model = resolve_model(args.model, args.dataset, train, no_train=args.no_train, limit=args.train_limit)
    xte, yte = test if test is not None else (None, None)
    if xte is not None and tuple(xte.shape[1:]) != tuple(model.input_shape):
        print(f"minicnn explore: the model takes {tuple(model.input_shape)} inputs, not {args.dataset}'s "
              f"{tuple(xte.shape[1:])}: no test images", file=sys.stderr)
        xte = yte = None
    explorer = Explorer(model, xte, yte, dataset=args.dataset, name=os.path.basename(args.model),
                        twin_factory=None if args.no_tf else tensorflow_twin_factory())
    if args.export is not None:
        return _export(args, explorer)
    host = args.host or "127.0.0.1"
    return serve(explorer, host=host, port=args.port, open_browser=not args.no_browser)


def _export(args, explorer) -> int:
    labels = class_labels(int(explorer.model.output_shape[-1]), args.dataset)
    steps = None
    if args.image:
        with open(args.image, "rb") as f:
            x, steps, _ = prepare_bytes(f.read(), explorer.input_shape)
        label, source = None, f"{args.image}, prepared as `minicnn predict` prepares an image"
    else:
        index = args.index or 0
        try:
            x, label = explorer.test_image(index)
        except LookupError as e:
            raise ValueError(f"{e}; or export a drawing with --image FILE") from None
        source = f"{args.dataset} test image {index} (class {labels[label]})"
    path = export_page(explorer, x, args.export, label=label, source=source, steps=steps)
    print(f"minicnn explore: wrote {path} (open it in a browser; it needs no server)")
    return 0
