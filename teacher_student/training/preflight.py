"""The preflight: every step the plan will run, built, compiled and taken on one real batch
before the first epoch, so that a dtype error, a missing XLA kernel or an out-of-memory shows in
the first minutes of a session, not hours in.

For each step not finished yet (each teacher phase with its trainable set, distillation with its
method, the baseline) it builds fresh models under the run's precision, XLA setting and
distribution, compiles them, takes training steps (single ones, then a few through `fit`, as
the epochs run them) and a validation step on the first batches of the real data, and saves,
loads and predicts with the step's model as the checkpoints and the evaluation will. The fresh
models are then dropped: the run's own models, optimizers and run directory never see them;
only `RUN/preflight.json` records what was found. The result is how every step runs (its
`Execution`).

When a step fails, the known fallbacks are tried in order: XLA off, then float32, then both;
the first that works is what the run uses for that step, said in one line and in
preflight.json. An out-of-memory has no fallback here (float32 needs more memory, not less):
the preflight fails, naming the step, and the run does not start. From the step times it
estimates how long the plan will take (ETA).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from teacher_student import atomic
from teacher_student.errors import PreflightFailed, UserError
from teacher_student.hardware import device_name, peak_memory_bytes
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.run.directory import RunDir
from teacher_student.timing import fit_step_seconds, time_calls
from teacher_student.training.preflight_report import (
    against_budget,
    cause,
    describe,
    format_check,
    is_out_of_memory,
)
from teacher_student.training.steps import Execution, Step, TrainingData
from teacher_student.training.timekeeping import Timekeeper, format_duration

TIMED_STEPS = 3  # single training steps timed after the first (which compiles)
FIT_SECONDS = 0.5  # about how long the shorter of the two timing fits runs


@dataclass
class StepCheck:
    """What one step's check measured, under the execution it ended with."""
    name: str
    label: str
    precision: str
    jit_compile: bool
    fallback: str
    first_step_s: float  # building, compiling and the first training step
    train_step_s: float
    val_step_s: float
    epoch_s: float  # an epoch of training and validation, compiled
    epochs_left: int
    estimate_s: float

    @property
    def execution(self) -> Execution:
        return Execution(PrecisionPolicy(self.precision), self.jit_compile, self.fallback)


class _StageFailed(Exception):
    def __init__(self, stage: str, error: Exception):
        super().__init__(stage)
        self.stage, self.error = stage, error


def run_preflight(steps: Sequence[Step], execution: Execution, data: TrainingData,
                  test_batches, run_dir: RunDir, clock: Timekeeper | None = None,
                  scope=None, timed_fits: bool = True) -> dict[str, Execution]:
    """Checks every step of `steps` that has epochs left; the execution each runs with, by step
    name (the run's `execution` unless a fallback was needed). Writes `RUN/preflight.json`,
    tells `clock` how long each step's first epoch will take, and raises PreflightFailed when
    a step cannot run. `timed_fits=False` times single steps only:
    workers that step together must take the same number of steps, and a count chosen from
    each one's own timing would differ."""
    started = time.monotonic()
    batches = _Batches(data.train, data.val, test_batches)
    to_check = [step for step in steps if step.epochs_left() > 0]
    print(f"preflight: {len(to_check)} steps on {device_name()}, {describe(execution)}")
    checks = []
    for step in to_check:
        with _quiet_retracing():
            checks.append(_check_step(step, execution, batches, data, scope, timed_fits))
        print(format_check(checks[-1]))
    peak = peak_memory_bytes()
    estimate = sum(check.estimate_s for check in checks)
    record = {"device": device_name(), "precision": execution.policy.name,
              "jit_compile": execution.jit_compile, "steps": [asdict(c) for c in checks],
              "estimate_s": round(estimate), "seconds": round(time.monotonic() - started, 1),
              "peak_device_memory_bytes": peak,
              "peak_host_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
              * 1024, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    run_dir.write_preflight(record)
    memory = (f"peak device memory {peak / 2**30:.2f} GiB" if peak is not None else
              f"peak host memory {record['peak_host_memory_bytes'] / 2**30:.2f} GiB (no "
              "accelerator)")
    budget_left_s = clock.remaining_s() if clock is not None else None
    print(f"preflight passed in {format_duration(record['seconds'])}: {memory}; "
          f"estimate for the plan {format_duration(estimate)}"
          + against_budget(estimate, budget_left_s, checks))
    for check in checks if clock is not None else ():
        clock.expect(check.name, check.first_step_s + check.epoch_s, check.epoch_s)
    checked = {check.name: check.execution for check in checks}
    return {step.name: checked.get(step.name, execution) for step in steps}


@contextlib.contextmanager
def _quiet_retracing():
    """TensorFlow warns of 'retracing' when many models' steps are compiled in a row, which is
    what the preflight does on purpose."""
    log = logging.getLogger("tensorflow")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _check_step(step: Step, execution: Execution, batches, data: TrainingData, scope,
                timed_fits: bool) -> StepCheck:
    data = step.training_data(data)
    failures = []
    for candidate in _candidates(execution):
        try:
            with scope() if scope else contextlib.nullcontext():
                timings = _try_step(step, candidate, data, batches, timed_fits)
        except _StageFailed as failed:
            if isinstance(failed.error, UserError):  # the config's fault: no fallback mends it
                raise failed.error from None
            where = (f"{step.label}, {failed.stage} ({describe(candidate)}): "
                     f"{cause(failed.error)}")
            if is_out_of_memory(failed.error):
                raise PreflightFailed(
                    f"preflight: {where}. The step does not fit in this device's memory: lower "
                    "data.batch_size (or the image size) and rerun.") from failed.error
            failures.append(where)
            continue
        finally:
            gc.collect()  # the fresh models and their compiled steps
        fallback = candidate.fallback
        if failures:
            fallback = f"{fallback}: preflight found {failures[0]}"
            print(f"preflight: {step.label} fails as configured ({failures[0]}); it runs "
                  f"with {describe(candidate)} instead")
        return _measured(step, candidate, fallback, timings, data)
    raise PreflightFailed("preflight: " + "; then ".join(failures)
                          + ". No fallback works for this step: the run does not start.")


def _candidates(execution: Execution) -> list[Execution]:
    """The run's execution, then the known fallbacks: XLA off, float32, both."""
    policy, jit_compile = execution.policy, execution.jit_compile
    float32 = PrecisionPolicy("float32")
    candidates = [Execution(policy, jit_compile)]
    if jit_compile:
        candidates.append(Execution(policy, False, "XLA off"))
    if policy.name != "float32":
        candidates.append(Execution(float32, jit_compile, "float32"))
        if jit_compile:
            candidates.append(Execution(float32, False, "float32, XLA off"))
    return candidates


def _try_step(step: Step, execution: Execution, data: TrainingData, batches,
              timed_fits: bool = True) -> dict:
    """Seconds of: the first training step (building and compiling too), a training step,
    a validation step. Raises _StageFailed naming the stage."""
    stage = "building its models"
    try:
        started = time.perf_counter()
        built = step.compiled(execution, data)
        stage = "compiling and taking the first training step"
        built.trainee.train_on_batch(*batches.train)
        first = time.perf_counter() - started
        stage = "a training step"
        single = float(np.median(time_calls(lambda: built.trainee.train_on_batch(
            *batches.train), TIMED_STEPS)))
        stage = "training steps through fit"
        train = single
        if timed_fits:
            steps = min(max(round(FIT_SECONDS / max(single, 1e-4)), 2), 50)
            train = fit_step_seconds(built.trainee, batches.train, steps, bound=single)
        stage = "a validation step"
        for batch in batches.val_last:  # compiled here, so that the run finds it compiled
            built.trainee.test_on_batch(*batch)
        val = time_calls(lambda: built.trainee.test_on_batch(*batches.val), 1, warmup=1)[0]
        stage = "saving, loading and predicting with its model"
        _save_load_predict(built.trainee, built.deployable,
                           [batches.test_images, *batches.test_last_images])
    except Exception as err:  # noqa: BLE001 - any failure is reported with its stage
        raise _StageFailed(stage, err) from err
    return {"first": first, "train": train, "val": val}


def _save_load_predict(trainee: keras.Model, deployable: keras.Model, images: list) -> None:
    """As a checkpoint and the evaluation do, in a folder outside the run directory; a
    prediction on each batch of `images`."""
    with tempfile.TemporaryDirectory() as scratch:
        model_file = atomic.save_model(deployable, Path(scratch) / "model.keras")
        trainee.save_weights(Path(scratch) / "state.weights.h5")
        loaded = keras.saving.load_model(model_file, safe_mode=True)
        for batch in images:
            loaded.predict_on_batch(batch)


def _measured(step: Step, execution: Execution, fallback: str, timings: dict,
              data: TrainingData) -> StepCheck:
    epochs_left = step.epochs_left()
    epoch_s = len(data.train) * timings["train"] + len(data.val) * timings["val"]
    return StepCheck(step.name, step.label, execution.policy.name, execution.jit_compile,
                     fallback, round(timings["first"], 3), round(timings["train"], 5),
                     round(timings["val"], 5), round(epoch_s, 3), epochs_left,
                     round(timings["first"] + epochs_left * epoch_s, 1))


class _Batches:
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
