"""A seeded generator of small minicnn architectures covering every layer and option."""

from __future__ import annotations

import numpy as np

from minicnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Softmax
from minicnn import Sequential


def generate(seed: int, dtype="float32") -> Sequential:
    """A random, valid model on (28, 28, 1) -> 10 classes. Seeds 0..7 are used by the tests;
    the first few are fixed to hit the cases that matter (stride 2, 'same' with even kernels,
    pooling after ReLU, dropout, Dense without bias, a Softmax layer)."""
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
