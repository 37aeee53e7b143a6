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
from teacher_student.run.checkpoints import CheckpointDir, latest_best
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
from teacher_student.words import counted


class TeacherPhase(Step):
    job = TRAIN_TEACHER
    weights_seed = 0  # added to the data seed for the teacher's initial weights

    def __init__(self, config: Config, run_dir: RunDir, index: int):
        """Phase `index` (from 1) of `config.phases`."""
        self.config, self.run_dir, self.index = config, run_dir, index
        self.phase = config.phases[index - 1]
        super().__init__(self.folder(index, self.phase.name), self.phase_label(),
                         self.phase.epochs)
        self.earlier = [self.folder(i, phase.name)
                        for i, phase in enumerate(config.phases[:index - 1], start=1)]
        self.last = index == len(config.phases)
        self.produces = self.model_name() if self.last else None

    def folder(self, index: int, name: str) -> CheckpointDir:
        return self.run_dir.teacher_phase(index, name)

    def phase_label(self) -> str:
        return f"teacher phase {self.index}/{len(self.config.phases)} '{self.phase.name}'"

    @property
    def title(self) -> str:
        """The phase's name in the teacher's curves."""
        return self.phase.name

    def model_name(self) -> str:
        """The run's model the last phase publishes."""
        return TEACHER

    def build(self, execution: Execution, data: TrainingData) -> Built:
        seed = data.seed + self.weights_seed
        teacher = seeded(seed, build_teacher, self.config.teacher, execution.policy)
        set_trainable(teacher, self.phase.trainable, self.phase.unfreeze_top)
        phase = self.phase
        trainee = Trainee(teacher, phase.augment, phase.mix, seed=seed + 10 * self.index,
                          flip=self.config.data.flip, erasing=phase.erasing,
                          label_smoothing=phase.label_smoothing)
        return Built(trainee, teacher, step_optimizer(self.phase, data.steps_per_epoch))

    def prepare(self, built: Built, resuming: bool) -> None:
        best = latest_best(self.earlier)
        if best and not resuming:
            load_weights_from(built.deployable, best)

    def describe(self, built: Built) -> str:
        phase, parts = self.phase, trainable_parts(built.deployable)
        trainable = int(sum(np.prod(w.shape) for w in built.deployable.trainable_weights))
        return (f"{counted(phase.epochs, 'epoch')}, lr {phase.learning_rate} ({phase.schedule}), "
                f"trunk parts training {sum(parts)}/{len(parts)}, "
                f"{trainable:,} trainable parameters, augment {phase.augment}"
                + (" with flips" if self.config.data.flip and phase.augment != "none" else "")
                + "".join(f", {words}" for words in recipe_words(phase)))

    def callbacks(self) -> list:
        return step_callbacks(self.directory, self.phase.early_stopping_patience,
                               self.phase.reduce_lr_patience)

    def publish(self, execution: Execution) -> Path | None:
        if not self.last:
            return None
        return self.publish_teacher(self.produces, execution)

    def publish_teacher(self, name: str, execution: Execution) -> Path:
        """The run's model `name`: the teacher with the best weights of its latest phase."""
        teacher = build_teacher(without_trunk_weights(self.config.teacher), execution.policy)
        return publish_best(self.run_dir, name, teacher, [*self.earlier, self.directory])

    def check(self, inputs) -> None:
        check_teacher_config(self.config.teacher)


def recipe_words(phase) -> list[str]:
    """What a teacher phase adds to its augmentation, in words."""
    words = []
    if phase.erasing:
        words.append(f"erasing {phase.erasing:g}")
    if phase.mix != "none":
        words.append(phase.mix)
    if phase.label_smoothing:
        words.append(f"label smoothing {phase.label_smoothing:g}")
    if phase.ema_momentum:
        words.append(f"weights averaged (EMA {phase.ema_momentum:g})")
    return words
