"""``keras.datasets``: mnist, fashion_mnist and cifar10 through minicnn's loaders (the same search
order, checks and errors: see :mod:`minicnn.datasets`)."""

from ..unsupported import missing_names
from . import cifar10, fashion_mnist, mnist

__all__ = ["mnist", "fashion_mnist", "cifar10"]
__getattr__ = missing_names(__name__, __all__, {"cifar100": "only CIFAR-10", "imdb": "minicnn is a CNN library",
                                                "reuters": "minicnn is a CNN library"})
