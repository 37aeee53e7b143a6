"""The distiller: evaluation without the teacher, the teacher untouched by every method, and a
distillation that resumes from its checkpoint in a fresh process (a fresh Distiller), with the
optimizer state, the feature adapter and the augmentation and mixing streams."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import TINY_STUDENT, TINY_TEACHER

from teacher_student.config import DistillConfig
from teacher_student.data.batches import Batches
from teacher_student.errors import ConfigError
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher
from teacher_student.run.checkpoints import CheckpointDir
from teacher_student.training.distiller import Distiller, method_terms
from teacher_student.training.methods import feature
from teacher_student.training.trainee import compile_trainee
from teacher_student.training.trainer import fit_resumable, restore

BATCH = 4


def dataset(count: int = 16) -> Batches:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, size=count).astype("int32")
    return Batches(images, range(count), labels, BATCH)


def make_distiller(policy: PrecisionPolicy, method: str = "kd", mix: str = "none",
                   teacher: keras.Model | None = None, jit_compile: bool = True) -> Distiller:
    config = DistillConfig(method=method, alpha=0.5, mix=mix)
    distiller = Distiller(teacher or build_teacher(TINY_TEACHER, policy),
                          build_student(TINY_STUDENT, policy), method_terms(config, 4),
                          config.alpha, augment="light", mix=mix, seed=1, policy=policy)
    compile_trainee(distiller, keras.optimizers.Adam(1e-2), policy, jit_compile)
    return distiller


def test_evaluation_reports_the_student_alone():
    distiller = make_distiller(PrecisionPolicy("float32"))
    logs = distiller.evaluate(dataset(), return_dict=True, verbose=0)
    # The teacher did not run, and what only it measures is not reported as a zero.
    assert "distillation_loss" not in logs and "teacher_accuracy" not in logs
    assert logs["loss"] == pytest.approx(logs["label_loss"])


def test_training_accuracy_counts_the_labeled_images_alone():
    distiller = make_distiller(PrecisionPolicy("float32"), jit_compile=False)
    distiller.evaluate(dataset(), verbose=0)  # builds the metrics
    for metric in distiller.metrics:
        metric.reset_state()
    logits = np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2]]
    labels = np.array([0, 1, 2, -1, -1, -1], dtype="int32")  # the unlabeled ones: all "wrong"
    teacher_logits = np.zeros_like(logits)
    weights = np.array([1.0, 3.0, 0.5, 1.0, 1.0, 1.0], dtype="float32")  # class weights
    results = distiller.compute_metrics(
        None, labels, {"logits": logits, "teacher_logits": teacher_logits}, weights)
    assert float(results["accuracy"]) == 1.0


@pytest.mark.parametrize("precision", ["float32", "mixed_float16"])
def test_a_fresh_distiller_resumes_a_distillation_with_its_optimizer_state(precision,
                                                                           tmp_path):
    policy = PrecisionPolicy(precision)
    phase = CheckpointDir(tmp_path)
    first = make_distiller(policy, "feature", "cutmix", jit_compile=False)
    fit_resumable(first, dataset(), dataset(), epochs=1, directory=phase, policy=policy,
                  deployable=first.student, verbose=0)
    (tmp_path / "done.json").unlink()  # as if killed after the first epoch's checkpoint

    # A new process builds a new distiller and loads the checkpoint before its first step.
    second = make_distiller(policy, "feature", "cutmix", jit_compile=False)
    progress = restore(second, phase, policy, second.student)
    assert progress.epochs_done == 1
    for saved, restored in ((first.student.weights, second.student.weights),
                            (first.teacher.weights, second.teacher.weights),
                            (first.adapter.weights, second.adapter.weights),
                            (first.optimizer.variables, second.optimizer.variables),
                            ([first.augmentation.seed_generator.state,
                              first.mixing.seed_generator.state, first.step],
                             [second.augmentation.seed_generator.state,
                              second.mixing.seed_generator.state, second.step])):
        for a, b in zip(saved, restored, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(second.optimizer.iterations.numpy()) > 0 and float(second.step.numpy()) == 4

    progress = fit_resumable(second, dataset(), dataset(), epochs=2, directory=phase,
                             policy=policy, deployable=second.student, verbose=0)
    assert progress.epochs_done == 2
    assert list(pd.read_csv(tmp_path / "history.csv")["epoch"]) == [1, 2]
    for a, b in zip(first.teacher.weights, second.teacher.weights):  # still frozen
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("method", ["kd", "dkd", "feature"])
def test_the_teacher_is_unchanged_by_distilling(method):
    policy = PrecisionPolicy("float32")
    teacher = build_teacher(TINY_TEACHER, policy)
    before = [w.numpy().copy() for w in teacher.weights]
    distiller = make_distiller(policy, method, "mixup", teacher=teacher, jit_compile=False)
    student_before = [w.numpy().copy() for w in distiller.student.trainable_weights]
    distiller.fit(dataset(), epochs=1, verbose=0)
    for a, b in zip(before, teacher.weights, strict=True):  # BatchNorm statistics too
        np.testing.assert_array_equal(a, b.numpy())
    assert any(not np.array_equal(a, b.numpy())
               for a, b in zip(student_before, distiller.student.trainable_weights))


def test_the_adapter_is_not_part_of_the_exported_student(tmp_path):
    policy = PrecisionPolicy("float32")
    distiller = make_distiller(policy, "feature", jit_compile=False)
    assert distiller.adapter.count_params() > 0
    assert {layer.name for layer in distiller.student.layers}.isdisjoint(
        {layer.name for layer in distiller.adapter.layers})
    assert distiller.student.count_params() == build_student(TINY_STUDENT, policy).count_params()


@pytest.mark.parametrize("key", ["teacher", "student"])
def test_a_feature_map_that_does_not_exist_is_a_config_error_naming_the_key(key):
    policy = PrecisionPolicy("float32")

    def distiller_tapping(layer: str) -> Distiller:
        config = DistillConfig(method="feature", feature=dataclasses.replace(
            feature.Section(), **{key: layer}))
        return Distiller(build_teacher(TINY_TEACHER, policy), build_student(TINY_STUDENT, policy),
                         method_terms(config, 4), config.alpha)

    with pytest.raises(ConfigError, match=f"distill.feature.{key}: .* has no layer 'no_such'"):
        distiller_tapping("no_such")
    with pytest.raises(ConfigError, match=f"distill.feature.{key}: 'logits' .* is not a "
                                          "feature map"):
        distiller_tapping("logits")
