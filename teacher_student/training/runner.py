"""Runs the plan's steps (steps.py) in one loop.

For each step: checkpoints that cannot be read back are set aside; a finished step is skipped;
otherwise its models are built under the step's settings, given the weights they need, compiled
(a `trainable` change and a `GradientGate` take effect only then; the optimizer gets loss
scaling as the policy says) and trained by one resumable fit (trainer.py). Once the step is done
it publishes its model (the last teacher phase, the teacher).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from teacher_student.training.steps import Settings, Step, TrainingData
from teacher_student.training.timekeeping import Timekeeper
from teacher_student.training.trainee import compile_trainee
from teacher_student.training.trainer import fit_resumable, recover_checkpoints


def run_steps(steps: Sequence[Step], settings: Mapping[str, Settings], data: TrainingData,
              clock: Timekeeper | None = None, callbacks: Sequence = (),
              verbose: int | str = "auto") -> None:
    """Trains `steps` in order, each under `settings[step.name]`. `clock` keeps progress and
    the time budget; `callbacks` go to every step's fit (the distribution engine's);
    `verbose` is what Keras prints per epoch (the config's `verbose`)."""
    for step in steps:
        run_step(step, settings[step.name], data, clock, callbacks, verbose)


def run_step(step: Step, settings: Settings, data: TrainingData,
             clock: Timekeeper | None = None, callbacks: Sequence = (),
             verbose: int | str = "auto") -> None:
    data = step.training_data(data)
    recover_checkpoints(step.directory)  # before asking what it holds
    if step.directory.is_done():
        print(f"{step.label}: finished earlier, skipped")
    else:
        built = step.build(settings, data)
        step.prepare(built, step.directory.latest_resume_point() is not None)
        compile_trainee(built.trainee, built.optimizer, settings.policy, settings.jit_compile,
                        data.steps_per_execution)
        print(f"{step.label}: {step.describe(built)}"
              + (f"; {settings.fallback}" if settings.fallback else ""))
        watch = None
        if clock is not None:
            clock.check_room(step.name)
            watch = clock.watch(step.name)
        fit_resumable(built.trainee, data.train, data.val, epochs=step.epochs,
                      directory=step.directory, policy=settings.policy,
                      deployable=built.deployable,
                      callbacks=[*callbacks, *step.callbacks()], clock=watch,
                      verbose=None if verbose == "auto" else verbose)
    if step.publish is not None:
        step.publish(settings)
