"""The distillation: the student trained on the labels and on its teachers (distiller.py, by
the method of `distill.method`, training/methods/): the run's own teacher (the best of its
self-training rounds), or the ensemble of those `distill.teachers` lists (teachers.py); on the
training images, and the unlabeled ones `data.unlabeled` or `distill.unlabeled` lists (the
teachers' terms alone)."""

from __future__ import annotations

from pathlib import Path

import keras

from teacher_student.config import Config, ConfigError
from teacher_student.models.precision import load_weights_from
from teacher_student.models.teacher import build_teacher
from teacher_student.run.directory import STUDENT_DISTILLED, TEACHER, RunDir
from teacher_student.training.distiller import Distiller, method_terms
from teacher_student.training.steps.base import (
    Built,
    Execution,
    TrainingData,
    without_trunk_weights,
)
from teacher_student.training.steps.self_training import best_teacher, round_name
from teacher_student.training.steps.student import StudentStep
from teacher_student.training.steps.teacher_fold import fold_name
from teacher_student.training.teachers import check_teachers, ensemble, listed_teachers
from teacher_student.words import counted

# Logit standardization (Sun et al. 2024) needs this many classes to keep any relation.
MIN_CLASSES_TO_STANDARDIZE = 4


class Distillation(StudentStep):
    def __init__(self, config: Config, run_dir: RunDir):
        super().__init__(config, run_dir, run_dir.distillation, "distillation",
                         STUDENT_DISTILLED)
        self.own_teacher = not config.distill.teachers
        rounds = [round_name(k) for k in range(1, config.teacher.self_training.rounds + 1)]
        self.needs = (TEACHER, *rounds) if self.own_teacher else ()

    def own_teacher_files(self) -> list[Path]:
        """The run's own teacher's file (the best of its self-training rounds, with rounds);
        with folds, each fold's."""
        folds = self.config.data.folds
        names = ([best_teacher(self.run_dir)] if folds == 1 else
                 [fold_name(k) for k in range(1, folds + 1)])
        return [self.run_dir.model_file(name) for name in names]

    def build(self, execution: Execution, data: TrainingData) -> Built:
        distill, policy = self.config.distill, execution.policy
        student = self.fresh_student(execution, data.seed)
        teachers = (self._own_teachers(policy) if self.own_teacher
                    else listed_teachers(distill.teachers, policy,
                                         self.config.student.input_shape))
        distiller = Distiller(ensemble(teachers, distill.temperature), student,
                              method_terms(distill, data.steps_per_epoch), distill.alpha,
                              distill.augment, distill.mix, data.seed, policy,
                              flip=self.config.data.flip)
        return Built(distiller, student, self.optimizer(data.steps_per_epoch),
                     teachers=tuple(teachers) if self.own_teacher else ())

    def _own_teachers(self, policy) -> list[keras.Model]:
        """Fresh teachers to load the run's own into (`prepare`): one, or one per fold."""
        teachers = [build_teacher(without_trunk_weights(self.config.teacher), policy)
                    for _ in self.own_teacher_files()]
        if len(teachers) == 1:
            return teachers
        return [keras.Model(teacher.input, teacher.output, name=f"teacher{fold}")
                for fold, teacher in enumerate(teachers, start=1)]

    def prepare(self, built: Built, resuming: bool) -> None:
        if self.own_teacher:  # listed teachers come with their weights
            for teacher, file in zip(built.teachers, self.own_teacher_files()):
                load_weights_from(teacher, file)

    def describe(self, built: Built) -> str:
        distill, student = self.config.distill, built.deployable
        teachers = len(distill.teachers) or len(self.own_teacher_files())
        several = teachers > 1
        return (f"{distill.method}, {counted(distill.epochs, 'epoch')}, alpha {distill.alpha}, "
                f"temperature {distill.temperature}"
                + (", standardized logits" if distill.standardize_logits else "")
                + f", mix {distill.mix}, lr {distill.learning_rate} ({distill.schedule})"
                + (f", from {teachers} teachers" if several and distill.teachers else "")
                + (f", from the {teachers} folds' teachers" if several and self.own_teacher
                   else "")
                + (f", from {best_teacher(self.run_dir)}"
                   if self.config.teacher.self_training.rounds and self.own_teacher else "")
                + (f", with the unlabeled images of {self.config.unlabeled_images}"
                   if self.config.unlabeled_images else "")
                + "; " + _sizes(student.count_params(), built.trainee.teacher.count_params(),
                                "the teachers" if several else "the teacher"))

    def check(self, inputs) -> None:
        super().check(inputs)
        check_teachers(self.config, inputs)
        classes = len(inputs.class_names)
        if self.config.distill.standardize_logits and classes < MIN_CLASSES_TO_STANDARDIZE:
            raise ConfigError(
                f"distill.standardize_logits: {classes} classes are too few: the "
                f"standardized logits of fewer than {MIN_CLASSES_TO_STANDARDIZE} classes keep "
                "almost nothing of the teacher's relations between them; set it to false")

    def training_data(self, data: TrainingData) -> TrainingData:
        return data.with_unlabeled()


def _sizes(student: int, teacher: int, teachers: str) -> str:
    """The student's size against its teacher's: `111,000 parameters, 12.3x fewer than the
    teacher`, and a warning where the student is the larger."""
    if student <= teacher:
        return f"the student has {student:,} parameters, {teacher / student:.1f}x fewer than " \
               f"{teachers}"
    return (f"the student has {student:,} parameters, {student / teacher:.1f}x more than "
            f"{teachers}: warning, distillation is for a smaller student (student.trunk, "
            "student.width_multiplier)")
