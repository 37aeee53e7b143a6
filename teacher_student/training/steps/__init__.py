"""The plan of a run: every step that trains a model, in order, each a `Step` (base.py) of one
kind, one module per kind:

    teacher_phase.TeacherPhase    a phase of the teacher (one per entry of `phases`)
    teacher_fold.FoldPhase        a phase of one fold's teacher (data.folds K: K teachers)
    self_training.SelfTrainingRound   a round of self-training after the teacher's phases
    distillation.Distillation     the student learning from its teacher(s)
    baseline.Baseline             the same student from scratch, the distillation's budget

The clock (timekeeping.py) reads each step's label and epochs, the preflight (preflight.py)
checks each, the runner (runner.py) trains them in one loop, and a job trains the steps whose
`job` it is. A new kind of step is a module here and a line in `plan_steps`.
"""

from __future__ import annotations

from teacher_student.config import Config
from teacher_student.run.directory import RunDir
from teacher_student.training.steps.base import (
    DISTILL,
    JOBS,
    TRAIN_TEACHER,
    Built,
    Execution,
    Step,
    TrainingData,
)
from teacher_student.training.steps.baseline import Baseline
from teacher_student.training.steps.distillation import Distillation
from teacher_student.training.steps.self_training import SelfTrainingRound
from teacher_student.training.steps.teacher_fold import FoldPhase
from teacher_student.training.steps.teacher_phase import TeacherPhase

__all__ = ["DISTILL", "JOBS", "TRAIN_TEACHER", "Built", "Execution", "Step", "TrainingData",
           "plan_steps"]


def plan_steps(config: Config, run_dir: RunDir, distilled: bool = True) -> list[Step]:
    """Every step of the run, in order: the teacher's phases (each fold's, with folds), its
    self-training rounds, the distillation (unless `distilled` is false: a benchmark's
    baseline alone), the baseline when the config asks."""
    phases = range(1, len(config.phases) + 1)
    folds = range(1, config.data.folds + 1) if config.data.folds > 1 else ()
    steps: list[Step] = ([FoldPhase(config, run_dir, index, fold)
                          for fold in folds for index in phases] if folds else
                         [TeacherPhase(config, run_dir, index) for index in phases])
    phase_folders = [step.directory for step in steps]
    steps += [SelfTrainingRound(config, run_dir, k, phase_folders)
              for k in range(1, config.teacher.self_training.rounds + 1)]
    if distilled:
        steps.append(Distillation(config, run_dir))
    if config.distill.baseline:
        steps.append(Baseline(config, run_dir))
    return steps
