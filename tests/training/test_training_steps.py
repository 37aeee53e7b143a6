"""One real compiled (XLA) training step per model, policy and freezing: the steps that fail
with "mixed precision is disallowed" when precision is left to chance."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import TINY_STUDENT, TINY_TEACHER

from teacher_student.models.audit import audit_dtypes
from teacher_student.models.freezing import set_trainable, trunk_parts
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher
from teacher_student.training.distiller import Distiller

BUILDERS = {"teacher": (build_teacher, TINY_TEACHER), "student": (build_student, TINY_STUDENT)}


def compile_for_training(model: keras.Model, policy: PrecisionPolicy) -> None:
    model.compile(optimizer=policy.wrap_optimizer(keras.optimizers.Adam(1e-2)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)


def trunk_weights(model):
    return [w.numpy().copy() for part in trunk_parts(model) for layer in part
            for w in layer.weights]


def changed(before, after) -> list[bool]:
    return [not np.array_equal(b, a) for b, a in zip(before, after)]


@pytest.mark.parametrize("which", BUILDERS)
def test_compiled_step_with_everything_trainable(which, policy, batch):
    builder, config = BUILDERS[which]
    model = builder(config, policy)
    compile_for_training(model, policy)
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.train_on_batch(*batch)
    assert np.isfinite(loss)
    assert all(changed(before, [w.numpy() for w in model.trainable_weights]))
    assert audit_dtypes(model, policy.name) == []


@pytest.mark.parametrize("which", BUILDERS)
def test_compiled_step_with_the_trunk_frozen(which, policy, batch):
    builder, config = BUILDERS[which]
    model = builder(config, policy)
    set_trainable(model, "head")
    compile_for_training(model, policy)
    trunk_before = trunk_weights(model)
    head_before = model.get_layer("logits").get_weights()[0].copy()
    assert np.isfinite(model.train_on_batch(*batch))
    assert not any(changed(trunk_before, trunk_weights(model)))  # BatchNorm statistics too
    assert not np.array_equal(head_before, model.get_layer("logits").get_weights()[0])


def test_compiled_distillation_step_with_the_frozen_teacher(policy, batch):
    teacher = build_teacher(TINY_TEACHER, policy)
    student = build_student(TINY_STUDENT, policy)
    distiller = Distiller(teacher, student, alpha=0.5, temperature=4.0)
    distiller.compile(optimizer=policy.wrap_optimizer(keras.optimizers.Adam(1e-2)),
                      jit_compile=True)
    teacher_before = [w.numpy().copy() for w in teacher.weights]
    student_before = [w.numpy().copy() for w in student.trainable_weights]
    logs = distiller.train_on_batch(*batch, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["distillation_loss"] > 0
    assert not any(changed(teacher_before, [w.numpy() for w in teacher.weights]))
    assert all(changed(student_before, [w.numpy() for w in student.trainable_weights]))
