"""Timing calls: what latency columns, export checks and benchmarks all measure the same way."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

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
