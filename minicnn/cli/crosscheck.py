"""``minicnn crosscheck``: compare a model layer by layer (and over K training steps) with Keras.

minicnn itself never imports TensorFlow: the work is done by :mod:`reference.crosscheck`
(the TensorFlow side of the project; :func:`reference.crosscheck.cli.run`), imported only when
the command runs. It needs the ``tf`` extra and a source checkout (the ``reference`` package).
"""

from __future__ import annotations

from ..presets import PRESETS
from .runtime import add_runtime_options


def register(sub) -> None:
    p = sub.add_parser("crosscheck", help="compare a model with TensorFlow/Keras layer by layer",
                       description="Feed the same weights and the same real MNIST batch to minicnn and "
                                   "Keras; compare every layer's output and gradients, then K optimizer "
                                   "steps. Exit status 1 if any judged quantity is outside the "
                                   "documented tolerances (docs/parity.md); what is not judged is "
                                   "reported as information.")
    p.add_argument("--preset", choices=PRESETS, default=None,
                     help="check a freshly initialised preset (default: seed); with --model, the "
                          "architecture for weights-only files")
    p.add_argument("--model", default=None, help="check a saved model (.npz, .keras, .h5)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--batch", type=int, default=32, help="images per batch (default 32)")
    p.add_argument("--steps", type=int, default=50, help="optimizer steps to compare (default 50; 0 skips)")
    p.add_argument("--optimizer", choices=("adam", "sgd", "sgd-momentum", "sgd-nesterov", "rmsprop"),
                   default="adam", help="Keras's defaults; SGD at lr 0.01 (momentum 0.9 when named)")
    p.add_argument("--keras-floatx", choices=("float32", "float64"), default=None,
                   help="Keras's floatx, the dtype of its learning-rate variable (default: --dtype; "
                        "float32 with --dtype float64 reproduces Keras's default floatx); minicnn's "
                        "optimizer gets the same learning_rate_dtype")
    p.add_argument("--sample", choices=("first", "random"), default="first",
                   help="first N test images, or a seeded random sample")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights, the upstream gradient and --sample random")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $MINICNN_DATA_DIR, caches)")
    p.add_argument("--histograms", action="store_true",
                   help="print the full per-decade counts of every tensor's elementwise relative errors "
                        "(a one-line summary per tensor is always printed)")
    p.add_argument("--bisect", action="store_true",
                   help="also find the first of the --steps at which a float32 minicnn run leaves the "
                        "float64 run (same start, same batches) by more than --bisect-rtol, by bisection "
                        "over saved states; information, not judged")
    p.add_argument("--bisect-rtol", type=float, default=None, metavar="R",
                   help="with --bisect: the distance max|w32 - w64| / max|w64| that counts as leaving "
                        "(default 1e-4, the float32 loss tolerance)")
    p.add_argument("--bisect-every", type=int, default=None, metavar="C",
                   help="with --bisect: measure and save states every C steps, then bisect the first "
                        "interval that exceeds (default ceil(sqrt(--steps)); 1 = measure every step, "
                        "which also catches excursions between checkpoints)")
    p.add_argument("--frameworks", default=None, metavar="LIST",
                   help="comma-separated Keras 3 backends (tensorflow,jax,torch), one subprocess each: every "
                        "layer and K training steps of minicnn and each backend measured against a float64 "
                        "reference (needs the jax / torch extras)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    add_runtime_options(p)
    p.set_defaults(func=run_crosscheck)


def run_crosscheck(args) -> int:
    try:
        from reference.crosscheck import run
        return run(args)
    except ModuleNotFoundError as e:  # no TensorFlow, or not a source checkout
        if (e.name or "").split(".")[0] not in ("tensorflow", "keras", "reference", "h5py"):
            raise
        raise ValueError(f"crosscheck needs TensorFlow and the 'reference' package of a source "
                         f"checkout (pip install -e '.[tf]'): {e}") from None
