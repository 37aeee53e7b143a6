"""What the two students' steps share, so that they are compared alike: the distillation's
budget, schedule and early stopping, and publishing the best epoch's student."""

from __future__ import annotations

from pathlib import Path

from teacher_student.config import Config
from teacher_student.models.student import build_student, check_student_config
from teacher_student.run.checkpoints import CheckpointDir
from teacher_student.run.directory import RunDir
from teacher_student.training.steps.base import (
    DISTILL,
    Execution,
    Step,
    publish_best,
    seeded,
)
from teacher_student.training.trainer import step_callbacks, step_optimizer


class StudentStep(Step):
    job = DISTILL

    def __init__(self, config: Config, run_dir: RunDir, directory: CheckpointDir, label: str,
                 produces: str):
        super().__init__(directory, label, config.distill.epochs)
        self.config, self.run_dir, self.produces = config, run_dir, produces

    def fresh_student(self, execution: Execution, seed: int):
        """The student from `seed`: the distilled one and the baseline start alike."""
        return seeded(seed, build_student, self.config.student, execution.policy)

    def optimizer(self, steps_per_epoch: int):
        return step_optimizer(self.config.distill, steps_per_epoch)

    def callbacks(self) -> list:
        """Early stopping by `distill.early_stopping_patience`, alike for both students, and
        TensorBoard logs."""
        return step_callbacks(self.directory, self.config.distill.early_stopping_patience)

    def publish(self, execution: Execution) -> Path:
        student = build_student(self.config.student, execution.policy)
        return publish_best(self.run_dir, self.produces, student, [self.directory])

    def check(self, inputs) -> None:
        check_student_config(self.config.student)
