"""Named architectures: the CNNs of the textbooks and of Keras's examples, each with its source.

Every preset builds for any image shape (MNIST and Fashion-MNIST's 28x28x1, CIFAR-10's 32x32x3)
and number of classes; :func:`build_preset` returns it built and uncompiled. Where a source
network is larger than a CPU tool wants, the preset keeps its structure and says what it scaled.
"""

from __future__ import annotations

from . import layers as L
from .sequential import Sequential


def seed(num_classes):
    """The notebook this project starts from (the *seed* model): Conv2D(32, 3x3, relu) ->
    Conv2D(64, 3x3, relu) -> Flatten -> Dense(128, relu) -> Dense(10, softmax); trained there
    with Adam, batch 100, 10 epochs to 98.86% on MNIST. 4,738,826 parameters on 28x28x1."""
    return [L.Conv2D(32, 3, activation="relu"), L.Conv2D(64, 3, activation="relu"), L.Flatten(),
            L.Dense(128, activation="relu"), L.Dense(num_classes, activation="softmax")]


def pooled(num_classes):
    """Keras's classic MNIST convnet (keras-team/keras ``examples/mnist_cnn.py``, Keras 2): the
    seed model with MaxPooling2D(2) and Dropout(0.25) after the convolutions and Dropout(0.5)
    after Dense(128)."""
    return [L.Conv2D(32, 3, activation="relu"), L.Conv2D(64, 3, activation="relu"), L.MaxPool2D(2),
            L.Dropout(0.25), L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(0.5),
            L.Dense(num_classes, activation="softmax")]


def lenet5(num_classes):
    """LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to document
    recognition"): C1 6 maps 5x5, S2 average pooling, C3 16 maps 5x5, S4 average pooling, C5/F6
    fully connected 120 and 84 units, tanh throughout, as it is usually rebuilt in Keras. The
    first convolution pads 'same' so that 28x28 MNIST digits get the 32x32 field the paper
    padded its digits to; the partial C3 connection table and the RBF output layer are replaced
    by full connections and softmax, as in the Keras rebuilds."""
    return [L.Conv2D(6, 5, padding="same", activation="tanh"), L.AveragePooling2D(2),
            L.Conv2D(16, 5, activation="tanh"), L.AveragePooling2D(2), L.Flatten(),
            L.Dense(120, activation="tanh"), L.Dense(84, activation="tanh"),
            L.Dense(num_classes, activation="softmax")]


def cifar_cnn(num_classes):
    """Keras's classic CIFAR-10 convnet (keras-team/keras ``examples/cifar10_cnn.py``, Keras 2):
    two blocks of Conv2D(32|64, 3x3, 'same' then 'valid', relu) -> MaxPooling2D(2) ->
    Dropout(0.25), then Flatten -> Dense(512, relu) -> Dropout(0.5) -> Dense(10, softmax).
    (The example trained it with RMSprop(1e-4); ``minicnn train`` uses its --optimizer.)"""
    return [L.Conv2D(32, 3, padding="same", activation="relu"), L.Conv2D(32, 3, activation="relu"),
            L.MaxPool2D(2), L.Dropout(0.25),
            L.Conv2D(64, 3, padding="same", activation="relu"), L.Conv2D(64, 3, activation="relu"),
            L.MaxPool2D(2), L.Dropout(0.25), L.Flatten(), L.Dense(512, activation="relu"),
            L.Dropout(0.5), L.Dense(num_classes, activation="softmax")]


def _conv_bn_relu(filters, **conv):
    # the bias is BatchNormalization's beta: a conv bias before it would be redundant
    return [L.Conv2D(filters, 3, padding="same", use_bias=False, **conv), L.BatchNormalization(), L.ReLU()]


def vgg_bn(num_classes):
    """A small VGG-style network with BatchNormalization (Simonyan & Zisserman 2015, "Very deep
    convolutional networks for large-scale image recognition", with Ioffe & Szegedy 2015's
    batch normalisation after every convolution, as in the common CIFAR VGG-BN variants), scaled
    to two blocks: [Conv2D(32, 3x3) -> BN -> ReLU] x 2 -> MaxPooling2D(2), the same with 64
    filters, then Flatten -> Dense(128) -> BN -> ReLU -> Dropout(0.5) -> Dense(10, softmax)."""
    return [*_conv_bn_relu(32), *_conv_bn_relu(32), L.MaxPool2D(2),
            *_conv_bn_relu(64), *_conv_bn_relu(64), L.MaxPool2D(2), L.Flatten(),
            L.Dense(128, use_bias=False), L.BatchNormalization(), L.ReLU(), L.Dropout(0.5),
            L.Dense(num_classes, activation="softmax")]


def allconv(num_classes):
    """The all-convolutional net (Springenberg, Dosovitskiy, Brox, Riedmiller 2015, "Striving for
    simplicity: the all convolutional net", model All-CNN-C) at a quarter of its widths (96/192
    -> 32/64 filters): max pooling replaced by stride-2 convolutions, no Dense hidden layer, a
    1x1 convolution to one map per class and global average pooling into the softmax."""
    return [L.Conv2D(32, 3, padding="same", activation="relu"),
            L.Conv2D(32, 3, padding="same", activation="relu"),
            L.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            L.Conv2D(64, 3, padding="same", activation="relu"),
            L.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
            L.Conv2D(64, 1, activation="relu"), L.Conv2D(num_classes, 1),
            L.GlobalAveragePooling2D(), L.Activation("softmax")]


def _dw_block(filters, strides=1):
    return [L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False), L.BatchNormalization(),
            L.ReLU(), L.Conv2D(filters, 1, use_bias=False), L.BatchNormalization(), L.ReLU()]


def mobile(num_classes):
    """MobileNet-style depthwise-separable blocks (Howard et al. 2017, "MobileNets: efficient
    convolutional neural networks for mobile vision applications"), scaled to four blocks: a
    stride-2 Conv2D(16, 3x3) -> BN -> ReLU stem, then [DepthwiseConv2D(3x3) -> BN -> ReLU ->
    Conv2D(1x1) -> BN -> ReLU] with 32, 64 (stride 2), 64 filters, a SeparableConv2D(128, 3x3,
    relu), global average pooling and Dense(10, softmax)."""
    return [L.Conv2D(16, 3, strides=2, padding="same", use_bias=False), L.BatchNormalization(), L.ReLU(),
            *_dw_block(32), *_dw_block(64, strides=2), *_dw_block(64),
            L.SeparableConv2D(128, 3, padding="same", activation="relu"),
            L.GlobalAveragePooling2D(), L.Dense(num_classes, activation="softmax")]


#: name -> builder (its docstring states the source); the order `minicnn train --help` lists them
BUILDERS = {"lenet5": lenet5, "seed": seed, "pooled": pooled, "cifar_cnn": cifar_cnn, "vgg_bn": vgg_bn,
            "allconv": allconv, "mobile": mobile}
PRESETS = tuple(BUILDERS)


def describe(name: str) -> str:
    """The first sentence of a preset's docstring: what it is and where it comes from."""
    doc = " ".join((BUILDERS[name].__doc__ or "").split())
    return doc.split(": ")[0] if ": " in doc[:120] else doc.split(". ")[0]


def build_preset(name: str, input_shape=(28, 28, 1), num_classes=10, dtype="float32", seed=None) -> Sequential:
    """An uncompiled, built model of the named architecture."""
    if name not in BUILDERS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    model = Sequential(BUILDERS[name](num_classes), name=name, input_shape=input_shape, dtype=dtype, seed=seed)
    model.build()
    return model
