"""The baseline: the same student, budget, schedule, augmentation and mixing as the
distillation, from the same initial weights, on the labels alone: what distillation is
measured against."""

from __future__ import annotations

from teacher_student.config import Config
from teacher_student.run.directory import STUDENT_SCRATCH, RunDir
from teacher_student.training.steps.base import Built, Execution, TrainingData
from teacher_student.training.steps.student import StudentStep
from teacher_student.training.trainee import Trainee
from teacher_student.words import counted


class Baseline(StudentStep):
    def __init__(self, config: Config, run_dir: RunDir):
        super().__init__(config, run_dir, run_dir.baseline, "baseline", STUDENT_SCRATCH)

    def build(self, execution: Execution, data: TrainingData) -> Built:
        distill = self.config.distill
        student = self.fresh_student(execution, data.seed)
        trainee = Trainee(student, distill.augment, distill.mix, data.seed,
                          flip=self.config.data.flip)
        return Built(trainee, student, self.optimizer(data.steps_per_epoch))

    def describe(self, built: Built) -> str:
        return (f"the student from scratch, {counted(self.config.distill.epochs, 'epoch')}, the "
                "distillation's budget" + (", in optimizer steps: its labeled images repeated "
                                           "as often as the unlabeled ones add"
                                           if self.config.unlabeled_images else ""))

    def training_data(self, data: TrainingData) -> TrainingData:
        return data.with_steps_of_unlabeled()
