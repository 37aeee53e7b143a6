"""The real batches the preflight takes."""

from __future__ import annotations

import keras


class Batches:
    """The first batch of each split, drawn once; on JAX also the last of validation and test
    when it is smaller: each batch shape is a program of its own, and the run after the
    preflight finds every one of them in the compilation cache (run/compile_cache.py). TensorFlow
    keeps nothing for the run, so there it would be compiling for nothing."""

    def __init__(self, train, val, test):
        self.train = _first(train)
        self.val = _first(val)
        first_test = _first(test)
        self.test_images = first_test[0]
        kept = keras.backend.backend() == "jax"
        self.val_last = _smaller_last(val, self.val) if kept else []
        self.test_last_images = [last[0] for last in _smaller_last(test, first_test)] \
            if kept else []


def _first(batches) -> tuple:
    batch = batches[0] if hasattr(batches, "__getitem__") else next(iter(batches))
    return tuple(batch)


def _smaller_last(batches, first: tuple) -> list[tuple]:
    """[the last batch] when it is smaller than `first`, else []."""
    if not (hasattr(batches, "__getitem__") and hasattr(batches, "__len__")) or len(batches) < 2:
        return []
    last = tuple(batches[len(batches) - 1])
    return [last] if len(last[0]) != len(first[0]) else []
