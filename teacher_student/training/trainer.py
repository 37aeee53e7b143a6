"""Resumable training: one `fit` per step, checkpointed every epoch, continued after a kill.

Each epoch leaves, in the step's `CheckpointDir` (run/checkpoints.py), a resume point (weights,
optimizer state, progress), `last.keras`, `best.keras` (best validation accuracy; ties go to the
lower loss) and `history.csv`; `done.json` marks the step finished.

The trainer receives built models and datasets; it builds neither. It imports only keras and
numpy, so it runs on every backend.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras

from teacher_student import atomic, interrupts
from teacher_student.config import DistillConfig, PhaseConfig
from teacher_student.data.batches import FollowEpochs
from teacher_student.errors import NonFiniteLoss, RunDirError
from teacher_student.models.precision import PrecisionPolicy, transfer_weights
from teacher_student.run.checkpoints import RESUME_PROGRESS as PROGRESS_FILE
from teacher_student.run.checkpoints import RESUME_STATE as STATE_FILE
from teacher_student.run.checkpoints import CheckpointDir
from teacher_student.training.plateau import DecayOnPlateau

MONITOR = "val_accuracy"
KEEP_RESUME_POINTS = 2  # the one before the newest stands in when the newest cannot be read

@dataclass
class Progress:
    epochs_done: int = 0
    history: list[dict] = field(default_factory=list)
    best: float = -math.inf
    best_loss: float = math.inf  # breaks ties of `best`
    precision: str = ""
    best_epoch: int = 0


def make_optimizer(kind: str, learning_rate: float, schedule: str, decay_steps: int,
                   weight_decay: float = 0.0,
                   ema_momentum: float = 0.0) -> keras.optimizers.Optimizer:
    """`ema_momentum` > 0: the optimizer also keeps a moving average of the weights (Keras'
    `use_ema`), which `fit_resumable` validates and saves."""
    if schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(decay_steps, 1), alpha=0.01)
    ema = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum else {}
    if kind == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, **ema)
    if kind == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, **ema)
    return keras.optimizers.Adam(learning_rate, **ema)


def step_optimizer(section: PhaseConfig | DistillConfig, steps_per_epoch: int):
    """The optimizer of a teacher phase or a student's step, its schedule over all its epochs."""
    return make_optimizer(section.optimizer, section.learning_rate, section.schedule,
                          section.epochs * steps_per_epoch, section.weight_decay,
                          section.ema_momentum)


def averages_weights(optimizer) -> bool:
    """Whether `optimizer` (or the one inside its loss scaling) keeps a moving average of the
    weights."""
    return bool(getattr(getattr(optimizer, "inner_optimizer", optimizer), "use_ema", False))


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """Validation sees the moving average of the weights (Keras' swap), and `swapped()` holds
    it in the model while the checkpoint saves the models. Between epochs the model holds the
    weights that train, so a resume point keeps those and the optimizer keeps the average."""

    def __init__(self):
        super().__init__(swap_on_epoch=False)

    @contextlib.contextmanager
    def swapped(self):
        self._swap_variables()
        try:
            yield
        finally:
            self._swap_variables()


def recover_checkpoints(directory: CheckpointDir) -> None:
    """Sets aside what cannot be read back in `directory`, saying so (run/checkpoints.py)."""
    for note in directory.recover():
        print(f"  {note}")


def load_progress(directory: CheckpointDir) -> Progress:
    point = directory.latest_resume_point()
    if point is None:
        return Progress()
    return Progress(**json.loads((point / PROGRESS_FILE).read_text()))


def restore(model: keras.Model, directory: CheckpointDir, policy: PrecisionPolicy,
            deployable: keras.Model) -> Progress:
    """Loads the latest resume point of `directory` into the compiled `model`; its Progress.

    Under the precision it was saved with, weights and optimizer state come back. Under another
    (continuing a step in float32 after a float16 overflow) only the weights do, by layer name.
    """
    progress = load_progress(directory)
    point = directory.latest_resume_point()
    if point is None:
        return progress
    if progress.precision == policy.name:
        if not model.optimizer.built:  # a second build would add a second set of slots
            model.optimizer.build(model.trainable_variables)
        model.load_weights(point / STATE_FILE)
    else:
        # last.keras is the resume point's epoch; set aside with a broken epoch, best.keras
        # is the nearest model left.
        source = next((p for p in (directory.last_model, directory.best_model) if p.exists()),
                      None)
        if source is None:
            print(f"  no model of {directory.name} can be read: the step starts over")
            return Progress(precision=policy.name)
        transfer_weights(keras.saving.load_model(source, safe_mode=True), deployable)
        print(f"  resuming under {policy.name} (saved under {progress.precision}): "
              f"weights restored from {source.name}, optimizer state starts afresh")
        progress.precision = policy.name
    if not directory.best_model.exists():  # set aside: the next epoch writes a new one
        progress.best, progress.best_loss = -math.inf, math.inf
    return progress


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes the resume point, last.keras, best.keras and history.csv after every epoch, with
    the epoch's seconds and training images per second.

    Its batch hook only reads the loss (a NaN stops the epoch) and may run in Keras' callback
    thread (`async_safe`): a batch hook that is not makes Keras turn every step's logs into
    Python numbers in the training loop's thread, waiting for the device after every step.
    """

    async_safe = True

    def __init__(self, directory: CheckpointDir, deployable: keras.Model, progress: Progress,
                 policy: PrecisionPolicy, keep: int = KEEP_RESUME_POINTS,
                 images_per_epoch: int | None = None,
                 averaged: AveragedWeights | None = None):
        super().__init__()
        self.directory = directory
        self.deployable = deployable
        self.progress = progress
        self.progress.precision = policy.name
        self.keep = keep
        self.images_per_epoch = images_per_epoch
        self.averaged = averaged  # the saved models are the averaged weights, when given
        self.non_finite = False
        self._started = self._trained = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = self._trained = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._trained = time.perf_counter()  # validation follows the epoch's training

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if not all(math.isfinite(v) for k, v in logs.items() if "loss" in k):
            self.non_finite = True
            self.model.stop_training = True
            return  # the last good checkpoint stays the latest one
        self.progress.epochs_done = epoch + 1
        if self._started is not None:
            logs["seconds"] = time.perf_counter() - self._started
            if self.images_per_epoch and self._trained > self._started:
                logs["train_images_per_s"] = (self.images_per_epoch
                                              / (self._trained - self._started))
        self.progress.history.append({"epoch": epoch + 1, **logs})
        try:
            self._write_checkpoint(logs)
        except OSError as err:  # a full disk, say: every write is atomic, nothing is half-done
            raise RunDirError(
                f"{self.directory.path}: the checkpoint of epoch {epoch + 1} could not be "
                f"written ({err}); the one before it is kept. Free some space and rerun the "
                "same command to continue.") from err

    def _write_checkpoint(self, logs: dict) -> None:
        score = logs.get(MONITOR, logs.get("accuracy", -math.inf))
        loss = logs.get("val_loss", logs.get("loss", math.inf))
        # A small validation split makes ties common; the tie with the lower loss is the
        # better trained model (an early epoch that happens to tie is not).
        with self.averaged.swapped() if self.averaged else contextlib.nullcontext():
            if (score, -loss) > (self.progress.best, -self.progress.best_loss):
                self.progress.best, self.progress.best_loss = score, loss
                self.progress.best_epoch = self.progress.epochs_done
                atomic.save_model(self.deployable, self.directory.best_model)
            atomic.save_model(self.deployable, self.directory.last_model)
        self.directory.write_history(self.progress.history)
        self.directory.publish_resume_point(self.progress.epochs_done, self._fill_resume_point,
                                            self.keep)

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.non_finite = True
            self.model.stop_training = True

    def _fill_resume_point(self, folder: Path) -> None:
        self.model.save_weights(folder / STATE_FILE)
        (folder / PROGRESS_FILE).write_text(json.dumps(self.progress.__dict__))


def fit_resumable(model: keras.Model, train_data, val_data, *, epochs: int,
                  directory: CheckpointDir, policy: PrecisionPolicy, deployable: keras.Model,
                  callbacks: list | None = None, verbose: int | None = None,
                  clock: keras.callbacks.Callback | None = None) -> Progress:
    """`model.fit` for `epochs`, continued from `directory`'s latest resume point if any.

    `model` is compiled; `deployable` is what gets saved as last/best (the model itself, or the
    student inside a distiller). Raises NonFiniteLoss when the loss stops being finite.
    `clock` (timekeeping.py) runs after the checkpoint, so that an epoch is saved before a
    time budget stops the run, and after Keras' line of the epoch, so that the run's progress
    line follows it. `verbose`: Keras' own (None: a bar on a terminal, else one line).
    """
    directory.path.mkdir(parents=True, exist_ok=True)
    recover_checkpoints(directory)
    progress = restore(model, directory, policy, deployable)
    if progress.epochs_done:
        print(f"  resuming {directory.name} after epoch {progress.epochs_done}/{epochs}")
    averaged = AveragedWeights() if averages_weights(model.optimizer) else None
    checkpoint = EpochCheckpoint(directory, deployable, progress, policy,
                                 images_per_epoch=getattr(train_data, "images", None),
                                 averaged=averaged)
    if verbose is None:  # a live progress bar on a terminal, one line per epoch in a log
        verbose = 1 if sys.stdout.isatty() else 2
    if hasattr(train_data, "set_epoch"):  # its order follows the epoch (data/batches.py)
        callbacks = [FollowEpochs(train_data), *(callbacks or [])]
    # Keras adds its progress bar after every callback given, so that it would print the
    # epoch's line after the clock's; given here, it prints before.
    progbar = [EpochLine()] if verbose else []
    if progress.epochs_done < epochs:
        model.fit(train_data, validation_data=val_data, epochs=epochs,
                  initial_epoch=progress.epochs_done, shuffle=False,
                  callbacks=[*(callbacks or []), *([averaged] if averaged else []), checkpoint,
                             StopWhenInterrupted(), *progbar,
                             *([clock] if clock else [])],
                  verbose=verbose)
    if checkpoint.non_finite:
        raise NonFiniteLoss(
            f"{directory.path}: the loss became NaN or infinite in epoch "
            f"{progress.epochs_done + 1}; "
            f"training stopped and the checkpoint after epoch {progress.epochs_done} is kept. "
            "Rerun the same command to retry, or add --precision float32 to continue this "
            "step in float32.")
    stopped_early = progress.epochs_done < epochs
    if stopped_early:
        print(f"  {directory.name}: stopped early after epoch {progress.epochs_done}/{epochs}, "
              f"its validation accuracy no better since epoch {progress.best_epoch}, whose "
              "weights are kept")
    directory.mark_done({"epochs": progress.epochs_done, "best_" + MONITOR: progress.best,
                         "best_epoch": progress.best_epoch, "stopped_early": stopped_early})
    return progress


class StopWhenInterrupted(keras.callbacks.Callback):
    """Raises KeyboardInterrupt after an epoch's checkpoint when Ctrl-C was received but
    swallowed where it landed (interrupts.py). No batch hook: the steps run as without it."""

    def on_epoch_end(self, epoch, logs=None):
        if interrupts.received():
            raise KeyboardInterrupt


class EpochLine(keras.callbacks.ProgbarLogger):
    """Keras' own progress bar, placed among the callbacks. It may run in Keras' callback
    thread as the one Keras adds does (a batch hook that is not `async_safe` would make every
    step wait for the device: see EpochCheckpoint)."""

    async_safe = True


def step_callbacks(directory: CheckpointDir, early_stopping_patience: int = 0,
                    reduce_lr_patience: int = 0) -> list:
    """Optional early stopping (after the schedule's decay: plateau.py) and LR reduction, and
    TensorBoard logs where TensorFlow is."""
    callbacks = []
    if early_stopping_patience:
        callbacks.append(DecayOnPlateau(early_stopping_patience, directory.name))
    if reduce_lr_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            MONITOR, patience=reduce_lr_patience, mode="max", factor=0.3))
    if keras.backend.backend() == "tensorflow" and importlib.util.find_spec("tensorboard"):
        callbacks.append(keras.callbacks.TensorBoard(str(directory.tensorboard)))
    return callbacks
