"""The tutorial's script as a plain Keras program, the baseline weightlab is measured against.

Run as ``KERAS_BACKEND=tensorflow python benchmarks/tutorial_keras.py [SEED] [HIDDEN]``. It is
the tutorial's code, with three changes only: MNIST comes from weightlab's verified cache (the same
arrays `keras.datasets.mnist.load_data()` returns), it prints one JSON line of measurements
(timing each epoch with a callback that only reads the clock), and the hidden layer's width (64,
the tutorial's, by default) can be given, for the accelerator bench's wide network.
"""

import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras

cache = os.path.join(
    os.environ.get("WEIGHTLAB_HOME") or os.path.expanduser("~/.cache/weightlab"), "datasets", "mnist.npz"
)
with np.load(cache) as mnist:
    x_train, y_train, x_test, y_test = (mnist[k] for k in ("x_train", "y_train", "x_test", "y_test"))

keras.utils.set_random_seed(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
x_train = x_train.astype("float32") / 255.0
x_test = x_test.astype("float32") / 255.0
x_train = x_train.reshape(-1, 28 * 28)
x_test = x_test.reshape(-1, 28 * 28)

model = keras.Sequential(
    [
        keras.layers.Dense(int(sys.argv[2]) if len(sys.argv) > 2 else 64, activation="relu", input_shape=(28 * 28,)),
        keras.layers.Dense(10, activation="softmax"),
    ]
)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
print("Weights before training:", file=sys.stderr)
for layer in model.layers:
    print(layer.get_weights()[0].shape, "weights sample:", layer.get_weights()[0][0][:5], file=sys.stderr)


class EpochClock(keras.callbacks.Callback):
    seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


start = time.perf_counter()
history = model.fit(
    x_train, y_train, epochs=5, batch_size=32, validation_split=0.1, verbose=2, callbacks=[EpochClock()]
)
train_seconds = time.perf_counter() - start

test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
print(
    json.dumps(
        {
            "train_seconds": train_seconds,
            "epoch_seconds": EpochClock.seconds,
            "steps": 5 * 1688,
            "test_accuracy": float(test_acc),
        }
    )
)
