"""A phase of the teacher's training (`phases` of the config): its trainable parts, learning
rate, schedule and augmentation. Each phase starts from the best weights of the latest phase
before it that has some; the last publishes the teacher."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from teacher_student.config import Config
from teacher_student.models.freezing import set_trainable, trainable_parts
from teacher_student.models.precision import load_weights_from
from teacher_student.models.teacher import build_teacher, check_teacher_config
from teacher_student.run.checkpoints import latest_best
from teacher_student.run.directory import TEACHER, RunDir
from teacher_student.training.steps.base import (
    TRAIN_TEACHER,
    Built,
    Execution,
    Step,
    TrainingData,
    publish_best,
    seeded,
    without_trunk_weights,
)
from teacher_student.training.trainee import Trainee
from teacher_student.training.trainer import step_callbacks, step_optimizer


class TeacherPhase(Step):
    job = TRAIN_TEACHER

    def __init__(self, config: Config, run_dir: RunDir, index: int):
        """Phase `index` (from 1) of `config.phases`."""
        self.phase = config.phases[index - 1]
        count = len(config.phases)
        super().__init__(run_dir.teacher_phase(index, self.phase.name),
                         f"teacher phase {index}/{count} '{self.phase.name}'", self.phase.epochs)
        self.config, self.run_dir, self.index = config, run_dir, index
        self.earlier = [run_dir.teacher_phase(i, phase.name)
                        for i, phase in enumerate(config.phases[:index - 1], start=1)]
        self.produces = TEACHER if index == count else None

    def build(self, execution: Execution, data: TrainingData) -> Built:
        teacher = seeded(data.seed, build_teacher, self.config.teacher, execution.policy)
        set_trainable(teacher, self.phase.trainable, self.phase.unfreeze_top)
        trainee = Trainee(teacher, self.phase.augment, seed=data.seed + 10 * self.index,
                          flip=self.config.data.flip)
        return Built(trainee, teacher, step_optimizer(self.phase, data.steps_per_epoch))

    def prepare(self, built: Built, resuming: bool) -> None:
        best = latest_best(self.earlier)
        if best and not resuming:
            load_weights_from(built.deployable, best)

    def describe(self, built: Built) -> str:
        phase, parts = self.phase, trainable_parts(built.deployable)
        trainable = int(sum(np.prod(w.shape) for w in built.deployable.trainable_weights))
        return (f"{phase.epochs} epochs, lr {phase.learning_rate} ({phase.schedule}), "
                f"trunk parts training {sum(parts)}/{len(parts)}, "
                f"{trainable:,} trainable parameters, augment {phase.augment}"
                + (" with flips" if self.config.data.flip and phase.augment != "none" else ""))

    def callbacks(self) -> list:
        return step_callbacks(self.directory, self.phase.early_stopping_patience,
                               self.phase.reduce_lr_patience)

    def publish(self, execution: Execution) -> Path | None:
        if self.produces is None:
            return None
        teacher = build_teacher(without_trunk_weights(self.config.teacher), execution.policy)
        return publish_best(self.run_dir, TEACHER, teacher, [*self.earlier, self.directory])

    def check(self, inputs) -> None:
        check_teacher_config(self.config.teacher)
