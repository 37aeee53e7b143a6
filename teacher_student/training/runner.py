"""Runs the plan's steps (training/steps/) in one loop.

For each step: checkpoints that cannot be read back are set aside; a finished step is skipped;
otherwise its models are built and compiled under the step's execution (`Step.compiled`, as
the preflight does), given the weights they need, and trained by one resumable fit
(trainer.py). Once the step is done it publishes its model (the last teacher phase, the
teacher), once: a rerun leaves a published model as it is (so its digest, which keys the
latencies measured, stays), unless it is missing or cannot be read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from teacher_student.training.steps import Execution, Step, TrainingData
from teacher_student.training.timekeeping import Timekeeper
from teacher_student.training.trainer import fit_resumable, recover_checkpoints


def run_steps(steps: Sequence[Step], executions: Mapping[str, Execution], data: TrainingData,
              clock: Timekeeper | None = None, callbacks: Sequence = (),
              verbose: int | str = "auto") -> None:
    """Trains `steps` in order, each under `executions[step.name]`. `clock` keeps progress and
    the time budget; `callbacks` go to every step's fit (the distribution engine's);
    `verbose` is what Keras prints per epoch (the config's `verbose`)."""
    for step in steps:
        run_step(step, executions[step.name], data, clock, callbacks, verbose)


def run_step(step: Step, execution: Execution, data: TrainingData,
             clock: Timekeeper | None = None, callbacks: Sequence = (),
             verbose: int | str = "auto") -> None:
    data = step.training_data(data)
    recover_checkpoints(step.directory)  # before asking what it holds
    if step.directory.is_done():
        print(f"{step.label}: finished earlier, skipped")
        if step.is_published():
            return
    else:
        built = step.compiled(execution, data)
        step.prepare(built, step.directory.latest_resume_point() is not None)
        print(f"{step.label}: {step.describe(built)}"
              + (f"; {execution.fallback}" if execution.fallback else ""))
        watch = None
        if clock is not None:
            clock.check_room(step.name)
            watch = clock.watch(step.name)
        fit_resumable(built.trainee, data.train, data.val, epochs=step.epochs,
                      directory=step.directory, policy=execution.policy,
                      deployable=built.deployable,
                      callbacks=[*callbacks, *step.callbacks()], clock=watch,
                      verbose=None if verbose == "auto" else verbose)
    step.directory.mark_published(step.publish(execution))
