"""The distiller: evaluation without the teacher, and a distillation that resumes from its
checkpoint in a fresh process (a fresh Distiller), optimizer state included."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import TINY_STUDENT, TINY_TEACHER

from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher
from teacher_student.run_dir import CheckpointDir
from teacher_student.training.distiller import Distiller
from teacher_student.training.trainer import fit_resumable, restore

BATCH = 4


def dataset(count: int = 16):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, size=count).astype("int32")
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH)


def make_distiller(policy: PrecisionPolicy) -> Distiller:
    distiller = Distiller(build_teacher(TINY_TEACHER, policy), build_student(TINY_STUDENT, policy),
                          alpha=0.5, temperature=4.0)
    distiller.compile(optimizer=policy.wrap_optimizer(keras.optimizers.Adam(1e-2)),
                      metrics=["accuracy"], jit_compile=True)
    return distiller


def test_evaluation_reports_the_student_alone():
    distiller = make_distiller(PrecisionPolicy("float32"))
    logs = distiller.evaluate(dataset(), return_dict=True, verbose=0)
    assert logs["distillation_loss"] == 0  # the teacher did not run
    assert logs["loss"] == pytest.approx(logs["student_loss"])


@pytest.mark.parametrize("precision", ["float32", "mixed_float16"])
def test_a_fresh_distiller_resumes_a_distillation_with_its_optimizer_state(precision,
                                                                           tmp_path):
    policy = PrecisionPolicy(precision)
    phase = CheckpointDir(tmp_path)
    first = make_distiller(policy)
    fit_resumable(first, dataset(), dataset(), epochs=1, directory=phase, policy=policy,
                  deployable=first.student, verbose=0)
    (tmp_path / "done.json").unlink()  # as if killed after the first epoch's checkpoint

    # A new process builds a new distiller and loads the checkpoint before its first step.
    second = make_distiller(policy)
    progress = restore(second, phase, policy, second.student)
    assert progress.epochs_done == 1
    for saved, restored in ((first.student.weights, second.student.weights),
                            (first.teacher.weights, second.teacher.weights),
                            (first.optimizer.variables, second.optimizer.variables)):
        for a, b in zip(saved, restored, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(second.optimizer.iterations.numpy()) > 0

    progress = fit_resumable(second, dataset(), dataset(), epochs=2, directory=phase,
                             policy=policy, deployable=second.student, verbose=0)
    assert progress.epochs_done == 2
    assert list(pd.read_csv(tmp_path / "history.csv")["epoch"]) == [1, 2]
    for a, b in zip(first.teacher.weights, second.teacher.weights):  # still frozen
        np.testing.assert_array_equal(a.numpy(), b.numpy())
