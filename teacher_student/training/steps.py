"""The plan of a run: every step that trains a model, in order, written once.

A `Step` is one training run with a checkpoint folder of its own: a teacher phase, the
distillation, the baseline. `plan_steps` makes the list from the config and the run directory;
the clock (timekeeping.py) reads each step's label and epochs, the preflight (preflight.py)
builds and checks each step, and the runner (runner.py) trains them in one loop. A new kind of
step is one more function here that returns a `Step`.

Every step builds fresh models from a seed of its own (the data seed), so what it starts from
does not depend on which other steps ran, or were checked, in the same process; the distilled
and the baseline student start from the same weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from teacher_student.config import Config, ConfigError
from teacher_student.models.freezing import set_trainable, trainable_parts
from teacher_student.models.precision import PrecisionPolicy, load_weights_from
from teacher_student.models.student import build_student, check_student_config
from teacher_student.models.teacher import build_teacher, check_teacher_config
from teacher_student.run.directory import (
    STUDENT_DISTILLED,
    STUDENT_SCRATCH,
    TEACHER,
    CheckpointDir,
    RunDir,
    latest_best,
)
from teacher_student.training.distiller import Distiller, method_of
from teacher_student.training.teachers import check_teachers, ensemble, listed_teachers
from teacher_student.training.trainee import Trainee
from teacher_student.training.trainer import load_progress, phase_callbacks, phase_optimizer

# Logit standardization (Sun et al. 2024) needs this many classes to keep any relation.
MIN_CLASSES_TO_STANDARDIZE = 4


@dataclass(frozen=True)
class Settings:
    """How a step runs. The preflight may give one step another precision or XLA setting than
    the run's, and says why in `fallback`."""
    policy: PrecisionPolicy
    jit_compile: bool
    fallback: str = ""


@dataclass(frozen=True)
class TrainingData:
    train: object  # batches of (uint8 images, labels[, sample weights]); see data/batches.py
    val: object
    seed: int = 0  # of the initial weights, and of the augmentation and mixing streams
    steps_per_execution: int = 1
    # The training images with the unlabeled ones shuffled in (distill.unlabeled), or None
    train_with_unlabeled: object = None

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train)

    def with_unlabeled(self) -> TrainingData:
        """The data a distillation trains on: with the unlabeled images, when there are any."""
        if self.train_with_unlabeled is None:
            return self
        return dataclasses.replace(self, train=self.train_with_unlabeled)


@dataclass(frozen=True)
class Built:
    """A step's fresh models: what trains (a Trainee), what is saved and deployed (its
    classifier), the optimizer (loss scaling is added at compile time), and the frozen models
    it learns from (a distillation's teacher), whose weights `Step.prepare` loads."""
    trainee: keras.Model
    deployable: keras.Model
    optimizer: keras.optimizers.Optimizer
    teachers: tuple[keras.Model, ...] = ()


def _nothing(built: Built, resuming: bool) -> None:
    pass


def _nothing_to_check(class_names: Sequence[str]) -> None:
    pass


def _labeled(data: TrainingData) -> TrainingData:
    return data


@dataclass(frozen=True)
class Step:
    """One training run of the plan.

    `build(settings, data)` makes fresh models under a precision; `prepare(built, resuming)`
    loads the weights they need before the first epoch (the teacher to learn from; an earlier
    phase's best weights unless the step resumes from its own checkpoint); `describe(built)` is
    the line printed when it starts; `callbacks()` are its own (early stopping, TensorBoard);
    `publish(settings)`, once the step is done, writes the run's model `produces` (the last
    teacher phase publishes the teacher). `needs` are the run's models that must exist before
    the step runs; `check(class_names)` raises a ConfigError, before anything trains, for what
    else it needs and lacks (a listed teacher of other classes). `training_data(data)` is what
    it trains on: the labeled images, or with unlabeled ones too (the distillation).
    """
    directory: CheckpointDir
    label: str
    epochs: int
    produces: str  # a RunDir model name
    build: Callable[[Settings, TrainingData], Built]
    describe: Callable[[Built], str]
    prepare: Callable[[Built, bool], None] = _nothing
    callbacks: Callable[[], list] = list
    publish: Callable[[Settings], Path] | None = None
    needs: tuple[str, ...] = field(default=())
    check: Callable[[Sequence[str]], None] = _nothing_to_check
    training_data: Callable[[TrainingData], TrainingData] = _labeled

    @property
    def name(self) -> str:
        """The step's name in records (preflight.json, status.json): its folder's name."""
        return self.directory.name

    def epochs_left(self) -> int:
        if self.directory.is_done():
            return 0
        try:
            return max(self.epochs - load_progress(self.directory).epochs_done, 0)
        except (OSError, ValueError):  # unreadable: recovery sets it aside before training
            return self.epochs


def plan_steps(config: Config, run_dir: RunDir, distilled: bool = True) -> list[Step]:
    """Every step of the run, in order: the teacher's phases, the distillation (unless
    `distilled` is false: a benchmark's baseline alone), the baseline when the config asks."""
    steps = teacher_phases(config, run_dir)
    if distilled:
        steps.append(distillation(config, run_dir))
    if config.distill.baseline:
        steps.append(baseline(config, run_dir))
    return steps


def teacher_phases(config: Config, run_dir: RunDir) -> list[Step]:
    """One step per phase; each starts from the best weights of the latest phase before it
    that has some, and the last publishes the teacher."""
    directories = [run_dir.teacher_phase(index, phase.name)
                   for index, phase in enumerate(config.phases, start=1)]
    steps = []
    for index, (phase, directory) in enumerate(zip(config.phases, directories), start=1):

        def build(settings, data, phase=phase, index=index):
            teacher = _seeded(data, build_teacher, config.teacher, settings.policy)
            set_trainable(teacher, phase.trainable, phase.unfreeze_top)
            return Built(Trainee(teacher, phase.augment, seed=data.seed + 10 * index), teacher,
                         phase_optimizer(phase, data.steps_per_epoch))

        def prepare(built, resuming, earlier=tuple(directories[:index - 1])):
            best = latest_best(earlier)
            if best and not resuming:
                load_weights_from(built.deployable, best)

        def describe(built, phase=phase):
            parts = trainable_parts(built.deployable)
            return (f"{phase.epochs} epochs, lr {phase.learning_rate} ({phase.schedule}), "
                    f"trunk parts training {sum(parts)}/{len(parts)}, "
                    f"{_count(built.deployable.trainable_weights):,} trainable parameters, "
                    f"augment {phase.augment}")

        last = index == len(config.phases)
        steps.append(Step(
            directory, f"teacher phase {index}/{len(config.phases)} '{phase.name}'",
            phase.epochs, TEACHER, build, describe, prepare,
            callbacks=lambda phase=phase, directory=directory: phase_callbacks(
                directory, phase.early_stopping_patience, phase.reduce_lr_patience),
            publish=_publisher(TEACHER, lambda policy: build_teacher(
                _without_trunk_weights(config), policy), directories, run_dir) if last else None,
            check=lambda class_names: check_teacher_config(config.teacher)))
    return steps


def distillation(config: Config, run_dir: RunDir) -> Step:
    """The student trained on the labels and on its teachers (distiller.py): the run's own
    teacher, or the ensemble of those `distill.teachers` lists (teachers.py); on the training
    images, and the unlabeled ones `distill.unlabeled` lists (the teachers' terms alone)."""
    distill = config.distill
    own = not distill.teachers

    def build(settings, data):
        student = _seeded(data, build_student, config.student, settings.policy)
        teachers = ([build_teacher(_without_trunk_weights(config), settings.policy)] if own
                    else listed_teachers(distill.teachers, settings.policy))
        distiller = Distiller(ensemble(teachers, distill.temperature), student,
                              method_of(distill, data.steps_per_epoch), distill.alpha,
                              distill.augment, distill.mix, data.seed, settings.policy,
                              distill.teacher_feature, distill.student_feature)
        return Built(distiller, student, phase_optimizer(distill, data.steps_per_epoch),
                     teachers=tuple(teachers) if own else ())

    def prepare(built, resuming):
        if own:  # listed teachers come with their weights
            load_weights_from(built.teachers[0], run_dir.model_file(TEACHER))

    def describe(built):
        teacher = built.trainee.teacher
        return (f"{distill.method}, {distill.epochs} epochs, alpha {distill.alpha}, "
                f"temperature {distill.temperature}"
                + (", standardized logits" if distill.standardize_logits else "")
                + f", mix {distill.mix}, lr {distill.learning_rate} ({distill.schedule})"
                + (f", from {len(distill.teachers)} teachers" if len(distill.teachers) > 1
                   else "")
                + (f", with the unlabeled images of {distill.unlabeled}" if distill.unlabeled
                   else "")
                + f"; the student has {built.deployable.count_params():,} parameters, "
                  f"{teacher.count_params() / built.deployable.count_params():.1f}x fewer "
                  "than the teacher" + ("s" if len(distill.teachers) > 1 else ""))

    def check(class_names):
        check_student_config(config.student)
        check_teachers(config, class_names)
        if distill.standardize_logits and len(class_names) < MIN_CLASSES_TO_STANDARDIZE:
            raise ConfigError(
                f"distill.standardize_logits: {len(class_names)} classes are too few: the "
                f"standardized logits of fewer than {MIN_CLASSES_TO_STANDARDIZE} classes keep "
                "almost nothing of the teacher's relations between them; set it to false")

    return Step(run_dir.distillation, "distillation", distill.epochs, STUDENT_DISTILLED,
                build, describe, prepare, callbacks=_student_callbacks(config, run_dir),
                publish=_student_publisher(STUDENT_DISTILLED, config, run_dir.distillation,
                                           run_dir),
                needs=(TEACHER,) if own else (), check=check,
                training_data=TrainingData.with_unlabeled)


def baseline(config: Config, run_dir: RunDir) -> Step:
    """The same student, budget, schedule, augmentation and mixing as the distillation, from
    the same initial weights, on the labels alone: what distillation is measured against."""
    distill = config.distill

    def build(settings, data):
        student = _seeded(data, build_student, config.student, settings.policy)
        return Built(Trainee(student, distill.augment, distill.mix, data.seed), student,
                     phase_optimizer(distill, data.steps_per_epoch))

    def describe(built):
        return (f"the student from scratch, {distill.epochs} epochs, the distillation's "
                "budget")

    return Step(run_dir.baseline, "baseline", distill.epochs, STUDENT_SCRATCH, build,
                describe, callbacks=_student_callbacks(config, run_dir, baseline=True),
                publish=_student_publisher(STUDENT_SCRATCH, config, run_dir.baseline, run_dir),
                check=lambda class_names: check_student_config(config.student))


def _student_callbacks(config: Config, run_dir: RunDir, baseline: bool = False):
    """Early stopping by `distill.early_stopping_patience`, alike for both students, and
    TensorBoard logs."""
    directory = run_dir.baseline if baseline else run_dir.distillation
    return lambda: phase_callbacks(directory, config.distill.early_stopping_patience)


def _student_publisher(name: str, config: Config, directory: CheckpointDir, run_dir: RunDir):
    return _publisher(name, lambda policy: build_student(config.student, policy), [directory],
                      run_dir)


def _publisher(name: str, build: Callable[[PrecisionPolicy], keras.Model],
               directories: Sequence[CheckpointDir], run_dir: RunDir):
    """Saves the run's model `name`: a fresh one with the best weights of the latest of
    `directories` that has some."""
    def publish(settings: Settings) -> Path:
        model = build(settings.policy)
        best = latest_best(directories)
        if best:
            load_weights_from(model, best)
        return run_dir.save_model(model, name)
    return publish


def _without_trunk_weights(config: Config):
    """The teacher's config for a model that gets the run's own weights right after it is
    built: its trunk needs no pretrained ones (no download, offline too)."""
    return dataclasses.replace(config.teacher, trunk_weights=None)


def _seeded(data: TrainingData, build, *args) -> keras.Model:
    """`build(*args)` from the run's seed: the same initial weights whatever ran before."""
    keras.utils.set_random_seed(data.seed)
    return build(*args)


def _count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))
