"""The preflight: every step the plan will run, built, compiled and taken on one real batch
before the first epoch, so that a dtype error, a missing XLA kernel or an out-of-memory shows in
the first minutes of a session, not hours in.

For each step not finished yet (each teacher phase with its trainable set, distillation with its
method, the baseline) it builds fresh models under the run's precision, XLA setting and
distribution, compiles them, takes training steps (single ones, then a few through `fit`, as
the epochs run them) and a validation step on the first batches of the real data, and saves,
loads and predicts with the step's model as the checkpoints and the evaluation will. The fresh
models are then dropped: the run's own models, optimizers and run directory never see them;
only `RUN/preflight.json` records what was found.

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
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import keras

from teacher_student import atomic
from teacher_student.config import Config
from teacher_student.errors import PreflightFailed
from teacher_student.hardware import device_name, peak_memory_bytes
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher
from teacher_student.run_dir import CheckpointDir, RunDir
from teacher_student.training import plan
from teacher_student.training.plan import StepSettings, TrainingData
from teacher_student.training.timekeeping import format_duration
from teacher_student.training.trainer import load_progress, phase_optimizer

TIMED_STEPS = 3  # single training steps timed after the first (which compiles)
FIT_SECONDS = 0.5  # about how long the shorter of the two timing fits runs
RECORD = "preflight.json"


@dataclass(frozen=True)
class PlannedStep:
    name: str  # its checkpoint folder's name
    label: str
    epochs_left: int
    # Fresh models under a policy: (what trains, what is saved and evaluated, its optimizer)
    build: Callable[[PrecisionPolicy], tuple[keras.Model, keras.Model, object]]


@dataclass
class StepCheck:
    """What one step's check measured, under the settings it ended with."""
    name: str
    label: str
    precision: str
    jit_compile: bool
    fallback: str
    first_step_s: float  # building, compiling and the first training step
    train_step_s: float
    val_step_s: float
    epochs_left: int
    estimate_s: float


class _StageFailed(Exception):
    def __init__(self, stage: str, error: Exception):
        super().__init__(stage)
        self.stage, self.error = stage, error


def planned_steps(config: Config, run_dir: RunDir, data: TrainingData,
                  distilled: bool = True) -> list[PlannedStep]:
    """The steps of the plan still to train, in order."""
    steps = []
    for index, phase in enumerate(config.phases, start=1):
        directory = run_dir.teacher_phase(index, phase.name)

        def teacher_phase(policy, phase=phase, index=index):
            teacher = build_teacher(config.teacher, policy)
            return (plan.teacher_trainee(teacher, phase, index, data), teacher,
                    phase_optimizer(phase, data.steps_per_epoch))

        steps.append((directory, f"teacher phase {index} '{phase.name}'", phase.epochs,
                      teacher_phase))

    def distillation(policy):
        student = build_student(config.student, policy)
        teacher = build_teacher(config.teacher, policy)
        return (plan.make_distiller(teacher, student, config.distill, policy, data), student,
                phase_optimizer(config.distill, data.steps_per_epoch))

    def baseline(policy):
        student = build_student(config.student, policy)
        return (plan.baseline_trainee(student, config.distill, data), student,
                phase_optimizer(config.distill, data.steps_per_epoch))

    if distilled:
        steps.append((run_dir.distillation, "distillation", config.distill.epochs, distillation))
    if config.distill.baseline:
        steps.append((run_dir.baseline, "baseline", config.distill.epochs, baseline))
    planned = [PlannedStep(directory.name, label, epochs - _epochs_done(directory), build)
               for directory, label, epochs, build in steps if not directory.is_done()]
    return [step for step in planned if step.epochs_left > 0]


def _epochs_done(directory: CheckpointDir) -> int:
    try:
        return load_progress(directory).epochs_done
    except (OSError, ValueError):  # unreadable: recovery sets it aside before training
        return 0


def run_preflight(steps: list[PlannedStep], settings: StepSettings, data: TrainingData,
                  test_batches, run_dir: RunDir, budget_left_s: float | None = None,
                  scope=None, timed_fits: bool = True) -> dict[str, StepSettings]:
    """Checks every step; the settings each will run with (by folder name). Writes
    `RUN/preflight.json`; raises PreflightFailed when a step cannot run. `timed_fits=False`
    times single steps only: workers that step together must take the same number of steps,
    and a count chosen from each one's own timing would differ."""
    started = time.monotonic()
    batches = _Batches(data.train, data.val, test_batches)
    print(f"preflight: {len(steps)} steps on {device_name()}, {settings.policy.name}, "
          f"XLA {'on' if settings.jit_compile else 'off'}")
    checks, chosen = [], {}
    for step in steps:
        with _quiet_retracing():
            check = _check_step(step, settings, batches, data, scope, timed_fits)
        checks.append(check)
        chosen[step.name] = StepSettings(PrecisionPolicy(check.precision), check.jit_compile,
                                         check.fallback)
        print(_format_check(check))
    peak = peak_memory_bytes()
    estimate = sum(check.estimate_s for check in checks)
    record = {"device": device_name(), "precision": settings.policy.name,
              "jit_compile": settings.jit_compile, "steps": [asdict(c) for c in checks],
              "estimate_s": round(estimate), "seconds": round(time.monotonic() - started, 1),
              "peak_device_memory_bytes": peak,
              "peak_host_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
              * 1024, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic.write_json(run_dir.path / RECORD, record)
    memory = (f"peak device memory {peak / 2**30:.2f} GiB" if peak is not None else
              f"peak host memory {record['peak_host_memory_bytes'] / 2**30:.2f} GiB (no "
              "accelerator)")
    print(f"preflight passed in {format_duration(record['seconds'])}: {memory}; "
          f"estimate for the plan {format_duration(estimate)}"
          + _against_budget(estimate, budget_left_s, checks))
    return chosen


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


def _check_step(step: PlannedStep, settings: StepSettings, batches, data: TrainingData,
                scope, timed_fits: bool) -> StepCheck:
    failures = []
    for policy, jit_compile, fallback in _candidates(settings):
        try:
            with scope() if scope else contextlib.nullcontext():
                timings = _try_step(step, policy, jit_compile, batches, timed_fits)
        except _StageFailed as failed:
            cause = _cause(failed.error)
            where = (f"{step.label}, {failed.stage} ({policy.name}, XLA "
                     f"{'on' if jit_compile else 'off'}): {cause}")
            if _is_out_of_memory(failed.error):
                raise PreflightFailed(
                    f"preflight: {where}. The step does not fit in this device's memory: lower "
                    "data.batch_size (or the image size) and rerun.") from failed.error
            failures.append(where)
            continue
        finally:
            gc.collect()  # the fresh models and their compiled steps
        if failures:
            fallback = f"{fallback}: preflight found {failures[0]}"
            print(f"preflight: {step.label} fails as configured ({failures[0]}); it runs "
                  f"with {_describe(policy, jit_compile)} instead")
        return _measured(step, policy, jit_compile, fallback, timings, data)
    raise PreflightFailed("preflight: " + "; then ".join(failures)
                          + ". No fallback works for this step: the run does not start.")


def _candidates(settings: StepSettings):
    """The run's settings, then the known fallbacks: XLA off, float32, both."""
    policy, jit_compile = settings.policy, settings.jit_compile
    float32 = PrecisionPolicy("float32")
    candidates = [(policy, jit_compile, "")]
    if jit_compile:
        candidates.append((policy, False, "XLA off"))
    if policy.name != "float32":
        candidates.append((float32, jit_compile, "float32"))
        if jit_compile:
            candidates.append((float32, False, "float32, XLA off"))
    return candidates


def _try_step(step: PlannedStep, policy: PrecisionPolicy, jit_compile: bool, batches,
              timed_fits: bool = True) -> dict:
    """Seconds of: the first training step (building and compiling too), a training step,
    a validation step. Raises _StageFailed naming the stage."""
    stage = "building its models"
    try:
        started = time.perf_counter()
        trainee, deployable, optimizer = step.build(policy)
        stage = "compiling and taking the first training step"
        plan.compile_trainee(trainee, optimizer, policy, jit_compile)
        trainee.train_on_batch(*batches.train)
        first = time.perf_counter() - started
        stage = "a training step"
        single = _median_time(lambda: trainee.train_on_batch(*batches.train), TIMED_STEPS)
        stage = "training steps through fit"
        train = _fit_step_time(trainee, batches.train, single) if timed_fits else single
        stage = "a validation step"
        trainee.test_on_batch(*batches.val)
        val = _median_time(lambda: trainee.test_on_batch(*batches.val), 1)
        stage = "saving, loading and predicting with its model"
        _save_load_predict(trainee, deployable, batches.test_images)
    except Exception as err:  # noqa: BLE001 - any failure is reported with its stage
        raise _StageFailed(stage, err) from err
    return {"first": first, "train": train, "val": val}


def _save_load_predict(trainee: keras.Model, deployable: keras.Model, images) -> None:
    """As a checkpoint and the evaluation do, in a folder outside the run directory."""
    with tempfile.TemporaryDirectory() as scratch:
        model_file = atomic.save_model(deployable, Path(scratch) / "model.keras")
        trainee.save_weights(Path(scratch) / "state.weights.h5")
        loaded = keras.saving.load_model(model_file, safe_mode=True)
        loaded.predict_on_batch(images)


def _fit_step_time(trainee: keras.Model, batch: tuple, single_s: float) -> float:
    """Seconds per training step as epochs run them: through `fit`, which keeps the device
    busy while Python moves on (a single `train_on_batch` waits for its result, and on a fast
    GPU that wait doubles a short step). Two short fits, so that fit's start-up cancels out."""
    steps = min(max(round(FIT_SECONDS / max(single_s, 1e-4)), 2), 50)
    seconds = []
    for count in (steps, 2 * steps):
        started = time.perf_counter()
        trainee.fit(_Repeated(batch, count), epochs=1, verbose=0, shuffle=False)
        seconds.append(time.perf_counter() - started)
    difference = (seconds[1] - seconds[0]) / steps
    average = seconds[1] / (2 * steps)  # start-up included: an upper bound
    # On a busy machine the difference can be noise; the longer fit's average bounds it.
    return difference if average / 2 <= difference <= average else min(single_s, average)


class _Repeated(keras.utils.PyDataset):
    """One batch, `count` times."""

    def __init__(self, batch: tuple, count: int):
        super().__init__()
        self.batch, self.count = batch, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple:
        return self.batch


def _median_time(call: Callable[[], object], times: int) -> float:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        call()  # train_on_batch and test_on_batch return host numbers: the device is done
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def _measured(step: PlannedStep, policy, jit_compile, fallback, timings, data) -> StepCheck:
    epoch_s = len(data.train) * timings["train"] + len(data.val) * timings["val"]
    return StepCheck(step.name, step.label, policy.name, jit_compile, fallback,
                     round(timings["first"], 3), round(timings["train"], 5),
                     round(timings["val"], 5), step.epochs_left,
                     round(timings["first"] + step.epochs_left * epoch_s, 1))


class _Batches:
    """The first batch of each split, drawn once."""

    def __init__(self, train, val, test):
        self.train = _first(train)
        self.val = _first(val)
        self.test_images = _first(test)[0]


def _first(batches) -> tuple:
    batch = batches[0] if hasattr(batches, "__getitem__") else next(iter(batches))
    return tuple(batch)


def _cause(error: Exception) -> str:
    """The error's type and the line of its message that names the cause, without XLA's
    metadata (TensorFlow puts the op's traceback first and the cause last)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line for line in lines
              if not line.startswith(("File ", "Detected at", "[[", "Hint:"))]
    text = (causes or lines or [""])[-1].split(", metadata=")[0]
    text = text.removeprefix("during context [Unknown]: ")
    return f"{type(error).__name__}: {text[:240]}"


def _is_out_of_memory(error: Exception) -> bool:
    text = f"{type(error).__name__} {error}"
    return any(sign in text for sign in ("ResourceExhausted", "RESOURCE_EXHAUSTED",
                                         "Out of memory", "out of memory", "OOM when"))


def _describe(policy: PrecisionPolicy, jit_compile: bool) -> str:
    return f"{policy.name}, XLA {'on' if jit_compile else 'off'}"


def _format_check(check: StepCheck) -> str:
    return (f"  {check.label}: {check.first_step_s:.1f} s to build and compile, "
            f"train step {check.train_step_s * 1000:.1f} ms, validation step "
            f"{check.val_step_s * 1000:.1f} ms; {check.epochs_left} epoch"
            f"{'' if check.epochs_left == 1 else 's'} ~ "
            f"{format_duration(check.estimate_s)}"
            + (f" [{_describe(PrecisionPolicy(check.precision), check.jit_compile)}]"
               if check.fallback else ""))


def _against_budget(estimate: float, budget_left_s: float | None, checks) -> str:
    if budget_left_s is None:
        return ""
    if estimate <= budget_left_s:
        return f", within the time budget ({format_duration(budget_left_s)} left)"
    spent, where = 0.0, checks[-1].label
    for check in checks:
        spent += check.estimate_s
        if spent > budget_left_s:
            where = check.label
            break
    return (f"; the time budget ({format_duration(budget_left_s)} left) ends in {where}: "
            "the run stops there with everything saved, and the same command continues")


def fallbacks_of(chosen: Mapping[str, StepSettings]) -> dict[str, StepSettings]:
    """Only the steps whose settings the preflight changed."""
    return {name: step for name, step in chosen.items() if step.fallback}
