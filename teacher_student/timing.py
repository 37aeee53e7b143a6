"""Timing calls and training steps: what latency columns, export checks, the preflight and the
benchmarks all measure the same way."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import keras
import numpy as np


def time_calls(call: Callable[[], object], repeats: int, warmup: int = 0) -> list[float]:
    """Seconds taken by each of `repeats` calls of `call` (which must wait for its own work),
    after `warmup` untimed calls (compiling, allocating)."""
    for _ in range(warmup):
        call()
    durations = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        call()
        durations.append(time.perf_counter() - start)
    return durations


def median_ms(call: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of one call: robust to one slow call on a shared machine."""
    return 1000.0 * float(np.median(time_calls(call, repeats, warmup)))


def rate(items: int, durations: Sequence[float]) -> float:
    """Items per second over the median duration."""
    return items / float(np.median(durations))


class EpochTimer(keras.callbacks.Callback):
    """Seconds per epoch of a `fit`. Keras syncs the state and reads the metrics before
    `on_epoch_end`, so each duration includes the device work of its epoch."""

    def __init__(self):
        super().__init__()
        self.durations: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.durations.append(time.perf_counter() - self._start)


def fit_step_seconds(model: keras.Model, batch: tuple, steps: int,
                     bound: float = float("inf")) -> float:
    """Seconds per training step of a compiled `model` as epochs run it: through `fit`, which
    keeps the device busy while Python moves on (a single `train_on_batch` waits for its
    result, and on a fast GPU that wait doubles a short step). Two fits of `steps` and
    `2 * steps` steps, so that fit's start-up cancels out; on a busy machine the difference can
    be noise, and the longer fit's average (start-up included) or `bound` stands in."""
    seconds = []
    for count in (steps, 2 * steps):
        timer = EpochTimer()
        model.fit(Repeated(batch, count), epochs=1, verbose=0, shuffle=False,
                  callbacks=[timer])
        seconds.append(timer.durations[0])
    difference = (seconds[1] - seconds[0]) / steps
    average = seconds[1] / (2 * steps)
    return difference if average / 2 <= difference <= average else min(average, bound)


class Repeated(keras.utils.PyDataset):
    """One batch, `count` times."""

    def __init__(self, batch: tuple, count: int):
        super().__init__()
        self.batch, self.count = batch, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple:
        return self.batch
