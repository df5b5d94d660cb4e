"""Training checkpoints: everything needed to continue a run bitwise as if never interrupted.

A checkpoint is one ``.npz`` (no pickle) holding the weights, the optimizer's state arrays, the
current epoch's sample order, and a JSON record with the epoch, step, running metric sums,
history, the training RNG's state and a SHA-256 over all arrays. It is written atomically
(temporary file, fsync, rename) as ``ckpt-<iterations>.npz``; the last ``keep`` are kept. On
resume the newest checkpoint whose checksum verifies is used; a damaged one is skipped with a
warning naming it.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import sys

import numpy as np

from .callbacks import History
from .errors import ModelFileError
from .fileio import arrays_digest, atomic_write, npz_bytes, read_npz

FORMAT = "minicnn-checkpoint-1"
_NAME = re.compile(r"ckpt-(\d{9})\.npz$")


@dataclasses.dataclass
class TrainState:
    """Where a ``fit`` loop is: epoch (0-based), step within it, the epoch's order and sums."""

    epoch: int
    step: int
    perm: np.ndarray | None
    sums: dict
    history: History

    def running_logs(self, metrics) -> dict:
        n = max(self.sums.get("count", 0), 1)
        logs = {"loss": self.sums.get("loss", 0.0) / n}
        if metrics:
            logs["accuracy"] = self.sums.get("accuracy", 0.0) / n
        return logs


class CheckpointWriter:
    def __init__(self, directory, keep=3):
        if int(keep) < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {keep!r}")
        self.directory, self.keep = os.fspath(directory), int(keep)
        os.makedirs(self.directory, exist_ok=True)

    def save(self, model, state: TrainState) -> str:
        arrays = {f"weights/{k}": p for k, p, _ in model.named_parameters()}
        arrays.update({f"optimizer/{k}": v for k, v in model.optimizer.get_state().items()})
        if state.perm is not None:
            arrays["perm"] = state.perm
        meta = {"format": FORMAT, "epoch": state.epoch, "step": state.step, "sums": state.sums,
                "history": state.history.to_dict(), "rng": model.train_rng.bit_generator.state,
                "model": model.get_config(), "optimizer": model.optimizer.get_config(),
                "loss": model.loss.get_config(), "sha256": arrays_digest(arrays)}
        path = os.path.join(self.directory, f"ckpt-{model.optimizer.iterations:09d}.npz")
        atomic_write(path, npz_bytes(arrays, meta))
        for old in list_checkpoints(self.directory)[:-self.keep]:
            os.unlink(old)
        return path


def list_checkpoints(directory) -> list[str]:
    """Checkpoint paths in ``directory``, oldest first."""
    paths = [p for p in glob.glob(os.path.join(os.fspath(directory), "ckpt-*.npz")) if _NAME.search(p)]
    return sorted(paths)


def read_checkpoint(path) -> tuple[dict, dict]:
    """(arrays, meta) of a checkpoint, after checking format and checksum; ModelFileError if not."""
    arrays, meta = read_npz(path, what="checkpoint")
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"checkpoint {path!r} has format {meta.get('format')!r}, expected {FORMAT!r}")
    if arrays_digest(arrays) != meta.get("sha256"):
        raise ModelFileError(f"checkpoint {path!r} fails its checksum (damaged or tampered with)")
    return arrays, meta


def restore_latest(directory, model, state: TrainState, stream=None):
    """Load the newest valid checkpoint into ``model`` and ``state``; returns its path or None."""
    stream = stream or sys.stderr
    for path in reversed(list_checkpoints(directory)):
        try:
            arrays, meta = read_checkpoint(path)
            _apply(path, arrays, meta, model, state)
        except ModelFileError as e:
            stream.write(f"warning: skipping checkpoint: {e}\n")
            continue
        return path
    return None


def _apply(path, arrays, meta, model, state):
    saved = meta.get("model", {})
    if saved.get("layers") != model.get_config()["layers"]:
        raise ModelFileError(f"checkpoint {path!r} was written for a different model architecture")
    weights = {k[len("weights/"):]: v for k, v in arrays.items() if k.startswith("weights/")}
    params = list(model.named_parameters())
    for key, p, _ in params:
        w = weights.get(key)
        if w is None or w.shape != p.shape or w.dtype != p.dtype:
            raise ModelFileError(f"checkpoint {path!r}: weight {key!r} is missing or has the wrong "
                                 f"shape/dtype (expected {p.shape} {p.dtype})")
    for key, p, _ in params:
        p[...] = weights[key]
    opt_state = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    if "iterations" not in opt_state:
        raise ModelFileError(f"checkpoint {path!r} has no optimizer state")
    model.optimizer.set_state(opt_state)
    try:
        model.train_rng.bit_generator.state = meta["rng"]
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"checkpoint {path!r} has an invalid RNG state: {e}") from None
    state.epoch, state.step = int(meta["epoch"]), int(meta["step"])
    state.sums = dict(meta.get("sums", {}))
    state.perm = arrays.get("perm")
    state.history = History.from_dict(meta.get("history", {}))
