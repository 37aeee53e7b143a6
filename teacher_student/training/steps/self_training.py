"""A self-training round (`teacher.self_training`): after the teacher's phases, a fresh network
of the teacher's architecture learns the labels and the best teacher so far's soft labels of
every training image, and of the unlabeled images (`data.unlabeled`), which it sees noised
(`augment`, its dropout, stochastic depth) where the teacher sees them clean (Noisy
Student, Xie et al., CVPR 2020; without unlabeled images, a born-again generation, Furlanello
et al., ICML 2018). The round's network replaces the teacher only if its validation accuracy
is higher: `self_training.json` records each one's and which teaches the student.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

from teacher_student import atomic
from teacher_student.config import Config
from teacher_student.models.precision import load_weights_from
from teacher_student.models.teacher import build_teacher
from teacher_student.run.checkpoints import CheckpointDir
from teacher_student.run.directory import TEACHER, RunDir
from teacher_student.training.distiller import Distiller
from teacher_student.training.methods import kd
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
from teacher_student.training.trainer import make_optimizer, step_callbacks
from teacher_student.words import counted


def round_name(round_: int) -> str:
    return f"teacher_round{round_}"


class SelfTrainingRound(Step):
    job = TRAIN_TEACHER

    def __init__(self, config: Config, run_dir: RunDir, round_: int,
                 phases: Sequence[CheckpointDir]):
        """Round `round_` (from 1); `phases`: the teacher's phases, the latest that trained
        holding the teacher's validation accuracy (its best weights are the teacher's)."""
        self.config, self.run_dir, self.round = config, run_dir, round_
        self.settings = config.teacher.self_training
        super().__init__(run_dir.teacher_round(round_),
                         f"self-training round {round_}/{self.settings.rounds}",
                         self.settings.epochs)
        self.produces = round_name(round_)
        self.needs = (TEACHER, *(round_name(k) for k in range(1, round_)))
        self.phases = tuple(phases)

    @property
    def title(self) -> str:
        """The round's name in the teacher's curves."""
        return f"round {self.round}"

    def build(self, execution: Execution, data: TrainingData) -> Built:
        settings, policy = self.settings, execution.policy
        seed = data.seed + 1000 * self.round  # other initial weights than the teacher's
        network = seeded(seed, build_teacher, self.config.teacher, policy,
                         settings.stochastic_depth)
        teacher = build_teacher(without_trunk_weights(self.config.teacher), policy)
        # Plain KD at the round's own alpha and temperature, whatever the student's method.
        soft_labels = dataclasses.replace(self.config.distill, alpha=settings.alpha,
                                          temperature=settings.temperature,
                                          standardize_logits=False, kd=kd.Section())
        trainee = Distiller(teacher, network, kd.terms(soft_labels, data.steps_per_epoch),
                            settings.alpha, settings.augment, seed=seed, policy=policy,
                            flip=self.config.data.flip, clean_teacher=True,
                            name=f"round{self.round}")
        optimizer = make_optimizer("adam", settings.learning_rate, "cosine",
                                   settings.epochs * data.steps_per_epoch)
        return Built(trainee, network, optimizer, teachers=(teacher,))

    def prepare(self, built: Built, resuming: bool) -> None:
        load_weights_from(built.teachers[0], self.run_dir.model_file(self.teaching()))

    def teaching(self) -> str:
        """The best teacher of the rounds before this one (the teacher, at first)."""
        return best_teacher(self.run_dir, self.accuracies(self.round - 1))

    def accuracies(self, rounds: int) -> dict[str, float]:
        """The validation accuracy of the teacher and of the first `rounds` rounds' networks."""
        trained = [phase.done_summary()["best_val_accuracy"] for phase in self.phases]
        found = {TEACHER: next(value for value in reversed(trained) if math.isfinite(value))}
        for k in range(1, rounds + 1):
            found[round_name(k)] = self.run_dir.teacher_round(k).done_summary()[
                "best_val_accuracy"]
        return found

    def describe(self, built: Built) -> str:
        settings = self.settings
        return (f"a fresh network of the teacher's, {counted(settings.epochs, 'epoch')}, "
                f"learning the labels (alpha {settings.alpha}) and {self.teaching()}'s soft "
                f"labels at temperature {settings.temperature} of clean images, seeing them "
                f"with augment {settings.augment}"
                + (f", stochastic depth {settings.stochastic_depth:g}"
                   if settings.stochastic_depth else "")
                + (f", with the unlabeled images of {self.config.data.unlabeled}"
                   if self.config.data.unlabeled else ""))

    def callbacks(self) -> list:
        return step_callbacks(self.directory)

    def training_data(self, data: TrainingData) -> TrainingData:
        return data.with_unlabeled()

    def publish(self, execution: Execution) -> Path:
        teacher = build_teacher(without_trunk_weights(self.config.teacher), execution.policy)
        path = publish_best(self.run_dir, self.produces, teacher, [self.directory])
        accuracies = self.accuracies(self.round)
        best = best_teacher(self.run_dir, accuracies)
        atomic.write_json(self.run_dir.self_training_file,
                          {"val_accuracy": accuracies, "teaches": best})
        before = self.teaching()
        print(f"{self.label}: validation accuracy {accuracies[self.produces]:.2%} against "
              f"{accuracies[before]:.2%} for {before}: "
              + (f"{self.produces} is the teacher now" if best == self.produces else
                 f"{before} stays the teacher"))
        return path


def best_teacher(run_dir: RunDir, accuracies: dict[str, float] | None = None) -> str:
    """Which of the teacher and its rounds' networks teaches: the highest validation accuracy
    (an earlier one on a tie); without `accuracies`, as `self_training.json` recorded it (the
    teacher when there were no rounds)."""
    if accuracies is None:
        if not run_dir.self_training_file.exists():
            return TEACHER
        return json.loads(run_dir.self_training_file.read_text())["teaches"]
    best = max(accuracies.values())
    return next(name for name, value in accuracies.items() if value == best)
