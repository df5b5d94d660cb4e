"""The fast backend: numba kernels, register-blocked FMA micro-kernels and in-loop BLAS calls.

This module is the facade the registry loads (``minicnn.kernels.use_backend("numba")``): it
exports the same public names, with the same signatures and return conventions, as
:mod:`minicnn.kernels.numpy_backend` (the contract), plus :func:`threading_info` and numba's
``get_num_threads``/``set_num_threads`` (the pool :mod:`minicnn.kernels.threads` picks for). The
implementation lives in the package :mod:`minicnn.kernels.numba`, one module per seam (its
docstring has the map, the contract and the determinism guarantees): conv2d in ``conv``, dense in
``dense``, max pooling in ``pool``, relu in ``elementwise``, Adam in ``optim``, batch normalisation in
``batchnorm``, depthwise conv2d in ``depthwise``, the zoo's activations (tanh ... PReLU, on the
vectorisable exp/expm1/log1p of ``vmath``) in ``activations``, average and global pooling
and zero padding in ``avgpool``; the process settings and tunables, among them the
``MINICNN_NUMBA_TILES`` switch, in ``config``.

The layout helpers ``pad_nhwc``, ``windows``, ``im2col``, ``col2im`` and ``all_finite`` are the
numpy backend's own (nothing in them to speed up).
"""

from __future__ import annotations

import sys
import types

from .numba import config as _config  # first: it sets the OpenMP policy before numba's pool starts
from .numba import activations as _activations
from .numba.activations import *  # noqa: F401,F403  (its __all__: the element-wise activations)
from .numba.avgpool import (avgpool2d_backward, avgpool2d_forward, global_avgpool2d_backward,
                            global_avgpool2d_forward, global_maxpool2d_backward, global_maxpool2d_forward,
                            zeropad2d_backward, zeropad2d_forward)
from .numba.batchnorm import (batchnorm_backward, batchnorm_forward, batchnorm_train_forward,
                              batchnorm_update_moving)
from .numba.conv import conv2d_backward, conv2d_forward
from .numba.dense import dense_backward, dense_forward
from .numba.depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
from .numba.elementwise import relu_backward, relu_forward
from .numba.info import threading_info
from .numba.optim import adam_update
from .numba.pool import maxpool2d_backward, maxpool2d_forward
from .numpy_backend import all_finite, col2im, im2col, pad_nhwc, windows

# the pool's size, which kernels.threads picks (imported after config, which sets OpenMP's policy)
from numba import get_num_threads, set_num_threads  # noqa: E402,I001

NAME = "numba"

__all__ = ["NAME", "pad_nhwc", "windows", "im2col", "col2im", "conv2d_forward", "conv2d_backward",
           "maxpool2d_forward", "maxpool2d_backward", "relu_forward", "relu_backward", "dense_forward",
           "dense_backward", "all_finite", "adam_update", "threading_info",
           "get_num_threads", "set_num_threads",
           "depthwise_conv2d_backward", "depthwise_conv2d_forward",
           "batchnorm_backward", "batchnorm_forward", "batchnorm_train_forward", "batchnorm_update_moving",
           "avgpool2d_backward", "avgpool2d_forward",
           "global_avgpool2d_backward", "global_avgpool2d_forward", "global_maxpool2d_backward",
           "global_maxpool2d_forward", "zeropad2d_backward", "zeropad2d_forward", *_activations.__all__]


class _Facade(types.ModuleType):
    """Keeps ``numba_backend._TILES``, which ``benchmarks/run.py`` sets, an alias of the tiles
    switch :data:`minicnn.kernels.numba.config.TILES` (reading and assigning it)."""

    @property
    def _TILES(self):
        return _config.TILES

    @_TILES.setter
    def _TILES(self, on):
        _config.TILES = bool(on)


sys.modules[__name__].__class__ = _Facade

