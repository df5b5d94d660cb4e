"""Training: the ``fit`` loop, one step with its non-finite guard, and interrupts.

Depends on the model (:mod:`minicnn.model`) and on files (:mod:`minicnn.io`), never the reverse.
"""

from .interrupts import SignalFlag, TrainingInterrupted
from .loop import FitRun, fit, split_validation
from .step import guard_finite, locate_nonfinite, train_on_batch

__all__ = ["fit", "train_on_batch", "guard_finite", "locate_nonfinite", "FitRun", "split_validation",
           "SignalFlag", "TrainingInterrupted"]
