"""A phase of one fold's teacher (`data.folds` K >= 2): the teacher's phases again, on the
training and validation images but one fold of them, validated on that fold, in
`teacher/fold<k>/`. Each fold's teacher starts from weights of its own. The last phase of fold
k publishes `teacher_fold<k>.keras`; the last fold's also publishes the run's teacher: the
folds' ensemble, averaged in probability (teachers.py), which evaluation and export read as
one model, and the distillation learns from (distillation.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras

from teacher_student.config import Config
from teacher_student.models.precision import load_weights_from
from teacher_student.models.teacher import build_teacher
from teacher_student.run.checkpoints import CheckpointDir
from teacher_student.run.directory import TEACHER, RunDir
from teacher_student.training.steps.base import Execution, TrainingData, without_trunk_weights
from teacher_student.training.steps.teacher_phase import TeacherPhase
from teacher_student.training.teachers import ensemble


def fold_name(fold: int) -> str:
    """Fold `fold`'s teacher, as a run's model."""
    return f"teacher_fold{fold}"


class FoldPhase(TeacherPhase):
    def __init__(self, config: Config, run_dir: RunDir, index: int, fold: int):
        """Phase `index` (from 1) of fold `fold` (from 1)."""
        self.fold = fold
        self.weights_seed = fold  # each fold's teacher from initial weights of its own
        super().__init__(config, run_dir, index)
        if fold > 1:  # the same models as fold 1's phase, on other images
            self.same_as = f"fold1_{self.directory.name}"

    @property
    def name(self) -> str:
        return f"fold{self.fold}_{self.directory.name}"

    @property
    def title(self) -> str:
        return f"fold {self.fold} {self.phase.name}"

    def folder(self, index: int, name: str) -> CheckpointDir:
        return self.run_dir.teacher_phase(index, name, self.fold)

    def phase_label(self) -> str:
        return f"fold {self.fold}/{self.config.data.folds} {super().phase_label()}"

    def model_name(self) -> str:
        return TEACHER if self.fold == self.config.data.folds else fold_name(self.fold)

    def training_data(self, data: TrainingData) -> TrainingData:
        train, val = data.folds[self.fold - 1]
        return dataclasses.replace(data, train=train, val=val, train_with_unlabeled=None)

    def publish(self, execution: Execution) -> Path | None:
        if not self.last:
            return None
        own = self.publish_teacher(fold_name(self.fold), execution)
        if self.produces != TEACHER:
            return own
        return self.run_dir.save_model(folds_ensemble(self.config, self.run_dir, execution),
                                       TEACHER)


def folds_ensemble(config: Config, run_dir: RunDir, execution: Execution, temperature=1.0):
    """The folds' teachers, each with its saved weights, averaged in probability at
    `temperature`: one model answering as logits."""
    teachers = []
    for fold in range(1, config.data.folds + 1):
        teacher = build_teacher(without_trunk_weights(config.teacher), execution.policy)
        load_weights_from(teacher, run_dir.model_file(fold_name(fold)))
        # A name of its own within the ensemble, the same layers (and recorded structure)
        teachers.append(keras.Model(teacher.input, teacher.output, name=f"teacher{fold}"))
    return ensemble(teachers, temperature)
