"""Early stopping that never leaves a learning rate undecayed.

A step stopped on a plateau in the middle of its cosine schedule keeps most of its peak learning
rate, and its best weights are those of a model that never annealed: a comparison of a stopped
student with one that ran its whole decay is then unfair to the first. So when validation stalls,
the schedule skips to its last `patience` epochs (their steps are the decay's end) and the step
ends after them. The skip moves the optimizer's step counter, which every resume point keeps, so
a run killed during the decay resumes into the same decay.
"""

from __future__ import annotations

import math

import keras

from teacher_student.words import counted

MONITOR = "val_accuracy"


def cosine_schedule(optimizer) -> keras.optimizers.schedules.CosineDecay | None:
    """The cosine schedule that drives `optimizer` (or the one inside its loss scaling)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    schedule = getattr(inner, "_learning_rate", None)  # the schedule itself, not its value
    return schedule if isinstance(schedule, keras.optimizers.schedules.CosineDecay) else None


class DecayOnPlateau(keras.callbacks.Callback):
    """After `patience` epochs without a better validation accuracy: with a cosine schedule,
    skip to its last `patience` epochs and stop after them; with a constant rate, stop."""

    def __init__(self, patience: int, name: str = "step"):
        super().__init__()
        self.patience, self.name = patience, name
        self.best, self.waited = -math.inf, 0
        self.stop_after: int | None = None  # the epoch (1-based) after which the step ends

    def on_epoch_begin(self, epoch, logs=None):
        if self.stop_after is None and epoch and self._skipped(epoch):
            # Resumed inside a skipped decay: it ends where it would have.
            left = self._decay_steps() - int(self.model.optimizer.iterations.numpy())
            self.stop_after = epoch + math.ceil(left / self.params["steps"])

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if self.stop_after is not None:
            self.model.stop_training = done >= self.stop_after
            return
        score = (logs or {}).get(MONITOR, -math.inf)
        if score > self.best:
            self.best, self.waited = score, 0
            return
        self.waited += 1
        if self.waited < self.patience:
            return
        if cosine_schedule(self.model.optimizer) is None:
            self.model.stop_training = True
        elif self.params["epochs"] - done > self.patience:  # else the decay is under way
            self._skip_to_the_decay(done)

    def _skip_to_the_decay(self, done: int) -> None:
        steps = self.params["steps"]
        self.model.optimizer.iterations.assign(self._decay_steps() - self.patience * steps)
        self.stop_after = done + self.patience
        print(f"  {self.name}: no better validation accuracy for "
              f"{counted(self.patience, 'epoch')} after epoch {done}: the learning rate decays "
              f"over epochs {done + 1}-{self.stop_after}, "
              "then the step ends")

    def _skipped(self, epoch: int) -> bool:
        """Whether the step counter is ahead of the epochs run: a skip happened before."""
        if cosine_schedule(self.model.optimizer) is None:
            return False
        return int(self.model.optimizer.iterations.numpy()) > epoch * self.params["steps"]

    def _decay_steps(self) -> int:
        return int(cosine_schedule(self.model.optimizer).decay_steps)
