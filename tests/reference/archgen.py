"""A seeded generator of small minicnn architectures covering every layer and option."""

from __future__ import annotations

import numpy as np

from minicnn import Sequential
from minicnn.layers import (ELU, Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense, DepthwiseConv2D,
                            Dropout, Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D, LeakyReLU, MaxPool2D, PReLU,
                            ReLU, Rescaling, Reshape, SeparableConv2D, Softmax, ZeroPadding2D)
from minicnn.regularizers import L1, L2, L1L2

#: seeds the tests run: 0-3 and 8-13 are fixed architectures, 4-7 random ones
SEEDS = tuple(range(14))


def generate(seed: int, dtype="float32") -> Sequential:
    """A random, valid model on (28, 28, 1) -> 10 classes (the tests run :data:`SEEDS`). Some are
    fixed to hit the cases that matter: stride 2, 'same' with even kernels, pooling after ReLU,
    dropout, Dense without bias, a Softmax layer (0-3); the zoo (8-11): dilation, BatchNorm (in
    training mode in a train step, inference mode in predict), stride-2 'same' average pooling,
    depthwise and separable convolutions, global pooling, padding, reshaping, rescaling; every
    activation and the regularizers (12-13)."""
    rng = np.random.default_rng(seed)
    layers = []
    fixed = {
        0: [Conv2D(4, 4, strides=2, padding="same", activation="relu"), MaxPool2D(2), Dropout(0.5), Flatten(),
            Dense(10, use_bias=False, activation="softmax")],
        1: [Conv2D(6, (2, 3), padding="same", activation="relu"), MaxPool2D(3, strides=2, padding="same"),
            Conv2D(5, 2, strides=(2, 1), use_bias=False), ReLU(), Flatten(), Dense(12, activation="relu"),
            Dropout(0.25), Dense(10), Softmax()],
        2: [Conv2D(3, 5, strides=3, activation="relu"), MaxPool2D(2, strides=1), Flatten(), Dense(10)],
        3: [MaxPool2D(2, padding="same"), Conv2D(8, 3, activation="relu"), MaxPool2D((2, 3), strides=(2, 2)),
            Flatten(), Dense(16, use_bias=False), ReLU(), Dense(10, activation="softmax")],
        8: [Conv2D(4, 3, dilation_rate=2, padding="same", activation="relu"), BatchNormalization(),
            AveragePooling2D(3, strides=2, padding="same"), Flatten(), Dense(10, activation="softmax")],
        9: [Rescaling(0.5, offset=-0.25), DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same",
                                                           activation="relu"),
            BatchNormalization(), Conv2D(6, 1), ReLU(), GlobalAveragePooling2D(), Dense(10, activation="softmax")],
        10: [ZeroPadding2D(((1, 0), (2, 1))), SeparableConv2D(5, 3, strides=2, activation="relu"), MaxPool2D(2),
             GlobalMaxPooling2D(), Dense(10), Activation("softmax")],
        11: [Conv2D(4, 5, strides=2, activation="relu"), Reshape((24, 24, 1)), AveragePooling2D(2), Flatten(),
             BatchNormalization(), Dense(10, activation="softmax")],
        12: [Conv2D(4, 5, activation="tanh", kernel_regularizer=L2(1e-3)), AveragePooling2D(2),
             Conv2D(6, 3, activation="elu", bias_regularizer=L1(1e-3)), LeakyReLU(), MaxPool2D(2), Flatten(),
             Dense(12, activation="gelu", kernel_regularizer=L1L2(1e-4, 1e-3)), PReLU(),
             Dense(10, activation="softmax")],
        13: [Conv2D(4, 3, strides=2, activation="silu"), Activation("sigmoid"), Conv2D(5, 3, activation="softplus"),
             ELU(alpha=0.5), GlobalAveragePooling2D(), Dense(8, activation="selu"), ReLU(max_value=6.0),
             Dense(10, activation="sigmoid")],
    }
    if seed in fixed:
        layers = fixed[seed]
    else:
        size = 28
        for _ in range(rng.integers(1, 4)):
            k = int(rng.integers(1, 5))
            s = int(rng.integers(1, 3))
            pad = str(rng.choice(["valid", "same"]))
            if pad == "valid" and size < k:
                pad = "same"
            layers.append(Conv2D(int(rng.integers(2, 7)), k, strides=s, padding=pad,
                                 activation=rng.choice(["relu", None]), use_bias=bool(rng.integers(0, 2))))
            size = -(-size // s) if pad == "same" else (size - k) // s + 1
            if rng.random() < 0.5 and size >= 2:
                p = int(rng.integers(2, 4))
                ppad = "same" if size < p else str(rng.choice(["valid", "same"]))
                layers.append(MaxPool2D(p, strides=int(rng.integers(1, p + 1)), padding=ppad))
                st = layers[-1].strides[0]
                size = -(-size // st) if ppad == "same" else (size - p) // st + 1
            if rng.random() < 0.3:
                layers.append(ReLU())
            if rng.random() < 0.3:
                layers.append(Dropout(float(rng.choice([0.1, 0.5]))))
        layers.append(Flatten())
        if rng.random() < 0.6:
            layers.append(Dense(int(rng.integers(4, 20)), activation="relu", use_bias=bool(rng.integers(0, 2))))
        layers.append(Dense(10, activation="softmax"))
    model = Sequential(layers, name=f"gen{seed}", input_shape=(28, 28, 1), dtype=dtype, seed=seed)
    model.build()
    return model
