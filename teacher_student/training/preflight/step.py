"""One step's check: built, compiled and taken on real batches under the run's execution,
then, when it fails, under each known fallback in turn (XLA off, float32, both); what it
measured (`StepCheck`)."""

from __future__ import annotations

import contextlib
import gc
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from teacher_student import atomic
from teacher_student.errors import PreflightFailed, UserError
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.timing import fit_step_seconds, time_calls
from teacher_student.training.preflight.report import cause, describe, is_out_of_memory
from teacher_student.training.steps import Execution, Step, TrainingData

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


def check_step(step: Step, execution: Execution, batches, data: TrainingData, scope,
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
