"""The training plan: the teacher's phases, then distillation and the from-scratch baseline.

Each phase sets which layers train, recompiles (a `trainable` change takes effect only then,
and so does a `GradientGate`), wraps the optimizer through the precision policy and runs one
resumable fit. A finished phase is skipped on a rerun; the next phase starts from the best
weights (by validation accuracy) of the one before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from teacher_student.config import DistillConfig, PhaseConfig
from teacher_student.models.freezing import set_trainable, trainable_parts
from teacher_student.models.precision import PrecisionPolicy, transfer_weights
from teacher_student.run_dir import CheckpointDir, RunDir
from teacher_student.training.distiller import Distiller
from teacher_student.training.trainer import fit_resumable, phase_callbacks, phase_optimizer


@dataclass(frozen=True)
class TrainingData:
    train: Callable[[str], object]  # augmentation strength -> batches of (uint8 images, labels)
    val: object
    steps_per_epoch: int
    class_weight: dict[int, float] | None = None


def classification_compile(model: keras.Model, optimizer, policy: PrecisionPolicy,
                           jit_compile: bool) -> None:
    model.compile(optimizer=policy.wrap_optimizer(optimizer),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=jit_compile)


def load_weights_from(model: keras.Model, path: Path) -> None:
    """Weights of a saved model, by layer name: works across precision policies."""
    transfer_weights(keras.saving.load_model(path, safe_mode=True), model)


def train_teacher_phases(teacher: keras.Model, phases: tuple[PhaseConfig, ...],
                         policy: PrecisionPolicy, data: TrainingData, run_dir: RunDir,
                         jit_compile: bool = True, callbacks: Sequence = ()) -> keras.Model:
    """`callbacks` go to every phase's fit (the distribution engine's, say)."""
    best_so_far: Path | None = None
    for index, phase in enumerate(phases, start=1):
        directory = run_dir.teacher_phase(index, phase.name)
        label = f"teacher phase {index}/{len(phases)} '{phase.name}'"
        if directory.is_done():
            print(f"{label}: finished earlier, skipped")
        else:
            if best_so_far and directory.latest_resume_point() is None:
                load_weights_from(teacher, best_so_far)
            set_trainable(teacher, phase.trainable, phase.unfreeze_top)
            optimizer = phase_optimizer(phase, data.steps_per_epoch)
            classification_compile(teacher, optimizer, policy, jit_compile)
            parts = trainable_parts(teacher)
            print(f"{label}: {phase.epochs} epochs, lr {phase.learning_rate} ({phase.schedule}), "
                  f"trunk parts training {sum(parts)}/{len(parts)}, "
                  f"{_count(teacher.trainable_weights):,} trainable parameters, "
                  f"augment {phase.augment}")
            fit_resumable(teacher, data.train(phase.augment), data.val, epochs=phase.epochs,
                          directory=directory, policy=policy, deployable=teacher,
                          class_weight=data.class_weight,
                          callbacks=[*callbacks, *phase_callbacks(phase, directory)])
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
    distiller = Distiller(teacher, student, alpha=config.alpha, temperature=config.temperature)
    distiller.compile(optimizer=policy.wrap_optimizer(phase_optimizer(config,
                                                                      data.steps_per_epoch)),
                      metrics=["accuracy"], jit_compile=jit_compile)
    print("distillation: finished earlier, skipped" if directory.is_done() else
          f"distillation: {config.epochs} epochs, alpha {config.alpha}, "
          f"temperature {config.temperature}, lr {config.learning_rate} ({config.schedule})")
    return _train_student(distiller, student, config, policy, data, directory,
                          run_dir, "student_distilled", callbacks)


def train_student_from_scratch(student: keras.Model, config: DistillConfig,
                               policy: PrecisionPolicy, data: TrainingData, run_dir: RunDir,
                               jit_compile: bool = True, callbacks: Sequence = ()) -> keras.Model:
    """The baseline: the same student, budget and schedule, with labels only."""
    classification_compile(student, phase_optimizer(config, data.steps_per_epoch), policy,
                           jit_compile)
    directory = run_dir.baseline
    print("student from scratch (baseline): finished earlier, skipped" if directory.is_done()
          else f"student from scratch (baseline): {config.epochs} epochs, same budget")
    return _train_student(student, student, config, policy, data, directory, run_dir,
                          "student_scratch", callbacks)


def _train_student(model, student, config: DistillConfig, policy, data,
                   directory: CheckpointDir, run_dir: RunDir, name: str,
                   callbacks: Sequence) -> keras.Model:
    if not directory.is_done():
        fit_resumable(model, data.train(config.augment), data.val, epochs=config.epochs,
                      directory=directory, policy=policy, deployable=student,
                      class_weight=data.class_weight, callbacks=list(callbacks))
    if directory.best_model.exists():
        load_weights_from(student, directory.best_model)
    run_dir.save_model(student, name)
    return student


def _count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))
