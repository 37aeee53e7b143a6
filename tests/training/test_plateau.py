"""Early stopping on a plateau runs the cosine schedule's last epochs before it ends the step,
also when the run is killed during that decay and resumed."""

from __future__ import annotations

import dataclasses
import shutil

import keras
import numpy as np
from helpers import TINY_STUDENT

from teacher_student.data.batches import Batches
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.run.checkpoints import CheckpointDir
from teacher_student.training.trainee import Trainee, compile_trainee
from teacher_student.training.trainer import fit_resumable, make_optimizer, step_callbacks

POLICY = PrecisionPolicy("float32")
RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8)
LABELS = RNG.integers(0, 3, size=16).astype("int32")
EPOCHS, STEPS, PATIENCE = 10, 2, 2  # batches of 8 images


def stalled_trainee(schedule: str) -> Trainee:
    """A student whose validation accuracy never moves: its learning rate is far too small."""
    keras.utils.set_random_seed(3)
    student = build_student(dataclasses.replace(TINY_STUDENT, dropout=0.0), POLICY)
    trainee = Trainee(student, augment="none", seed=2)
    compile_trainee(trainee, make_optimizer("adam", 1e-12, schedule, EPOCHS * STEPS), POLICY,
                    jit_compile=False)
    return trainee


def fit(trainee: Trainee, directory: CheckpointDir, epochs: int = EPOCHS):
    batches = Batches(IMAGES, range(16), LABELS, 8, shuffle=False, seed=1)
    return fit_resumable(trainee, batches, batches, epochs=epochs, directory=directory,
                         policy=POLICY, deployable=trainee.model, verbose=0,
                         callbacks=step_callbacks(directory, early_stopping_patience=PATIENCE))


def test_a_plateau_skips_to_the_schedules_decay_and_ends_after_it(tmp_path, capsys):
    trainee = stalled_trainee("cosine")
    progress = fit(trainee, CheckpointDir(tmp_path))
    # Epoch 1 is the best; epochs 2 and 3 are the plateau; 4 and 5 are the decay's last steps.
    assert progress.epochs_done == 1 + PATIENCE + PATIENCE
    assert int(trainee.optimizer.iterations.numpy()) == EPOCHS * STEPS
    assert "decays over epochs 4-5, then the step ends" in capsys.readouterr().out


def test_a_constant_learning_rate_stops_on_the_plateau(tmp_path):
    assert fit(stalled_trainee("constant"), CheckpointDir(tmp_path)).epochs_done == 1 + PATIENCE


def test_a_run_killed_during_the_decay_resumes_into_the_same_decay(tmp_path):
    directory = CheckpointDir(tmp_path)
    fit(stalled_trainee("cosine"), directory)
    # As if killed after the decay's first epoch (4): its resume point is the latest one.
    (directory.path / "done.json").unlink()
    shutil.rmtree(directory.latest_resume_point())
    resumed = stalled_trainee("cosine")
    assert fit(resumed, directory).epochs_done == 1 + PATIENCE + PATIENCE
    assert int(resumed.optimizer.iterations.numpy()) == EPOCHS * STEPS
