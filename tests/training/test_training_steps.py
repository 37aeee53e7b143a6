"""One real compiled (XLA) training step per model, policy and freezing, with augmentation and
mixing inside the step, and per distillation method: the steps that fail with "mixed precision
is disallowed" when precision is left to chance."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import TINY_STUDENT, TINY_TEACHER

from teacher_student.config import DistillConfig
from teacher_student.models.audit import audit_dtypes
from teacher_student.models.freezing import set_trainable, trunk_parts
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher
from teacher_student.training.distiller import Distiller, method_of
from teacher_student.training.trainee import Trainee, compile_trainee

BUILDERS = {"teacher": (build_teacher, TINY_TEACHER), "student": (build_student, TINY_STUDENT)}


def compile_for_training(model: keras.Model, policy: PrecisionPolicy) -> Trainee:
    """The model in a Trainee that augments and mixes inside the compiled step."""
    trainee = Trainee(model, augment="strong", mix="cutmix", seed=0)
    compile_trainee(trainee, keras.optimizers.Adam(1e-2), policy, jit_compile=True)
    return trainee


def trunk_weights(model):
    return [w.numpy().copy() for part in trunk_parts(model) for layer in part
            for w in layer.weights]


def changed(before, after) -> list[bool]:
    return [not np.array_equal(b, a) for b, a in zip(before, after)]


@pytest.mark.parametrize("which", BUILDERS)
def test_compiled_step_with_everything_trainable(which, policy, batch):
    builder, config = BUILDERS[which]
    model = builder(config, policy)
    trainee = compile_for_training(model, policy)
    before = [w.numpy().copy() for w in model.trainable_weights]
    logs = trainee.train_on_batch(*batch, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert all(changed(before, [w.numpy() for w in model.trainable_weights]))
    assert audit_dtypes(model, policy.name) == []


@pytest.mark.parametrize("which", BUILDERS)
def test_compiled_step_with_the_trunk_frozen(which, policy, batch):
    builder, config = BUILDERS[which]
    model = builder(config, policy)
    set_trainable(model, "head")
    trainee = compile_for_training(model, policy)
    trunk_before = trunk_weights(model)
    head_before = model.get_layer("logits").get_weights()[0].copy()
    assert np.isfinite(trainee.train_on_batch(*batch, return_dict=True)["loss"])
    assert not any(changed(trunk_before, trunk_weights(model)))  # BatchNorm statistics too
    assert not np.array_equal(head_before, model.get_layer("logits").get_weights()[0])


@pytest.mark.parametrize("method", ["kd", "dkd", "feature"])
def test_compiled_distillation_step_of_each_method_with_the_frozen_teacher(method, policy,
                                                                           batch):
    teacher = build_teacher(TINY_TEACHER, policy)
    student = build_student(TINY_STUDENT, policy)
    config = DistillConfig(method=method, alpha=0.5, standardize_logits=method == "dkd")
    distiller = Distiller(teacher, student, method_of(config, steps_per_epoch=1), config.alpha,
                          augment="light", mix="mixup", seed=0, policy=policy)
    compile_trainee(distiller, keras.optimizers.Adam(1e-2), policy, jit_compile=True)
    teacher_before = [w.numpy().copy() for w in teacher.weights]
    student_before = [w.numpy().copy() for w in student.trainable_weights]
    # float16 loss scaling starts at 2^15 and skips each step whose gradients overflow, halving
    # the scale: DKD's teacher terms (T^2 * beta on standardized logits) can take several.
    # Every step either updates the student or halves the scale, nothing else.
    for _ in range(16):
        scale = _loss_scale(distiller)
        logs = distiller.train_on_batch(*batch, return_dict=True)
        if all(changed(student_before, [w.numpy() for w in student.trainable_weights])):
            break
        assert not any(changed(student_before, [w.numpy() for w in student.trainable_weights]))
        assert scale is not None and _loss_scale(distiller) == scale / 2, "a step was lost"
    assert np.isfinite(logs["loss"]) and logs["distillation_loss"] > 0
    assert not any(changed(teacher_before, [w.numpy() for w in teacher.weights]))
    assert all(changed(student_before, [w.numpy() for w in student.trainable_weights]))
    if method == "feature":  # the adapter computes in float32 and trains with the student
        adapter = distiller.adapter
        assert audit_dtypes(adapter, policy.name) == []
        assert adapter.outputs[0].dtype == "float32"
        assert {v.dtype for v in adapter.weights} == {"float32"}


def _loss_scale(trainee) -> float | None:
    scale = getattr(trainee.optimizer, "dynamic_scale", None)
    return None if scale is None else float(scale.numpy())
