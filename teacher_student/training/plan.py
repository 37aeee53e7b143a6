"""The training plan: the teacher's phases, then distillation and the from-scratch baseline.

Each phase sets which layers train, wraps the model in a `Trainee` (its augmentation and
mixing run in the compiled step), recompiles (a `trainable` change takes effect only then, and
so does a `GradientGate`), wraps the optimizer through the precision policy and runs one
resumable fit. A finished phase is skipped on a rerun; the next phase starts from the best
weights (by validation accuracy) of the one before. The baseline gets the distillation's
augmentation, mixing, budget and schedule, so the comparison is fair.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from teacher_student.config import DistillConfig, PhaseConfig
from teacher_student.models.freezing import set_trainable, trainable_parts
from teacher_student.models.precision import PrecisionPolicy, transfer_weights
from teacher_student.run_dir import CheckpointDir, RunDir
from teacher_student.training.distiller import Distiller, method_of
from teacher_student.training.timekeeping import Timekeeper
from teacher_student.training.trainee import Trainee
from teacher_student.training.trainer import (
    fit_resumable,
    phase_callbacks,
    phase_optimizer,
    recover_checkpoints,
)


@dataclass(frozen=True)
class StepSettings:
    """How one step of the plan runs; the preflight (preflight.py) may choose another precision
    or XLA setting for one step than the run's, and says why in `fallback`."""
    policy: PrecisionPolicy
    jit_compile: bool
    fallback: str = ""


@dataclass(frozen=True)
class TrainingData:
    train: object  # batches of (uint8 images, labels[, sample weights]); see data/batches.py
    val: object
    seed: int = 0  # of the augmentation and mixing streams
    steps_per_execution: int = 1
    clock: Timekeeper | None = None  # progress, status.json and the time budget

    def watch(self, directory: CheckpointDir):
        """The clock's callback for a phase about to train in `directory`, once it has checked
        that an epoch fits in the time budget."""
        if self.clock is None:
            return None
        self.clock.check_room(directory.name)
        return self.clock.watch(directory.name)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train)


def compile_trainee(trainee: keras.Model, optimizer, policy: PrecisionPolicy,
                    jit_compile: bool, steps_per_execution: int = 1) -> None:
    """The loss is the trainee's own (`compute_loss`); the optimizer gets loss scaling as the
    policy says."""
    trainee.compile(optimizer=policy.wrap_optimizer(optimizer), metrics=["accuracy"],
                    jit_compile=jit_compile, steps_per_execution=steps_per_execution)


def teacher_trainee(teacher: keras.Model, phase: PhaseConfig, index: int,
                    data: TrainingData) -> Trainee:
    """The teacher as phase `index` trains it: its trainable set, its augmentation."""
    set_trainable(teacher, phase.trainable, phase.unfreeze_top)
    return Trainee(teacher, phase.augment, seed=data.seed + 10 * index)


def make_distiller(teacher: keras.Model, student: keras.Model, config: DistillConfig,
                   policy: PrecisionPolicy, data: TrainingData) -> Distiller:
    return Distiller(teacher, student, method_of(config, data.steps_per_epoch), config.alpha,
                     config.augment, config.mix, data.seed, policy, config.teacher_feature,
                     config.student_feature)


def baseline_trainee(student: keras.Model, config: DistillConfig, data: TrainingData) -> Trainee:
    """The student with the distillation's augmentation and mixing, trained on labels only."""
    return Trainee(student, config.augment, config.mix, data.seed)


def load_weights_from(model: keras.Model, path: Path) -> None:
    """Weights of a saved model, by layer name: works across precision policies."""
    transfer_weights(keras.saving.load_model(path, safe_mode=True), model)


def train_teacher_phases(teacher: keras.Model, phases: tuple[PhaseConfig, ...],
                         policy: PrecisionPolicy, data: TrainingData, run_dir: RunDir,
                         jit_compile: bool = True, callbacks: Sequence = (),
                         fallbacks: Mapping[str, StepSettings] | None = None,
                         build: Callable[[PrecisionPolicy], keras.Model] | None = None
                         ) -> keras.Model:
    """`teacher` is built under `policy`; `callbacks` go to every phase's fit (the distribution
    engine's, say). A phase with a preflight fallback (`fallbacks`, by folder name) under
    another policy trains a model `build` makes under it, carrying the teacher's weights."""
    best_so_far: Path | None = None
    for index, phase in enumerate(phases, start=1):
        directory = run_dir.teacher_phase(index, phase.name)
        label = f"teacher phase {index}/{len(phases)} '{phase.name}'"
        recover_checkpoints(directory)  # before asking what it holds
        if directory.is_done():
            print(f"{label}: finished earlier, skipped")
        else:
            step = (fallbacks or {}).get(directory.name) or StepSettings(policy, jit_compile)
            model = teacher if step.policy.name == policy.name else _rebuilt(teacher, step,
                                                                             build)
            if best_so_far and directory.latest_resume_point() is None:
                load_weights_from(model, best_so_far)
            trainee = teacher_trainee(model, phase, index, data)
            compile_trainee(trainee, phase_optimizer(phase, data.steps_per_epoch), step.policy,
                            step.jit_compile, data.steps_per_execution)
            parts = trainable_parts(model)
            print(f"{label}: {phase.epochs} epochs, lr {phase.learning_rate} ({phase.schedule}), "
                  f"trunk parts training {sum(parts)}/{len(parts)}, "
                  f"{_count(model.trainable_weights):,} trainable parameters, "
                  f"augment {phase.augment}" + (f"; {step.fallback}" if step.fallback else ""))
            fit_resumable(trainee, data.train, data.val, epochs=phase.epochs,
                          directory=directory, policy=step.policy, deployable=model,
                          callbacks=[*callbacks, *phase_callbacks(phase, directory)],
                          clock=data.watch(directory))
        if directory.best_model.exists():
            best_so_far = directory.best_model
    if best_so_far:
        load_weights_from(teacher, best_so_far)
    set_trainable(teacher, "all")
    run_dir.save_model(teacher, "teacher")
    return teacher


def distill_student(teacher: keras.Model, student: keras.Model, config: DistillConfig,
                    policy: PrecisionPolicy, data: TrainingData, run_dir: RunDir,
                    jit_compile: bool = True, callbacks: Sequence = ()) -> keras.Model:
    directory = run_dir.distillation
    recover_checkpoints(directory)
    distiller = make_distiller(teacher, student, config, policy, data)
    compile_trainee(distiller, phase_optimizer(config, data.steps_per_epoch), policy,
                    jit_compile, data.steps_per_execution)
    print("distillation: finished earlier, skipped" if directory.is_done() else
          f"distillation ({config.method}): {config.epochs} epochs, alpha {config.alpha}, "
          f"temperature {config.temperature}"
          + (", standardized logits" if config.standardize_logits else "")
          + f", mix {config.mix}, lr {config.learning_rate} ({config.schedule})")
    return _train_student(distiller, student, config, policy, data, directory,
                          run_dir, "student_distilled", callbacks)


def train_student_from_scratch(student: keras.Model, config: DistillConfig,
                               policy: PrecisionPolicy, data: TrainingData, run_dir: RunDir,
                               jit_compile: bool = True, callbacks: Sequence = ()) -> keras.Model:
    """The baseline: the same student, budget, schedule, augmentation and mixing, with labels
    only."""
    trainee = baseline_trainee(student, config, data)
    compile_trainee(trainee, phase_optimizer(config, data.steps_per_epoch), policy, jit_compile,
                    data.steps_per_execution)
    directory = run_dir.baseline
    recover_checkpoints(directory)
    print("student from scratch (baseline): finished earlier, skipped" if directory.is_done()
          else f"student from scratch (baseline): {config.epochs} epochs, same budget")
    return _train_student(trainee, student, config, policy, data, directory, run_dir,
                          "student_scratch", callbacks)


def _train_student(model, student, config: DistillConfig, policy, data,
                   directory: CheckpointDir, run_dir: RunDir, name: str,
                   callbacks: Sequence) -> keras.Model:
    if not directory.is_done():
        fit_resumable(model, data.train, data.val, epochs=config.epochs,
                      directory=directory, policy=policy, deployable=student,
                      callbacks=list(callbacks), clock=data.watch(directory))
    if directory.best_model.exists():
        load_weights_from(student, directory.best_model)
    run_dir.save_model(student, name)
    return student


def _rebuilt(model: keras.Model, step: StepSettings, build) -> keras.Model:
    """`model`'s weights in a model built under `step.policy`."""
    if build is None:
        raise ValueError(f"a fallback to {step.policy.name} needs a `build` function")
    other = build(step.policy)
    transfer_weights(model, other)
    return other


def _count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))
