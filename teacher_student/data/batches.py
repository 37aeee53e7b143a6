"""Batches for Keras' `fit`, `evaluate` and `predict`, gathered from the decoded image array.

The host's whole job per step: pick the batch's rows (in a seeded order that depends only on
the seed and the epoch, so a resumed run sees the epochs an uninterrupted one would) and copy
them out of memory. Background threads do that a few batches ahead of the step and, on JAX with
an accelerator (`to_device`), also copy them to the device, so the training loop's own thread
only dispatches steps. Augmentation and mixing happen on the accelerator, in the training step
(see augment.py). A `PyDataset`, so every Keras backend takes it; no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import keras
import numpy as np

UNLABELED = -1  # the label of an image without one (distill.unlabeled): no label loss
# The label of an image that only fills a batch (`pad_remainder`): negative, so no loss or
# accuracy counts it, and predictions drop it (outputs/reports.py).
PADDING = -2


class Batches(keras.utils.PyDataset):
    """(uint8 images [B, H, W, C], int32 labels [B]) or, with `class_weights`, also float32
    sample weights [B] (1 for an UNLABELED image). Training batches (`shuffle=True`) drop a
    ragged last batch: a compiled step then keeps one shape, and BatchNorm never sees a batch of
    one. With `pad_remainder`, a ragged last batch is filled up to the batch size with copies
    of its first image labeled PADDING: several replicas need equal shares of every batch, and
    evaluation must not leave images out."""

    def __init__(self, pixels: np.ndarray, rows: Sequence[int], labels: Sequence[int],
                 batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 class_weights: Mapping[int, float] | None = None,
                 drop_remainder: bool | None = None, pad_remainder: bool = False,
                 ahead: int = 2, to_device: bool = False):
        super().__init__()
        self.pixels = pixels
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int32)
        self.class_weights = class_weights
        self.weights = None if class_weights is None else \
            np.asarray([1.0 if y == UNLABELED else class_weights[int(y)] for y in self.labels],
                       dtype=np.float32)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.pad_remainder = pad_remainder
        self.drop_remainder = (shuffle and len(self.rows) >= batch_size and not pad_remainder
                               if drop_remainder is None else drop_remainder)
        self.ahead = ahead
        self.to_device = to_device
        self.epoch = 0
        self._order = self._order_of(0)
        self._threads = ThreadPoolExecutor(max_workers=ahead) if ahead else None
        self._pending: dict[tuple[int, int], Future] = {}

    def __len__(self) -> int:
        whole, ragged = divmod(len(self.rows), self.batch_size)
        return whole if self.drop_remainder else whole + bool(ragged)

    @property
    def images(self) -> int:
        """How many images one epoch yields."""
        return min(len(self) * self.batch_size, len(self.rows))

    def stretched(self, count: int) -> Batches:
        """These batches with `count` images an epoch (each epoch shuffled anew): every image
        as many whole times as fit, then a seeded random choice of them once more. As many
        steps as a larger set of `count` images takes."""
        whole, extra = divmod(count, len(self.rows))
        chosen = np.concatenate([np.tile(np.arange(len(self.rows)), whole),
                                 np.random.default_rng(self.seed).permutation(len(self.rows))
                                 [:extra]])
        return Batches(self.pixels, self.rows[chosen], self.labels[chosen],
                       self.batch_size, shuffle=self.shuffle, seed=self.seed,
                       class_weights=self.class_weights, drop_remainder=self.drop_remainder,
                       pad_remainder=self.pad_remainder, ahead=self.ahead,
                       to_device=self.to_device)

    def set_epoch(self, epoch: int) -> None:
        """The order of `epoch`'s batches; called by the trainer before each epoch."""
        if epoch != self.epoch:
            self.epoch, self._order = epoch, self._order_of(epoch)
            self._pending.clear()

    def __getitem__(self, index: int):
        if self._threads is None:
            return self._batch(self.epoch, index)
        for upcoming in range(index, min(index + self.ahead + 1, len(self))):
            key = (self.epoch, upcoming)
            if key not in self._pending:
                self._pending[key] = self._threads.submit(self._batch, *key)
        return self._pending.pop((self.epoch, index)).result()

    def _order_of(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.rows))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))

    def _batch(self, epoch: int, index: int):
        order = self._order if epoch == self.epoch else self._order_of(epoch)
        chosen = order[index * self.batch_size:(index + 1) * self.batch_size]
        labels = self.labels[chosen]
        weights = None if self.weights is None else self.weights[chosen]
        filling = self.batch_size - len(chosen) if self.pad_remainder else 0
        if filling:
            chosen = np.concatenate([chosen, np.repeat(chosen[:1], filling)])
            labels = np.concatenate([labels, np.full(filling, PADDING, dtype=np.int32)])
            if weights is not None:
                weights = np.concatenate([weights, np.zeros(filling, dtype=np.float32)])
        batch = (self.pixels[self.rows[chosen]], labels)
        if weights is not None:
            batch += (weights,)
        if self.to_device:
            import jax

            return jax.device_put(batch)
        return batch


class StackedPixels:
    """Two image arrays read as one, the rows of `second` after those of `first`, without
    copying either (the labeled images' cache and the unlabeled images' one)."""

    def __init__(self, first: np.ndarray, second: np.ndarray):
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows)
        images = np.empty((len(rows), *self.first.shape[1:]), dtype=self.first.dtype)
        in_first = rows < len(self.first)
        images[in_first] = self.first[rows[in_first]]
        images[~in_first] = self.second[rows[~in_first] - len(self.first)]
        return images


class FollowEpochs(keras.callbacks.Callback):
    """Tells training batches which epoch begins, so their order is that epoch's."""

    def __init__(self, batches: Batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)

