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

from teacher_student import files
from teacher_student.config import DistillConfig, PhaseConfig
from teacher_student.distiller import Distiller
from teacher_student.freezing import set_trainable, trainable_parts
from teacher_student.precision import PrecisionPolicy, transfer_weights
from teacher_student.trainer import (
    fit_resumable,
    is_done,
    latest_resume_point,
    phase_callbacks,
    phase_optimizer,
)

TEACHER_FILE = "teacher.keras"
DISTILLED_FILE = "student_distilled.keras"
SCRATCH_FILE = "student_scratch.keras"


@dataclass(frozen=True)
class TrainingData:
    train: Callable[[str], object]  # augmentation strength -> batches of (uint8 images, labels)
    val: object
    steps_per_epoch: int
    class_weight: dict[int, float] | None = None


def phase_directory(run_dir: Path, index: int, phase: PhaseConfig) -> Path:
    return run_dir / "teacher" / f"phase{index}_{phase.name}"


def classification_compile(model: keras.Model, optimizer, policy: PrecisionPolicy,
                           jit_compile: bool) -> None:
    model.compile(optimizer=policy.wrap_optimizer(optimizer),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=jit_compile)


def load_weights_from(model: keras.Model, path: Path) -> None:
    """Weights of a saved model, by layer name: works across precision policies."""
    transfer_weights(keras.saving.load_model(path, safe_mode=True), model)


def train_teacher(teacher: keras.Model, phases: tuple[PhaseConfig, ...], policy: PrecisionPolicy,
                  data: TrainingData, run_dir: Path, jit_compile: bool = True,
                  callbacks: Sequence = ()) -> keras.Model:
    """`callbacks` go to every phase's fit (the distribution engine's, say)."""
    best_so_far: Path | None = None
    for index, phase in enumerate(phases, start=1):
        directory = phase_directory(run_dir, index, phase)
        label = f"teacher phase {index}/{len(phases)} '{phase.name}'"
        if is_done(directory):
            print(f"{label}: finished earlier, skipped")
        else:
            if best_so_far and latest_resume_point(directory) is None:
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
        if (directory / "best.keras").exists():
            best_so_far = directory / "best.keras"
    if best_so_far:
        load_weights_from(teacher, best_so_far)
    set_trainable(teacher, "all")
    files.save_model(teacher, run_dir / TEACHER_FILE)
    return teacher


def distill_student(teacher: keras.Model, student: keras.Model, config: DistillConfig,
                    policy: PrecisionPolicy, data: TrainingData, run_dir: Path,
                    jit_compile: bool = True, callbacks: Sequence = ()) -> keras.Model:
    directory = run_dir / "student_distilled"
    distiller = Distiller(teacher, student, alpha=config.alpha, temperature=config.temperature)
    distiller.compile(optimizer=policy.wrap_optimizer(phase_optimizer(config,
                                                                      data.steps_per_epoch)),
                      metrics=["accuracy"], jit_compile=jit_compile)
    print("distillation: finished earlier, skipped" if is_done(directory) else
          f"distillation: {config.epochs} epochs, alpha {config.alpha}, "
          f"temperature {config.temperature}, lr {config.learning_rate} ({config.schedule})")
    return _train_student(distiller, student, config, policy, data, directory,
                          run_dir / DISTILLED_FILE, callbacks)


def train_student_from_scratch(student: keras.Model, config: DistillConfig,
                               policy: PrecisionPolicy, data: TrainingData, run_dir: Path,
                               jit_compile: bool = True, callbacks: Sequence = ()) -> keras.Model:
    """The baseline: the same student, budget and schedule, with labels only."""
    classification_compile(student, phase_optimizer(config, data.steps_per_epoch), policy,
                           jit_compile)
    directory = run_dir / "student_scratch"
    print("student from scratch (baseline): finished earlier, skipped" if is_done(directory)
          else f"student from scratch (baseline): {config.epochs} epochs, same budget")
    return _train_student(student, student, config, policy, data, directory,
                          run_dir / SCRATCH_FILE, callbacks)


def _train_student(model, student, config: DistillConfig, policy, data, directory: Path,
                   final: Path, callbacks: Sequence) -> keras.Model:
    if not is_done(directory):
        fit_resumable(model, data.train(config.augment), data.val, epochs=config.epochs,
                      directory=directory, policy=policy, deployable=student,
                      class_weight=data.class_weight, callbacks=list(callbacks))
    if (directory / "best.keras").exists():
        load_weights_from(student, directory / "best.keras")
    files.save_model(student, final)
    return student


def _count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))
