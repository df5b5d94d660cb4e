"""keras.io-style code (its MNIST convnet, on a small synthetic set), written once and run with
either ``keras`` module: tensorflow.keras or minicnn.keras. ``run(keras, workdir)`` returns what the
comparison looks at."""

import os

import numpy as np


def run(keras, workdir, epochs=1):
    layers = keras.layers
    num_classes = 10
    input_shape = (28, 28, 1)
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, size=(256, 28, 28), dtype=np.uint8)
    y_train = rng.integers(0, 10, size=256, dtype=np.uint8)
    x_train = x_train.astype("float32") / 255
    x_train = np.expand_dims(x_train, -1)
    y_train = keras.utils.to_categorical(y_train, num_classes)

    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ]
    )
    lines = []
    model.summary(print_fn=lambda text, *args, **kwargs: lines.append(text))

    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=128, epochs=epochs, validation_split=0.1, verbose=0)
    score = model.evaluate(x_train[:64], y_train[:64], verbose=0)
    model.save(os.path.join(workdir, "model.keras"))
    model.save_weights(os.path.join(workdir, "model.weights.h5"))
    return {"summary": "\n".join(lines), "history": history, "score": score, "model": model,
            "y_shape": y_train.shape, "y_dtype": y_train.dtype}
