"""A minimal reproduction for Keras: `fit` pays for batch-end callbacks that nobody defined.

    KERAS_BACKEND=jax python scripts/keras_batch_end_dispatch.py

Keras 3's `CallbackList.on_train_batch_end` hands every step's logs to a thread pool (when all
callbacks are async-safe), and that thread turns them into Python numbers (`pythonify_logs`,
which waits for the step and copies its loss to the host), even when no callback overrides a
batch-end hook (here only History and an epoch timer, which have none). The fix upstream:
`_configure_async_dispatch` already inspects each callback's hooks; when none overrides
`on_train_batch_end`/`on_batch_end`, `on_train_batch_end` can return at once.

Prints the seconds per step of a tiny model's `fit` with the dispatch as Keras does it and with
`on_train_batch_end` made a no-op, which is what the fix would give. Nothing of this project
is used.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

STEPS, BATCH = 2000, 32


class EpochSeconds(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.started


def ms_per_step(model: keras.Model, x, y, dispatch_batch_ends: bool) -> float:
    timer = EpochSeconds()
    callbacks = keras.callbacks.CallbackList([timer], model=model, add_history=True,
                                             add_progbar=False)
    if not dispatch_batch_ends:
        callbacks.on_train_batch_end = lambda *args, **kwargs: None
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, shuffle=False, callbacks=callbacks)
    return 1e3 * timer.seconds / STEPS


def main() -> None:
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile("sgd", "mse", jit_compile=True)
    rng = np.random.default_rng(0)
    x = rng.random((STEPS * BATCH, 8), dtype=np.float32)
    y = rng.random((STEPS * BATCH, 1), dtype=np.float32)
    ms_per_step(model, x, y, True)  # compiles
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}")
    for _ in range(3):
        print(f"batch ends dispatched: {ms_per_step(model, x, y, True):.3f} ms/step; "
              f"not dispatched: {ms_per_step(model, x, y, False):.3f} ms/step")


if __name__ == "__main__":
    main()
