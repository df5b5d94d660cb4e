"""``TensorBoard``: event files TensorBoard reads, written with TensorBoard's own event-file
writer and protocol buffers (``pip install tensorboard``; no TensorFlow needed).

Like Keras, scalars go to ``<log_dir>/train`` (``epoch_loss``, ``epoch_accuracy``,
``epoch_learning_rate``) and ``<log_dir>/validation`` (``epoch_loss``, ``epoch_accuracy``).
Every ``histogram_freq`` epochs it also writes, per layer, what Keras 3 no longer can: weight
histograms (``<layer>/<weight>/histogram``, Keras's tag), gradient histograms
(``<layer>/<weight>/gradient``, the last step's gradients of the epoch) and activation histograms
(``<layer>/activation``, the outputs on a fixed batch of up to ``activation_samples`` training
samples, inference mode). ``write_images`` adds the first convolution's filters as one image
(``<layer>/kernel/image``: a grid, one tile per filter, each scaled to its own range).
"""

from __future__ import annotations

import os
import struct
import time
import zlib

import numpy as np

from .base import Callback


def png_bytes(gray: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of a 2-D uint8 array (zlib and struct: no imaging library needed)."""
    h, w = gray.shape
    raw = b"".join(b"\x00" + gray[i].tobytes() for i in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def filter_grid(kernel: np.ndarray, scale: int = 4) -> np.ndarray:
    """(kh, kw, cin, cout) conv kernel -> a uint8 grid image, one tile per output filter (the
    input channels averaged), each tile scaled to its own min..max, ``scale`` pixels per weight."""
    k = kernel.mean(axis=2)  # (kh, kw, cout)
    kh, kw, n = k.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    th, tw = kh * scale, kw * scale
    grid = np.zeros((rows * (th + 1) + 1, cols * (tw + 1) + 1), dtype=np.uint8)
    for i in range(n):
        t = k[:, :, i]
        lo, hi = float(t.min()), float(t.max())
        t = (t - lo) / (hi - lo) if hi > lo else np.zeros_like(t)
        tile = np.kron((t * 255).round().astype(np.uint8), np.ones((scale, scale), dtype=np.uint8))
        r, c = divmod(i, cols)
        grid[1 + r * (th + 1):1 + r * (th + 1) + th, 1 + c * (tw + 1):1 + c * (tw + 1) + tw] = tile
    return grid


class TensorBoard(Callback):
    """Write TensorBoard event files (see the module docstring for the tags)."""

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None, activation_samples=128, bins=30):
        try:
            from tensorboard.compat.proto import event_pb2, summary_pb2
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:
            raise ImportError("the TensorBoard callback writes with TensorBoard's own event-file writer: "
                              "pip install tensorboard (or minicnn[tensorboard])") from None
        if embeddings_freq or profile_batch not in (0, None):
            raise ValueError("TensorBoard embeddings and profiling are not supported by minicnn")
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"update_freq must be 'epoch' or a positive int, got {update_freq!r}")
        self._pb, self._sum, self._writer_cls = event_pb2, summary_pb2, EventFileWriter
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq, self.write_images = int(histogram_freq), bool(write_images)
        self.update_freq, self.activation_samples, self.bins = update_freq, int(activation_samples), int(bins)
        self._writers = {}
        self._sample = None
        self._global_step = 0

    # -- writing ---------------------------------------------------------------------------------
    def _writer(self, run):
        if run not in self._writers:
            self._writers[run] = self._writer_cls(os.path.join(self.log_dir, run))
        return self._writers[run]

    def _emit(self, run, step, values):
        summary = self._sum.Summary(value=values)
        self._writer(run).add_event(self._pb.Event(wall_time=time.time(), step=int(step), summary=summary))

    def _scalar(self, tag, value):
        return self._sum.Summary.Value(tag=tag, simple_value=float(value))

    def _histogram(self, tag, values):
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        v = v[np.isfinite(v)]
        if v.size == 0:
            v = np.zeros(1)
        lo, hi = float(v.min()), float(v.max())
        counts, edges = np.histogram(v, bins=self.bins, range=(lo, hi) if hi > lo else (lo - 0.5, lo + 0.5))
        proto = self._sum.HistogramProto(min=lo, max=hi, num=float(v.size), sum=float(v.sum()),
                                         sum_squares=float(np.dot(v, v)), bucket_limit=edges[1:].tolist(),
                                         bucket=counts.astype(np.float64).tolist())
        return self._sum.Summary.Value(tag=tag, histo=proto)

    def _image(self, tag, gray):
        img = self._sum.Summary.Image(height=gray.shape[0], width=gray.shape[1], colorspace=1,
                                      encoded_image_string=png_bytes(gray))
        return self._sum.Summary.Value(tag=tag, image=img)

    # -- hooks -----------------------------------------------------------------------------------
    def set_data(self, x, y):
        self._sample = x[:self.activation_samples]

    def on_batch_end(self, step, logs):
        self._global_step += 1
        if isinstance(self.update_freq, int) and self._global_step % self.update_freq == 0:
            self._emit("train", self._global_step, [self._scalar(f"batch_{k}", v) for k, v in logs.items()])

    def on_epoch_end(self, epoch, logs):
        train = [self._scalar(f"epoch_{k}", v) for k, v in logs.items() if not k.startswith("val_")]
        if "learning_rate" not in logs and self.model.optimizer is not None:
            train.append(self._scalar("epoch_learning_rate", self.model.optimizer.learning_rate))
        self._emit("train", epoch, train)
        val = [self._scalar(f"epoch_{k[4:]}", v) for k, v in logs.items() if k.startswith("val_")]
        if val:
            self._emit("validation", epoch, val)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._emit("train", epoch, self._histograms())
        if self.write_images:
            self._emit("train", epoch, self._images())
        for w in self._writers.values():
            w.flush()

    def _histograms(self):
        values = []
        model = self.model
        for layer in model.layers:
            for k in layer.weight_names:
                if k in layer.params:
                    values.append(self._histogram(f"{layer.name}/{k}/histogram", layer.params[k]))
                if k in layer.grads:
                    values.append(self._histogram(f"{layer.name}/{k}/gradient", layer.grads[k]))
        if self._sample is not None:
            x = model.check_x(self._sample, "x")
            _, outs = model.forward(x, training=False, record=True)
            for layer, out in zip(model.layers, outs):
                values.append(self._histogram(f"{layer.name}/activation", out))
        return values

    def _images(self):
        for layer in self.model.layers:
            kernel = layer.params.get("kernel")
            if kernel is not None and kernel.ndim == 4:
                return [self._image(f"{layer.name}/kernel/image", filter_grid(kernel))]
        return []

    def on_train_end(self, logs=None):
        for w in self._writers.values():
            w.close()
        self._writers = {}
