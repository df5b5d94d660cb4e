"""MNIST, Fashion-MNIST and CIFAR-10 as Keras-shaped ``uint8`` arrays, found locally or downloaded.

Every loader returns ``(x_train, y_train), (x_test, y_test)``:

===============  ========================  ========================  ==========
dataset          x_train                   x_test                    y (N,)
===============  ========================  ========================  ==========
MNIST, Fashion   (60000, 28, 28) uint8     (10000, 28, 28) uint8     uint8 0..9
CIFAR-10         (50000, 32, 32, 3) uint8  (10000, 32, 32, 3) uint8  uint8 0..9
===============  ========================  ========================  ==========

Where the files are looked for, in this order (the first complete set found is used)
-------------------------------------------------------------------------------------
1. The explicit ``path`` argument: a directory holding the files (looked in through a
   subdirectory named after the dataset first, then directly), or a file: an ``mnist.npz``-style
   archive for MNIST/Fashion-MNIST, ``cifar-10-binary.tar.gz`` for CIFAR-10. When ``path`` is given
   nothing else is searched and nothing is downloaded: a wrong path is an error, not a fallback.
2. ``$MINICNN_DATA_DIR``: its dataset subdirectory (``mnist/`` or ``MNIST/``; ``fashion_mnist/``,
   ``fashion-mnist/`` or ``FashionMNIST/``; ``cifar10/`` or ``cifar-10/``), then the directory
   itself. Subdirectories come first because MNIST and Fashion-MNIST use the same file names.
3. Known caches of other tools: Keras (``$KERAS_HOME/datasets`` or ``~/.keras/datasets``:
   ``mnist.npz``, ``fashion-mnist/``), torchvision's layout under ``~/data`` and ``./data``
   (``MNIST/raw``, ``FashionMNIST/raw``; ``cifar-10-batches-bin`` for CIFAR-10), and system
   packages under ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist`` installs
   ``/usr/share/datasets/fashion-mnist``).
4. minicnn's own cache: ``$MINICNN_CACHE_DIR/<dataset>``, else ``$XDG_CACHE_HOME/minicnn/<dataset>``,
   else ``~/.cache/minicnn/<dataset>``.
5. Download into that cache, only if ``download=True`` and ``$MINICNN_OFFLINE`` is not ``1``/``true``:
   https only, TLS verified, 30 s timeout, mirrors in order; the SHA-256 is checked before the file
   is renamed into place, so the cache never holds a partial or unverified file.
6. Otherwise one :class:`~minicnn.errors.DatasetError` lists every place searched and what to set.

Formats and checks
------------------
* IDX (``train-images-idx3-ubyte`` etc., raw or gzip — recognised by its magic bytes, not its name;
  the dotted ``train-images.idx3-ubyte`` spelling is accepted too): magic, dims, exact data length,
  image/label counts and label range are always checked. For MNIST and Fashion-MNIST files of the
  official size the SHA-256 of the *decompressed* content is checked as well (mirrors recompress the
  archives, so archive bytes are never compared).
* Keras-style ``.npz`` with ``x_train, y_train, x_test, y_test``: read member by member with
  :mod:`zipfile` and :mod:`numpy.lib.format`; dtype and shape are checked from each header before
  anything is allocated, and nothing is ever unpickled (object arrays are refused). Structure
  checks only: no hash of these archives' content is published.
* CIFAR-10 *binary* version only (records of 1 label byte + 3072 pixel bytes, R, G, B planes of
  32x32 each), from ``cifar-10-batches-bin/*.bin`` or read straight out of the official
  ``cifar-10-binary.tar.gz`` (regular members with the expected names only; nothing is extracted).
  The pickle ("python") version is never read.

Every array is read straight into its final buffer, so a loaded dataset costs one copy of RAM.
Any damage surfaces as a :class:`~minicnn.errors.DatasetError` naming the file.

Modules
-------
:mod:`.idx` IDX files and the official checksums; :mod:`.keras_npz` Keras ``mnist.npz``;
:mod:`.cifar` CIFAR-10 batches and tarball; :mod:`.locate` the search order and the not-found
error; :mod:`.download` mirrors, checksums and atomic writes into the cache; :mod:`.loaders` the
``load*`` functions; :mod:`.transforms` :func:`to_float_nhwc` and :func:`one_hot`;
:mod:`.common` the checks the readers share.
"""

from .cifar import read_cifar_batch
from .idx import read_idx
from .keras_npz import read_keras_npz
from .loaders import load, load_cifar10, load_fashion_mnist, load_mnist
from .transforms import one_hot, to_float_nhwc

__all__ = ["load", "load_mnist", "load_fashion_mnist", "load_cifar10", "read_idx", "read_cifar_batch",
           "read_keras_npz", "to_float_nhwc", "one_hot"]
