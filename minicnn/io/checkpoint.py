"""Training checkpoints: everything needed to continue a run bitwise as if never interrupted.

A checkpoint is one ``.npz`` (no pickle; see :mod:`minicnn.fileio`) holding the weights, the
optimizer's state arrays and, mid-epoch, the epoch's sample order, plus a JSON record with the
epoch and step, the running metric sums, the history, the training RNG's state, the
architecture, optimizer, loss and fit settings, and a SHA-256 over all of it. It is written
atomically (temporary file, fsync, rename) as ``ckpt-<optimizer iterations>.npz``; the newest
``keep`` are kept.

On resume the newest checkpoint that reads and verifies is used. A damaged one (truncated,
flipped bytes, tampered with) is skipped with a warning naming it and renamed to
``<name>.damaged`` so that it no longer counts as a checkpoint; the previous one is used. A
checkpoint that is intact but belongs to a different run (another architecture, optimizer, batch
size or number of samples) is an error: falling back would silently train something else.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys

import numpy as np

from ..callbacks import History
from ..errors import FileWriteError, ModelFileError
from ..fileio import is_int, is_number, read_npz, stale_temp_files, write_npz
from ..model import Network
from .dirlock import DirectoryLock
from .model_file import compile_from_config, model_from_config, planned_parameter_count

FORMAT = "minicnn-checkpoint-1"
_NAME = re.compile(r"ckpt-(\d{9,})\.npz")
DAMAGED_SUFFIX = ".damaged"
#: optimizer state arrays per weight at most (RMSprop centered with momentum: 3), plus the weight
_ARRAYS_PER_WEIGHT = 4
_SLACK_BYTES = 8 << 20


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


def checkpoint_name(iterations: int) -> str:
    """The file name of the checkpoint taken after ``iterations`` optimizer steps."""
    return f"ckpt-{int(iterations):09d}.npz"


def checkpoint_iterations(path) -> int:
    """The optimizer steps a checkpoint's file name records (the inverse of checkpoint_name)."""
    m = _NAME.fullmatch(os.path.basename(os.fspath(path)))
    if m is None:
        raise ValueError(f"{os.fspath(path)!r} is not a checkpoint file name (ckpt-<steps>.npz)")
    return int(m.group(1))


class CheckpointWriter:
    """Writes checkpoints of one run into ``directory``, keeping the newest ``keep``.

    Holds the directory's lock (:class:`~minicnn.io.dirlock.DirectoryLock`) from construction
    to :meth:`close`: a second writer on the same directory, in any process, is refused with
    :class:`~minicnn.errors.LockedError` naming the first one's pid."""

    def __init__(self, directory, keep=3, stream=None):
        if not is_int(keep) or keep < 1:
            raise ValueError(f"keep_checkpoints must be an int >= 1, got {keep!r}")
        self.directory, self.keep = os.fspath(directory), int(keep)
        self.last_path = None
        self.lock = None
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as e:
            raise FileWriteError(self.directory, e, context="; cannot create the checkpoint "
                                 "directory, so training did not start") from None
        self.lock = DirectoryLock(self.directory, stream=stream)
        for tmp in stale_temp_files(self.directory, _NAME):  # left by a process killed mid-write
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def close(self) -> None:
        """Release the directory's lock (idempotent)."""
        if self.lock is not None:
            self.lock.release()

    def save(self, model, state: TrainState, fit_info: dict) -> str:
        arrays = {f"weights/{k}": p for k, p in model.named_weights()}
        arrays.update({f"optimizer/{k}": v for k, v in model.optimizer.get_state().items()})
        if state.perm is not None:
            arrays["perm"] = state.perm
        meta = {"format": FORMAT, "epoch": state.epoch, "step": state.step, "sums": state.sums,
                "history": state.history.to_dict(), "rng": model.train_rng.bit_generator.state,
                "model": model.get_config(), "optimizer": model.optimizer.get_config(),
                "loss": model.loss.get_config(), "metrics": list(model.metrics), "fit": dict(fit_info)}
        path = os.path.join(self.directory, checkpoint_name(model.optimizer.iterations))
        write_npz(path, arrays, meta)
        self.last_path = path
        for old in list_checkpoints(self.directory)[:-self.keep]:
            try:
                os.unlink(old)
            except FileNotFoundError:
                pass
        return path


def list_checkpoints(directory) -> list[str]:
    """Checkpoint paths in ``directory``, oldest first (an empty list if it does not exist)."""
    directory = os.fspath(directory)
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [(int(m.group(1)), name) for name in names if (m := _NAME.fullmatch(name))]
    return [os.path.join(directory, name) for _, name in sorted(found)]


# ----------------------------------------------------------------------------- reading
def read_checkpoint(path) -> tuple[dict, dict]:
    """(arrays, meta) of a checkpoint, after checking its checksum and that every field has the
    type and range minicnn writes; ModelFileError otherwise."""
    path = os.fspath(path)
    arrays, meta = read_npz(path, what="checkpoint", budget=checkpoint_budget)
    _validate(path, arrays, meta)
    return arrays, meta


def checkpoint_budget(meta) -> int | None:
    """The most bytes a checkpoint's arrays may declare: weights and optimizer state in the
    widest dtype, the sample order, slack (None if the record's architecture cannot be sized)."""
    planned = planned_parameter_count(meta.get("model")) if isinstance(meta, dict) else None
    if planned is None:
        return None
    fit = meta.get("fit")
    n = fit.get("num_samples") if isinstance(fit, dict) else 0
    n = n if is_int(n) and n > 0 else 0
    return planned * 8 * _ARRAYS_PER_WEIGHT + n * 8 + _SLACK_BYTES


def _validate(path, arrays, meta):
    def fail(msg):
        raise ModelFileError(f"checkpoint {path!r}: {msg}")

    if meta.get("format") != FORMAT:
        fail(f"has format {str(meta.get('format'))[:80]!r}, expected {FORMAT!r}")
    for key in ("epoch", "step"):
        if not is_int(meta.get(key)) or meta[key] < 0:
            fail(f"field {key!r} must be a non-negative integer")
    sums = meta.get("sums")
    if not isinstance(sums, dict) or not all(is_number(v) for v in sums.values()):
        fail("field 'sums' must map names to numbers")
    if not is_int(sums.get("count", 0)) or sums.get("count", 0) < 0:
        fail("field 'sums' has an invalid sample count")
    hist = meta.get("history")
    if (not isinstance(hist, dict) or not isinstance(hist.get("epoch", []), list)
            or not all(is_int(e) for e in hist.get("epoch", []))
            or not isinstance(hist.get("history", {}), dict)
            or not all(isinstance(v, list) and all(is_number(x) for x in v) for v in hist.get("history", {}).values())
            or not isinstance(hist.get("params", {}), dict)):
        fail("field 'history' is malformed")
    if not isinstance(meta.get("rng"), dict):
        fail("field 'rng' must be a bit-generator state")
    try:
        np.random.default_rng(0).bit_generator.state = meta["rng"]
    except Exception as e:  # numpy's state setter raises TypeError/ValueError/KeyError/OverflowError
        fail(f"has an invalid RNG state: {type(e).__name__}: {e}")
    model = meta.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("layers"), list):
        fail("field 'model' must hold an architecture with a 'layers' list")
    for key in ("optimizer", "loss"):
        if not isinstance(meta.get(key), dict) or not isinstance(meta[key].get("name"), str):
            fail(f"field {key!r} must be a config with a 'name'")
    if not isinstance(meta.get("metrics", []), list):
        fail("field 'metrics' must be a list")
    fit = meta.get("fit")
    if (not isinstance(fit, dict) or not is_int(fit.get("batch_size")) or fit["batch_size"] < 1
            or not is_int(fit.get("num_samples")) or fit["num_samples"] < 1
            or not isinstance(fit.get("shuffle"), bool)):
        fail("field 'fit' must hold batch_size, num_samples and shuffle")
    steps = math.ceil(fit["num_samples"] / fit["batch_size"])
    if meta["step"] >= steps:
        fail(f"step {meta['step']} is beyond the {steps} steps of an epoch")

    weights = {}
    for name, a in arrays.items():
        if name.startswith("weights/"):
            if a.dtype.kind != "f":
                fail(f"weight {name!r} has dtype {a.dtype}, not floating point")
            if not np.isfinite(a).all():
                fail(f"weight {name!r} contains NaN or inf")
            weights[name[len("weights/"):]] = a
        elif name == "optimizer/iterations":
            if a.shape != () or a.dtype.kind not in "iu" or int(a) < 0:
                fail("optimizer iterations must be a non-negative integer scalar")
        elif name.startswith("optimizer/"):
            pass  # checked against the weights below
        elif name != "perm":
            fail(f"unexpected entry {name!r}")
    if not weights:
        fail("holds no weights")
    if "optimizer/iterations" not in arrays:
        fail("has no optimizer state")
    for name, a in arrays.items():
        if name.startswith("optimizer/") and name != "optimizer/iterations":
            slot_key = name[len("optimizer/"):].split("/", 1)
            w = weights.get(slot_key[1]) if len(slot_key) == 2 else None
            if w is None or a.shape != w.shape or a.dtype != w.dtype:
                fail(f"optimizer state {name!r} matches no weight of that shape and dtype")
    perm = arrays.get("perm")
    if meta["step"] == 0:
        if perm is not None:
            fail("has a sample order but no step within the epoch")
    else:
        n = fit["num_samples"]
        if perm is None or perm.ndim != 1 or perm.dtype.kind not in "iu" or perm.shape[0] != n:
            fail(f"has no valid sample order for {n} samples")
        seen = np.zeros(n, dtype=bool)
        if perm.min() < 0 or perm.max() >= n:
            fail("sample order holds out-of-range indices")
        seen[perm] = True
        if not seen.all():
            fail("sample order is not a permutation")


def _rename_damaged(path) -> str | None:
    try:
        os.replace(path, path + DAMAGED_SUFFIX)
        return path + DAMAGED_SUFFIX
    except OSError:
        return None


def restore_latest(directory, model, state: TrainState, fit_info: dict | None = None, stream=None):
    """Load the newest valid checkpoint in ``directory`` into ``model`` and ``state``.

    Returns its path, or None if the directory holds no checkpoint. Damaged checkpoints are
    skipped with a warning on ``stream`` (default stderr) and renamed ``*.damaged``; if every
    checkpoint is damaged, raises ModelFileError. A checkpoint of a different run raises
    ValueError (nothing is changed).
    """
    stream = stream if stream is not None else sys.stderr
    damaged = []
    for path in reversed(list_checkpoints(directory)):
        try:
            arrays, meta = read_checkpoint(path)
            _apply(path, arrays, meta, model, state, fit_info, stream)
        except ModelFileError as e:
            moved = _rename_damaged(path)
            stream.write(f"minicnn: warning: checkpoint {path} is damaged and was skipped ({e})"
                         + (f"; renamed it to {os.path.basename(moved)}" if moved else "") + "\n")
            stream.flush()
            damaged.append(path)
            continue
        if damaged:
            stream.write(f"minicnn: warning: resuming from the previous checkpoint, {path}\n")
            stream.flush()
        return path
    if damaged:
        raise ModelFileError(f"no valid checkpoint in {os.fspath(directory)!r}: all {len(damaged)} are "
                             f"damaged (renamed to *{DAMAGED_SUFFIX}); start over without resuming")
    return None


def _apply(path, arrays, meta, model, state, fit_info, stream):
    """Check ``meta`` fits this model and run, then load it. ValueError if it is another run's."""
    saved = meta["model"]
    current = model.get_config()
    if saved["layers"] != current["layers"] or saved.get("dtype") != current["dtype"] \
            or saved.get("input_shape") != current["input_shape"]:
        raise ValueError(f"checkpoint {path!r} was written for a different model (architecture, input "
                         "shape or dtype); resume with the same model or use another checkpoint directory")
    opt, cur_opt = meta["optimizer"], model.optimizer.get_config()
    if opt["name"] != cur_opt["name"] or opt.get("momentum") != cur_opt.get("momentum") \
            or opt.get("centered") != cur_opt.get("centered"):
        raise ValueError(f"checkpoint {path!r} was written with optimizer {opt!r}; this run uses "
                         f"{cur_opt!r}: resume with the same optimizer")
    if fit_info is not None:
        for key, label in (("num_samples", "training samples"), ("batch_size", "batch size"),
                           ("shuffle", "shuffle setting")):
            if meta["fit"][key] != fit_info[key]:
                raise ValueError(f"checkpoint {path!r} was written with {label} {meta['fit'][key]!r}; "
                                 f"this run has {fit_info[key]!r}: resume with the same data and settings")
    if stream is not None:
        for what, a, b in (("optimizer", opt, cur_opt), ("loss", meta["loss"], model.loss.get_config())):
            if a != b:
                stream.write(f"minicnn: warning: checkpoint {path} was written with {what} settings {a}; "
                             f"continuing with {b} (the result will differ from an uninterrupted run)\n")

    weights = {k[len("weights/"):]: v for k, v in arrays.items() if k.startswith("weights/")}
    expected = dict(model.named_weights())
    if set(weights) != set(expected):
        raise ModelFileError(f"checkpoint {path!r}: its weights {sorted(weights)} do not match the "
                             f"model's {sorted(expected)}")
    for k, p in expected.items():
        if weights[k].shape != p.shape or weights[k].dtype != p.dtype:
            raise ModelFileError(f"checkpoint {path!r}: weight {k!r} is {weights[k].shape} "
                                 f"{weights[k].dtype}, expected {p.shape} {p.dtype}")
    opt_state = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    for k in opt_state:
        if k != "iterations" and k.split("/", 1)[0] not in model.optimizer.slot_names:
            raise ModelFileError(f"checkpoint {path!r}: optimizer state {k!r} does not belong to "
                                 f"{model.optimizer.name}")

    for k, p in expected.items():
        p[...] = weights[k]
    model.optimizer.set_state(opt_state)
    model.train_rng.bit_generator.state = meta["rng"]
    state.epoch, state.step = meta["epoch"], meta["step"]
    state.sums = dict(meta["sums"])
    state.perm = arrays.get("perm")
    state.history = History.from_dict(meta["history"])


def model_from_checkpoint(path, model_class=Network):
    """(model, state): a compiled model with the checkpoint's weights and optimizer state, and
    the :class:`TrainState` it records. ModelFileError if the file is damaged or invalid."""
    path = os.fspath(path)
    arrays, meta = read_checkpoint(path)
    n_weights = sum(a.size for k, a in arrays.items() if k.startswith("weights/"))
    model = model_from_config(meta["model"], path, what="checkpoint", max_params=n_weights,
                              model_class=model_class)
    compile_from_config(model, {"optimizer": meta["optimizer"], "loss": meta["loss"],
                                "metrics": meta.get("metrics", [])}, path, what="checkpoint")
    state = TrainState(0, 0, None, {}, History())
    try:
        _apply(path, arrays, meta, model, state, None, None)
    except ValueError as e:  # its own architecture cannot disagree with itself unless tampered with
        raise ModelFileError(str(e)) from None
    return model, state
