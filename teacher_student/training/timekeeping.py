"""The plan's clock: progress after every epoch, `status.json`, and the time budget.

The plan is every step of the run in order (training/steps/: the teacher's phases, the
distillation, the baseline) with its label and epochs. After each epoch (after Keras' own line
of it) one line says where the run is (step k of n, epoch, overall share of the plan's epochs,
time left) and `RUN/status.json` holds the same for a notebook cell or a person, with the job's
`state` (running, done, stopped for time, interrupted, failed). The time left is the current
step's recent epochs (not its first in this process, which compiles) times its epochs left,
and each later step's epochs at the preflight's measurement of it, scaled by how far this
step's epochs are from the preflight's measurement of them, plus what compiling it costs. With
a time budget, the run stops after the epoch after which the next one would not fit (the
longest epoch seen so far, compiling included, is the estimate), with everything saved;
rerunning the same command continues.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import keras

from teacher_student import atomic
from teacher_student.errors import TimeBudgetReached

if TYPE_CHECKING:
    from teacher_student.training.steps import Step


def format_duration(seconds: float) -> str:
    """`42s`, `17m` or `3h05m`."""
    if seconds < 60:
        return f"{max(seconds, 0):.0f}s"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


@dataclass
class Timekeeper:
    plan: Sequence[Step]  # every step of the run, in order
    status_file: Path
    budget_s: float | None = None
    started: float = field(default_factory=time.monotonic)  # the job's start
    epoch_seconds: list[float] = field(default_factory=list)  # this process's epochs
    # A step's first epoch in this process, compiling included, as the preflight measured it.
    expected: dict[str, float] = field(default_factory=dict)
    # A step's later epochs, as the preflight measured them.
    expected_epoch: dict[str, float] = field(default_factory=dict)
    step_seconds: dict[str, list[float]] = field(default_factory=dict)  # this process's
    status: dict = field(default_factory=dict)  # what status.json says

    @contextlib.contextmanager
    def tracking(self) -> Iterator[None]:
        """status.json's `state` while the job's body runs: running, then done, stopped for
        time, interrupted or failed (with the error), so that whoever polls it knows the run
        has ended and how."""
        self.write_state("running")
        try:
            yield
        except TimeBudgetReached:
            self.write_state("stopped for time")
            raise
        except KeyboardInterrupt:
            self.write_state("interrupted")
            raise
        except BaseException as err:
            self.write_state("failed", f"{type(err).__name__}: {err}"[:500])
            raise
        self.write_state("done")

    def write_state(self, state: str, error: str = "") -> None:
        self.status = {"state": state, **{k: v for k, v in self.status.items()
                                          if k not in ("state", "error", "updated")},
                       **({"error": error} if error else {}),
                       "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic.write_json(self.status_file, self.status)

    def remaining_s(self) -> float | None:
        return None if self.budget_s is None else self.budget_s - (time.monotonic() - self.started)

    def expect(self, step_name: str, seconds: float, epoch_s: float | None = None) -> None:
        """The preflight's measurement of a step: its first epoch (`seconds`, compiling
        included) and, when known, each later one (`epoch_s`)."""
        self.expected[step_name] = seconds
        if epoch_s:
            self.expected_epoch[step_name] = epoch_s

    def check_room(self, step_name: str) -> None:
        """Before a step starts: stop if an epoch of it would not fit in the budget. Before
        this process has timed an epoch, the estimate is the preflight's, measured on this
        machine (without a preflight, the first epoch is not checked)."""
        remaining = self.remaining_s()
        estimate = max(self.epoch_seconds) if self.epoch_seconds else \
            self.expected.get(step_name)
        if remaining is not None and estimate is not None and remaining < estimate:
            raise TimeBudgetReached(self._stop_message(f"before {self._label(step_name)}"))

    def watch(self, step_name: str) -> keras.callbacks.Callback:
        """The callback for the step `step_name`; it must come after the checkpoint
        callback, so that an epoch is saved before the budget stops the run."""
        return _EpochClock(self, step_name)

    def epoch_done(self, step_name: str, epoch: int, seconds: float) -> None:
        self.epoch_seconds.append(seconds)
        self.step_seconds.setdefault(step_name, []).append(seconds)
        index = [step.name for step in self.plan].index(step_name)
        step_epochs = self.plan[index].epochs
        done = sum(step.epochs for step in self.plan[:index]) + epoch
        total = sum(step.epochs for step in self.plan)
        left = self.seconds_left(index, epoch)
        status = {"state": "running", "step": self._label(step_name), "step_number": index + 1,
                  "steps": len(self.plan), "epoch": epoch, "epochs": step_epochs,
                  "overall": round(done / total, 4), "seconds_left_estimate": round(left),
                  "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
        remaining = self.remaining_s()
        if remaining is not None:
            status["budget_seconds_left"] = round(remaining)
        self.status = status
        atomic.write_json(self.status_file, status)
        print(f"[{index + 1}/{len(self.plan)} {self._label(step_name)}] epoch "
              f"{epoch}/{step_epochs}"
              f" | plan {done / total:.0%} | about {format_duration(left)} left"
              + (f" | budget {format_duration(remaining)} left" if remaining is not None else ""))
        if (remaining is not None and epoch < step_epochs
                and remaining < max(self.epoch_seconds)):
            raise TimeBudgetReached(self._stop_message(f"after {self._label(step_name)} epoch "
                                                       f"{epoch}/{step_epochs}"))

    def seconds_left(self, index: int, epoch: int) -> float:
        """The plan's time left after `epoch` of its step `index` (see the module's doc)."""
        step = self.plan[index]
        per_epoch = self.epoch_estimate(step.name)
        measured = self.expected_epoch.get(step.name)
        scale = per_epoch / measured if measured else None
        left = per_epoch * max(step.epochs - epoch, 0)
        for later in self.plan[index + 1:]:
            expected = self.expected_epoch.get(later.name)
            left += later.epochs * (expected * scale if expected and scale else per_epoch)
            if later.epochs and expected and later.name in self.expected:
                # Its first epoch compiles too: what that adds, as the preflight measured it.
                left += max(self.expected[later.name] - expected, 0.0)
        return left

    def epoch_estimate(self, step_name: str, recent: int = 3) -> float:
        """Seconds per epoch of a step: the mean of its last `recent` epochs in this process
        but the first (which compiles); after the first alone, the preflight's measurement of a
        later epoch, or without one, the first epoch."""
        seconds = self.step_seconds.get(step_name, [])
        if len(seconds) > 1:
            steady = seconds[1:][-recent:]
            return sum(steady) / len(steady)
        return self.expected_epoch.get(step_name) or (seconds[0] if seconds else 0.0)

    def _label(self, step_name: str) -> str:
        return next(step.label for step in self.plan if step.name == step_name)

    def _stop_message(self, where: str) -> str:
        return (f"time budget: stopped {where}, everything saved; the next epoch would not "
                "fit. Run the same command again (in a new session: from a copy of this run "
                "directory) to continue.")


class _EpochClock(keras.callbacks.Callback):
    def __init__(self, keeper: Timekeeper, step_name: str):
        super().__init__()
        self.keeper = keeper
        self.step_name = step_name
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training:  # the loss went NaN: the checkpoint callback said so
            return
        self.keeper.epoch_done(self.step_name, epoch + 1, time.monotonic() - self._started)
