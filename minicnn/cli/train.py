"""``minicnn train``, ``minicnn evaluate`` and ``minicnn summary``."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from .. import callbacks, datasets, optimizers
from ..datasets import one_hot
from ..fileio import atomic_write
from ..kernels import backend_name
from ..presets import PRESETS, build_preset
from ..sequential import Sequential, load_model
from ..training.warmup import Warmup, needs_warmup
from .runtime import add_runtime_options

DATASETS = ("mnist", "fashion_mnist", "cifar10")
#: the datasets' image shapes (NHWC), known before they are read: the model is built first, so its
#: kernels compile in a background thread while the data loads
INPUT_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
#: ``minicnn train``'s evaluation batch size (the warm-up predicts one such batch)
EVAL_BATCH = 1000


def register(sub) -> None:
    p = sub.add_parser("train", help="train a preset model, or the architecture in a model file, on a dataset")
    arch = p.add_mutually_exclusive_group()
    arch.add_argument("--preset", choices=PRESETS, default=None, help="a named architecture (default: seed)")
    arch.add_argument("--model", default=None, metavar="FILE",
                      help="train the architecture in a Keras .keras/.h5 or minicnn .npz file")
    p.add_argument("--keep-weights", action="store_true",
                   help="with --model: start from the file's weights (default: fresh weights, seeded)")
    p.add_argument("--dataset", choices=DATASETS, default="mnist")
    p.add_argument("--data-dir", default=None, help="directory with the dataset files (default: $MINICNN_DATA_DIR, caches, download)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--optimizer", choices=("adam", "sgd", "rmsprop"), default="adam")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the optimizer's Keras default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--validation-split", type=float, default=0.0)
    p.add_argument("--limit", type=int, default=None, help="train on the first N training images only")
    p.add_argument("--no-warmup", action="store_true",
                   help="do not compile the kernels in the background while the data loads (they then "
                        "compile in the first training step)")
    p.add_argument("--out", default=None, help="model file to write (default: models/<preset>-<dataset>.npz)")
    p.add_argument("--checkpoint-dir", default=None, help="write a checkpoint after every epoch here")
    p.add_argument("--checkpoint-every", type=int, default=None, help="also checkpoint every N steps")
    p.add_argument("--keep-checkpoints", type=int, default=3, help="how many checkpoints to keep (default 3)")
    p.add_argument("--resume", action="store_true", help="continue from the newest valid checkpoint")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    p.add_argument("--no-dynamics", action="store_true",
                   help="do not record per-layer training dynamics (gradient norms, update ratios, dead "
                        "ReLUs, max-pool ties, activation statistics) into the history")
    add_runtime_options(p)
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate", help="test loss and accuracy of a saved model")
    p.add_argument("model", help="a minicnn .npz, or a Keras .keras/.h5/.weights.h5 file")
    p.add_argument("--dataset", choices=DATASETS, default="mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="architecture for weights-only files (.weights.h5)")
    add_runtime_options(p)
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("summary", help="print a preset's or a saved model's layer table")
    p.add_argument("target", help=f"a preset ({', '.join(PRESETS)}) or a model file")
    p.set_defaults(func=run_summary)


def load_dataset(name, data_dir=None):
    """(x_train, y_train), (x_test, y_test) as float NHWC in [0, 1] and integer labels."""
    (xtr, ytr), (xte, yte) = datasets.load(name, path=data_dir)
    return (datasets.to_float_nhwc(xtr), ytr), (datasets.to_float_nhwc(xte), yte)


def load_any_model(path, preset=None, input_shape=(28, 28, 1)):
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    architecture = build_preset(preset, input_shape=input_shape) if preset else None
    return load_model(path, architecture=architecture)


def train_model(args, input_shape, num_classes):
    """The model ``minicnn train`` trains: a preset, or a file's architecture (fresh weights from
    ``--seed`` unless ``--keep-weights``), in ``--dtype``."""
    if args.keep_weights and not args.model:
        raise ValueError("--keep-weights needs --model FILE")
    if not args.model:
        return build_preset(args.preset or "seed", input_shape=input_shape, num_classes=num_classes,
                            dtype=args.dtype, seed=args.seed)
    loaded = load_any_model(args.model)
    if tuple(loaded.input_shape) != tuple(input_shape):
        raise ValueError(f"model {args.model!r} takes inputs of shape {tuple(loaded.input_shape)}, but "
                         f"{args.dataset} images are {tuple(input_shape)}")
    if tuple(loaded.output_shape) != (num_classes,):
        raise ValueError(f"model {args.model!r} outputs {tuple(loaded.output_shape)}, but {args.dataset} "
                         f"has {num_classes} classes")
    config = {**loaded.get_config(), "dtype": args.dtype}
    model = Sequential.from_config(config, seed=args.seed)
    if args.keep_weights:
        model.set_weights([w.astype(model.dtype) for w in loaded.get_weights()])
    return model


def compiled_model(args, input_shape):
    """The model to train, compiled with the optimizer and loss of ``args``."""
    model = train_model(args, input_shape, 10)
    opt = optimizers.get(args.optimizer, **({"learning_rate": args.lr} if args.lr else {}))
    model.compile(opt, "categorical_crossentropy", ["accuracy"])
    return model


def run_train(args) -> int:
    if args.epochs < 0 or args.batch_size < 1:
        raise ValueError("--epochs must be >= 0 and --batch-size >= 1")
    model = warmup = None
    if not getattr(args, "no_warmup", False) and args.epochs > 0 and needs_warmup():
        # build the model first and compile its kernels while the data is read and decoded
        model = compiled_model(args, INPUT_SHAPES[args.dataset])
        # the evaluation at the end (EVAL_BATCH) and fit's validation batches (see training.loop)
        val = (max(args.batch_size, 256),) if args.validation_split else ()
        warmup = Warmup(model, args.batch_size, predict_batch=EVAL_BATCH, eval_batches=val).start()
    (xtr, ytr), (xte, yte) = load_dataset(args.dataset, args.data_dir)
    if args.limit:
        xtr, ytr = xtr[:args.limit], ytr[:args.limit]
    if args.dtype == "float64":
        xtr, xte = xtr.astype(np.float64), xte.astype(np.float64)
    if model is None:
        model = compiled_model(args, xtr.shape[1:])
    name = args.preset or (os.path.splitext(os.path.basename(args.model))[0] if args.model else "seed")
    if warmup is not None:
        t = time.perf_counter()
        warmup.join()
        print(f"minicnn: kernels compiled or loaded from numba's cache in {warmup.seconds:.1f} s, in the "
              f"background while the data loaded (waited {time.perf_counter() - t:.1f} s for them)")
    print(f"minicnn: training '{name}' on {args.dataset} ({len(xtr)} images), backend "
          f"{backend_name()}, {args.dtype}, batch {args.batch_size}, {args.epochs} epochs")
    t0 = time.perf_counter()
    history = model.fit(xtr, one_hot(ytr, 10, xtr.dtype), batch_size=args.batch_size, epochs=args.epochs,
                        verbose=args.verbose, validation_split=args.validation_split, seed=args.seed,
                        checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
                        keep_checkpoints=args.keep_checkpoints, resume=args.resume,
                        callbacks=[] if args.no_dynamics else [callbacks.TrainingDynamics()])
    wall = time.perf_counter() - t0
    loss, acc = model.evaluate(xte, one_hot(yte, 10, xte.dtype), batch_size=1000)
    out = args.out or os.path.join("models", f"{name}-{args.dataset}.npz")
    model.save(out)
    hist_path = os.path.splitext(out)[0] + ".history.json"
    record = {**history.to_dict(), "test_loss": loss, "test_accuracy": acc, "train_seconds": wall,
              "backend": backend_name(), "preset": args.preset, "model_file": args.model, "dataset": args.dataset}
    atomic_write(hist_path, json.dumps(record, indent=1).encode())
    print(f"test loss {loss:.4f} - test accuracy {acc:.4f} ({acc * 100:.2f}%) - training took {wall:.1f} s")
    print(f"saved model to {out} and history to {hist_path}")
    return 0


def run_evaluate(args) -> int:
    (_, _), (xte, yte) = load_dataset(args.dataset, args.data_dir)
    model = load_any_model(args.model, args.preset, input_shape=xte.shape[1:])
    if model.loss is None:
        model.compile("adam", "categorical_crossentropy", ["accuracy"])
    if not model.metrics:
        model.metrics = ["accuracy"]
    loss, acc = model.evaluate(xte.astype(model.dtype, copy=False), one_hot(yte, 10, model.dtype),
                               batch_size=args.batch_size)
    print(f"{args.model}: test loss {loss:.4f} - test accuracy {acc:.4f} ({acc * 100:.2f}%) on {len(xte)} images")
    return 0


def run_summary(args) -> int:
    if args.target in PRESETS:
        build_preset(args.target).summary()
    else:
        load_any_model(args.target).summary()
    return 0
