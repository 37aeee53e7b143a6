"""What every step of the plan is: a `Step` (one training run with a checkpoint folder of its
own), the `Execution` it runs under, the `TrainingData` it is given and the `Built` models it
makes.

A kind of step is a subclass in a module of its own (teacher_phase.py, distillation.py,
baseline.py); `plan_steps` (in this package's `__init__`) makes the list. The runner
(runner.py) and the preflight (preflight.py) both get a step's compiled models from
`Step.compiled`, so they build and compile alike.

Every step builds fresh models from a seed of its own (the data seed), so what it starts from
does not depend on which other steps ran, or were checked, in the same process.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from teacher_student.data.inputs import Inputs
from teacher_student.models.precision import PrecisionPolicy, load_weights_from
from teacher_student.run.checkpoints import CheckpointDir, latest_best, unreadable_model
from teacher_student.run.directory import RunDir
from teacher_student.training.trainee import compile_trainee
from teacher_student.training.trainer import load_progress

# The commands that train steps, in the order a run takes them: each step says which trains it
# (`Step.job`).
TRAIN_TEACHER, DISTILL = "train-teacher", "distill"
JOBS = (TRAIN_TEACHER, DISTILL)


@dataclass(frozen=True)
class Execution:
    """How a step runs: its precision and XLA setting. The preflight may give one step another
    than the run's, and says why in `fallback`."""
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
    folds: tuple = ()  # data.folds K: each fold's (training, validation) batches

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train)

    def with_unlabeled(self) -> TrainingData:
        """The data a distillation trains on: with the unlabeled images, when there are any."""
        if self.train_with_unlabeled is None:
            return self
        return dataclasses.replace(self, train=self.train_with_unlabeled)

    def with_steps_of_unlabeled(self) -> TrainingData:
        """The labeled images alone, as many an epoch as `with_unlabeled` has (repeated): a
        baseline then gets the distillation's budget in optimizer steps, its schedule
        completed over them."""
        if self.train_with_unlabeled is None:
            return self
        count = len(self.train_with_unlabeled.rows)
        return dataclasses.replace(self, train=self.train.stretched(count))


@dataclass(frozen=True)
class Built:
    """A step's fresh models: what trains (a Trainee), what is saved and deployed (its
    classifier), the optimizer (loss scaling is added at compile time), and the frozen models
    it learns from (a distillation's own teacher), whose weights `Step.prepare` loads."""
    trainee: keras.Model
    deployable: keras.Model
    optimizer: keras.optimizers.Optimizer
    teachers: tuple[keras.Model, ...] = ()


class Step(ABC):
    """One training run of the plan.

    `build(execution, data)` makes fresh models; `prepare(built, resuming)` loads the weights
    they need before the first epoch (the teacher to learn from; an earlier phase's best
    weights unless the step resumes from its own checkpoint); `describe(built)` is the line
    printed when it starts; `callbacks()` are its own (early stopping, TensorBoard);
    `publish(execution)`, once the step is done, writes the run's model `produces` (the last
    teacher phase publishes the teacher). `needs` are the run's models that must exist before
    it runs; `check(inputs)` raises a ConfigError, before anything trains, for what else it
    needs and lacks (a listed teacher of other classes, or one that learnt from this run's test
    images). `training_data(data)` is what it trains on. `job` is the command that
    trains it.
    """
    job: str
    produces: str | None = None  # a RunDir model name
    needs: tuple[str, ...] = ()
    # The step whose preflight check stands for this one's (the same models on other images:
    # a later fold's phase), or None
    same_as: str | None = None

    def __init__(self, directory: CheckpointDir, label: str, epochs: int):
        self.directory = directory
        self.label = label
        self.epochs = epochs

    @property
    def name(self) -> str:
        """The step's name in records (preflight.json, status.json): its folder's name."""
        return self.directory.name

    @abstractmethod
    def build(self, execution: Execution, data: TrainingData) -> Built:
        """Fresh models under `execution`'s precision."""

    @abstractmethod
    def describe(self, built: Built) -> str:
        """What the step trains, in one line."""

    def prepare(self, built: Built, resuming: bool) -> None:
        """Loads what `built` needs before its first epoch; nothing by default."""
        return None

    def callbacks(self) -> list:
        return []

    def publish(self, execution: Execution) -> Path | None:
        """The run's model `produces`, written once the step is done; None: it makes none."""
        return None

    def is_published(self) -> bool:
        """Whether `publish` completed after the step was done, and its model can be read."""
        if not self.directory.is_published():
            return False
        return self.produces is None or unreadable_model(
            self.run_dir.model_file(self.produces)) is None

    def check(self, inputs: Inputs) -> None:
        """A ConfigError for what the step needs and the config or the job's data lack."""
        return None

    def training_data(self, data: TrainingData) -> TrainingData:
        return data

    def compiled(self, execution: Execution, data: TrainingData) -> Built:
        """Fresh models, compiled: a `trainable` change and a `GradientGate` take effect only
        then, and the optimizer gets loss scaling as the policy says."""
        built = self.build(execution, data)
        compile_trainee(built.trainee, built.optimizer, execution.policy,
                        execution.jit_compile, data.steps_per_execution)
        return built

    def epochs_left(self) -> int:
        if self.directory.is_done():
            return 0
        try:
            return max(self.epochs - load_progress(self.directory).epochs_done, 0)
        except (OSError, ValueError):  # unreadable: recovery sets it aside before training
            return self.epochs


def seeded(seed: int, build, *args) -> keras.Model:
    """`build(*args)` from `seed`: the same initial weights whatever ran before."""
    keras.utils.set_random_seed(seed)
    return build(*args)


def publish_best(run_dir: RunDir, name: str, model: keras.Model,
                 directories: Sequence[CheckpointDir]) -> Path:
    """Saves the run's model `name`: `model` (fresh) with the best weights of the latest of
    `directories` that has some."""
    best = latest_best(directories)
    if best:
        load_weights_from(model, best)
    return run_dir.save_model(model, name)


def without_trunk_weights(teacher_config):
    """The teacher's config for a model that gets the run's own weights right after it is
    built: its trunk needs no pretrained ones (no download, offline too)."""
    return dataclasses.replace(teacher_config, trunk_weights=None)
