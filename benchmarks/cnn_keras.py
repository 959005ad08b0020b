"""weightlab's `--model cnn` as a plain Keras program: the baseline its fused training is measured against.

Run as ``KERAS_BACKEND=jax python benchmarks/cnn_keras.py [EPOCHS]``. The network, data and
compile settings are those of ``weightlab run --model cnn`` (models/cnn.py, written out here in
plain Keras); it prints one JSON line of measurements, as tutorial_keras.py does.
"""

import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
cache = os.path.join(
    os.environ.get("WEIGHTLAB_HOME") or os.path.expanduser("~/.cache/weightlab"), "datasets", "mnist.npz"
)
with np.load(cache) as mnist:
    x_train, y_train, x_test, y_test = (mnist[k] for k in ("x_train", "y_train", "x_test", "y_test"))

keras.utils.set_random_seed(0)
x_train = (x_train.astype("float32") / 255.0).reshape(-1, 28, 28, 1)
x_test = (x_test.astype("float32") / 255.0).reshape(-1, 28, 28, 1)

model = keras.Sequential(
    [
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ]
)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])


class EpochClock(keras.callbacks.Callback):
    seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


start = time.perf_counter()
model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_split=0.1, verbose=2, callbacks=[EpochClock()])
train_seconds = time.perf_counter() - start
test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
print(
    json.dumps(
        {
            "train_seconds": train_seconds,
            "epoch_seconds": EpochClock.seconds,
            "steps": epochs * 1688,
            "test_accuracy": float(test_acc),
        }
    )
)
