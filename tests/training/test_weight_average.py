"""Weight averaging (an optimizer's `ema_momentum`): validation and the saved models are the
averaged weights, and a run killed between epochs resumes to what an uninterrupted run ends
with, the average included."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import TINY_STUDENT

from teacher_student.data.batches import Batches
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.run.checkpoints import CheckpointDir
from teacher_student.training.losses import label_loss
from teacher_student.training.trainee import Trainee, compile_trainee
from teacher_student.training.trainer import fit_resumable, make_optimizer

POLICY = PrecisionPolicy("float32")
RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(24, 32, 32, 3), dtype=np.uint8)
LABELS = RNG.integers(0, 3, size=24).astype("int32")


def batches(shuffle: bool) -> Batches:
    return Batches(IMAGES, range(24), LABELS, 8, shuffle=shuffle, seed=1)


def averaging_trainee() -> Trainee:
    keras.utils.set_random_seed(3)
    # No dropout: its random stream is not part of a resume point.
    student = build_student(dataclasses.replace(TINY_STUDENT, dropout=0.0), POLICY)
    trainee = Trainee(student, augment="light", seed=2)
    optimizer = make_optimizer("adam", 1e-2, "cosine", 9, ema_momentum=0.5)
    compile_trainee(trainee, optimizer, POLICY, jit_compile=False)
    return trainee


def fit(trainee: Trainee, directory: CheckpointDir, epochs: int):
    return fit_resumable(trainee, batches(True), batches(False), epochs=epochs,
                         directory=directory, policy=POLICY, deployable=trainee.model,
                         verbose=0)


def saved_weights(directory: CheckpointDir) -> list[np.ndarray]:
    return [w.numpy() for w in keras.saving.load_model(directory.last_model).weights]


def test_validation_and_the_saved_models_are_the_averaged_weights(tmp_path):
    directory = CheckpointDir(tmp_path)
    trainee = averaging_trainee()
    fit(trainee, directory, epochs=2)
    saved = keras.saving.load_model(directory.last_model)
    # The validation loss of the last epoch is the saved model's, not the raw weights'.
    val_loss = pd.read_csv(directory.path / "history.csv")["val_loss"].iloc[-1]
    assert float(label_loss(LABELS, saved.predict(IMAGES, verbose=0))) == pytest.approx(
        val_loss, rel=1e-4)
    averages = trainee.optimizer._model_variables_moving_average
    for average, weight in zip(averages, saved.trainable_weights, strict=True):
        np.testing.assert_allclose(average.numpy(), weight.numpy(), rtol=1e-6)


def test_a_run_killed_between_epochs_resumes_to_the_same_average(tmp_path):
    whole, parted = CheckpointDir(tmp_path / "whole"), CheckpointDir(tmp_path / "parted")
    fit(averaging_trainee(), whole, epochs=2)
    fit(averaging_trainee(), parted, epochs=1)
    # As if killed after the first epoch's checkpoint. Had its resume point kept the averaged
    # weights as the ones that train, the second epoch would start elsewhere (after an epoch
    # of three steps at momentum 0.5, the two differ).
    (parted.path / "done.json").unlink()
    resumed = averaging_trainee()
    assert fit(resumed, parted, epochs=2).epochs_done == 2
    for a, b in zip(saved_weights(whole), saved_weights(parted), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
