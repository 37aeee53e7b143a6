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
estimates how long the plan will take (ETA). A resumed run whose config (its time budget and
verbosity aside), data and machine are those recorded takes the recorded checks.

One step's check and its fallbacks are in `step.py`, the batches it takes in `batches.py`, and
what it prints in `report.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict

from teacher_student.errors import PreflightFailed
from teacher_student.hardware import device_name, peak_memory_bytes
from teacher_student.run.directory import RunDir
from teacher_student.training.preflight.batches import Batches
from teacher_student.training.preflight.report import against_budget, describe, format_check
from teacher_student.training.preflight.step import StepCheck, check_step
from teacher_student.training.steps import Execution, Step, TrainingData
from teacher_student.training.timekeeping import Timekeeper, format_duration
from teacher_student.words import counted

__all__ = ["PreflightFailed", "StepCheck", "run_preflight"]


def run_preflight(steps: Sequence[Step], execution: Execution, data: TrainingData,
                  test_batches, run_dir: RunDir, clock: Timekeeper | None = None,
                  scope=None, timed_fits: bool = True,
                  fingerprint: Mapping | None = None) -> dict[str, Execution]:
    """Checks every step of `steps` that has epochs left; the execution each runs with, by step
    name (the run's `execution` unless a fallback was needed). Writes `RUN/preflight.json`,
    tells `clock` how long each step's first epoch will take, and raises PreflightFailed when
    a step cannot run. `timed_fits=False` times single steps only:
    workers that step together must take the same number of steps, and a count chosen from
    each one's own timing would differ. `fingerprint` says what the checks depend on (the
    config, the data, the machine): a resumed run whose fingerprint is the one recorded takes
    the recorded checks instead of checking again."""
    to_check = [step for step in steps if step.epochs_left() > 0]
    checks = _recorded_checks(run_dir, fingerprint, to_check) if fingerprint else None
    if checks is not None:
        print(f"preflight: as checked before ({run_dir.preflight_file.name}: the same config, "
              f"data and machine), {counted(len(checks), 'step')} on {device_name()}")
        for check in checks:
            print(format_check(check))
    else:
        checks = _check_steps(to_check, execution, data, test_batches, run_dir, clock, scope,
                              timed_fits, fingerprint)
    for check in checks if clock is not None else ():
        clock.expect(check.name, check.first_step_s + check.epoch_s, check.epoch_s)
    checked = {check.name: check.execution for check in checks}
    return {step.name: checked.get(step.name, execution) for step in steps}


def _check_steps(to_check: Sequence[Step], execution: Execution, data: TrainingData,
                 test_batches, run_dir: RunDir, clock: Timekeeper | None, scope,
                 timed_fits: bool, fingerprint: Mapping | None) -> list[StepCheck]:
    started = time.monotonic()
    batches = Batches(data.train, data.val, test_batches)
    print(f"preflight: {counted(len(to_check), 'step')} on {device_name()}, "
          f"{describe(execution)}")
    checks = []
    for step in to_check:
        stand_in = next((check for check in checks if check.name == step.same_as), None)
        if stand_in is not None:  # the same models, checked already: its check stands
            checks.append(_for_step(stand_in, step))
        else:
            with _quiet_retracing():
                checks.append(check_step(step, execution, batches, data, scope, timed_fits))
        print(format_check(checks[-1]))
    peak = peak_memory_bytes()
    estimate = sum(check.estimate_s for check in checks)
    record = {"device": device_name(), "precision": execution.policy.name,
              "jit_compile": execution.jit_compile, "steps": [asdict(c) for c in checks],
              "estimate_s": round(estimate), "seconds": round(time.monotonic() - started, 1),
              "peak_device_memory_bytes": peak,
              "peak_host_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
              * 1024, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
              "fingerprint": dict(fingerprint or {})}
    run_dir.write_preflight(record)
    memory = (f"peak device memory {peak / 2**30:.2f} GiB" if peak is not None else
              f"peak host memory {record['peak_host_memory_bytes'] / 2**30:.2f} GiB (no "
              "accelerator)")
    budget_left_s = clock.remaining_s() if clock is not None else None
    print(f"preflight passed in {format_duration(record['seconds'])}: {memory}; "
          f"estimate for the plan {format_duration(estimate)}"
          + against_budget(estimate, budget_left_s, checks))
    return checks


def _recorded_checks(run_dir: RunDir, fingerprint: Mapping,
                     to_check: Sequence[Step]) -> list[StepCheck] | None:
    """The recorded check of each step of `to_check`, with its epochs left now, when
    preflight.json was written with this `fingerprint` and checked every one; else None."""
    try:
        record = json.loads(run_dir.preflight_file.read_text())
        if record.get("fingerprint") != dict(fingerprint):
            return None
        recorded = {entry["name"]: StepCheck(**entry) for entry in record["steps"]}
    except (OSError, ValueError, TypeError, KeyError):  # none, or unreadable: check again
        return None
    if any(step.name not in recorded for step in to_check):
        return None
    return [_for_step(recorded[step.name], step) for step in to_check]


def _for_step(check: StepCheck, step: Step) -> StepCheck:
    """`check` (recorded, or of a step with the same models) as `step`'s, with its epochs left
    now."""
    epochs_left = step.epochs_left()
    return dataclasses.replace(
        check, name=step.name, label=step.label, epochs_left=epochs_left,
        estimate_s=round(check.first_step_s + epochs_left * check.epoch_s, 1))


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
