"""Layer-by-layer and training-trajectory comparison of a minicnn model with Keras/TensorFlow.

:func:`crosscheck` puts the same weights and the same real images into both frameworks and
reports, per layer, the output, the gradient w.r.t. the layer input (dX) and the kernel (dW) and
bias (db) gradients; then it runs K optimizer steps in both on identical batches and compares
the losses and the final weights. :func:`format_report` renders the report; ``minicnn
crosscheck`` (:mod:`minicnn.cli.crosscheck`, through :func:`run`) is the command-line front end.
How the two sides are driven and why is in docs/parity.md.

Modules, in the order the check runs:

* :mod:`.environment`: TensorFlow's device (a GPU when one is visible: TF32 off, op determinism
  on), thread pools and TF32, ``floatx``, the report header;
* :mod:`.sides`: minicnn's side (the model's own ``forward``/``backward`` passes, recorded) and
  Keras's (layer by layer, each VJP at minicnn's activations; and one unpinned tape);
* :mod:`.layer_check`: one judged row per (layer, tensor), plus the information lines;
* :mod:`.training`: K steps, free-running (judged in float64) and step by step (judged in float32);
* :mod:`.loss_path`: which cross-entropy Keras computes on a softmax output (information);
* :mod:`.compare` and :mod:`.tolerances`: each comparison's numbers and verdict, and the table;
  :mod:`.histogram`: each comparison's log-decade histogram of elementwise relative errors;
* :mod:`.bisect`: ``--bisect``, the first step at which a float32 run leaves the float64 run;
* :mod:`.check`: :func:`crosscheck` and the summary; :mod:`.report`: the text;
  :mod:`.data`: MNIST batches; :mod:`.cli`: :func:`run`.

Verdicts: a judged quantity passes when ``max|d| <= atol + rtol * max|ref|`` (atol 0) with the
rtol of :data:`TOLERANCES`; RESULT is PASS when every judged quantity passes. What no tolerance
applies to (the float32 free-running losses and weights, the unpinned gradients, max-pool ties,
Keras's loss path) is reported as "not judged" and never counted as passed.

Imports: TensorFlow and Keras are imported at module level, like minicnn. This package *is*
the TensorFlow side of the project: nothing in :mod:`minicnn` imports it at import time
(:mod:`minicnn.cli.crosscheck` imports it only when the command runs, and turns a missing
TensorFlow into a clear error), so lazy imports here would only hide the dependency. Importing
TensorFlow does not start its runtime, so :func:`setup_tensorflow` can still set the thread
pools afterwards.
"""

from .check import crosscheck, summarise
from .cli import run
from .compare import compare
from .data import load_mnist_batch
from .environment import setup_tensorflow
from .layer_check import TENSORS
from .report import format_report
from .sides import keras_layer_pass, keras_tape_pass, minicnn_pass
from .tolerances import RULE, TOLERANCES, tolerance
from .training import LEARNING_RATES, optimizer_pair, training_check

__all__ = ["LEARNING_RATES", "RULE", "TENSORS", "TOLERANCES", "compare", "crosscheck", "format_report",
           "keras_layer_pass", "keras_tape_pass", "load_mnist_batch", "minicnn_pass", "optimizer_pair",
           "run", "setup_tensorflow", "summarise", "tolerance", "training_check"]
