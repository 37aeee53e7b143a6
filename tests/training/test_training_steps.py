"""One real compiled (XLA) training step per model, policy and freezing, with augmentation,
erasing, mixing and label smoothing inside the step, and per distillation method: the steps
that fail with "mixed precision is disallowed" when precision is left to chance."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
from helpers import TINY_STUDENT, TINY_TEACHER

from teacher_student.config import DistillConfig
from teacher_student.data.batches import UNLABELED
from teacher_student.models.audit import audit_dtypes
from teacher_student.models.freezing import set_trainable, trunk_parts
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher
from teacher_student.training.distiller import Distiller, method_terms
from teacher_student.training.trainee import Trainee, compile_trainee

BUILDERS = {"teacher": (build_teacher, TINY_TEACHER), "student": (build_student, TINY_STUDENT),
            "student_mobilenet": (build_student, dataclasses.replace(
                TINY_STUDENT, trunk="MobileNetV3Small"))}


def compile_for_training(model: keras.Model, policy: PrecisionPolicy) -> Trainee:
    """The model in a Trainee that augments and mixes inside the compiled step."""
    trainee = Trainee(model, augment="strong", mix="cutmix", seed=0, erasing=0.5,
                      label_smoothing=0.1)
    compile_trainee(trainee, keras.optimizers.Adam(1e-2), policy, jit_compile=True)
    return trainee


def trunk_weights(model):
    return [w.numpy().copy() for part in trunk_parts(model) for layer in part
            for w in layer.weights]


def changed(before, after) -> list[bool]:
    return [not np.array_equal(b, a) for b, a in zip(before, after)]


def train_until_updated(trainee, batch, weights) -> tuple[dict, list[bool]]:
    """Training steps until `weights` change (to finite values); the logs of the last, and
    which changed. float16 loss scaling starts at 2^15 and skips each step whose gradients
    overflow, halving the scale (a batch of 2 through BatchNorm on 1x1 maps, or DKD's T^2 * beta
    on standardized logits, take several): every step either updates the weights or halves the
    scale, nothing else."""
    before = [w.numpy().copy() for w in weights]
    for _ in range(16):
        scale = _loss_scale(trainee)
        logs = trainee.train_on_batch(*batch, return_dict=True)
        if any(updated := changed(before, [w.numpy() for w in weights])):
            # An update to NaN changes the weights too: the step must leave them finite.
            broken = [w.path for w in trainee.trainable_weights
                      if not np.isfinite(w.numpy()).all()]
            assert not broken, f"the update left non-finite weights: {broken[:3]}"
            return logs, updated
        assert scale is not None and _loss_scale(trainee) == scale / 2, "a step was lost"
    raise AssertionError("16 steps without an update")


@pytest.mark.parametrize("which", BUILDERS)
def test_compiled_step_with_everything_trainable(which, policy, batch):
    builder, config = BUILDERS[which]
    model = builder(config, policy)
    trainee = compile_for_training(model, policy)
    logs, updated = train_until_updated(trainee, batch, model.trainable_weights)
    assert np.isfinite(logs["loss"])
    if which == "student_mobilenet":  # a few units of an untrained MobileNet get no gradient
        assert np.mean(updated) > 0.9
    else:
        assert all(updated)
    assert audit_dtypes(model, policy.name) == []


@pytest.mark.parametrize("which", ["teacher", "student"])  # an applications trunk: test_freezing
def test_compiled_step_with_the_trunk_frozen(which, policy, batch):
    builder, config = BUILDERS[which]
    model = builder(config, policy)
    set_trainable(model, "head")
    trainee = compile_for_training(model, policy)
    trunk_before = trunk_weights(model)
    logs, updated = train_until_updated(trainee, batch, model.get_layer("logits").weights)
    assert np.isfinite(logs["loss"]) and all(updated)
    assert not any(changed(trunk_before, trunk_weights(model)))  # BatchNorm statistics too


@pytest.mark.parametrize("method", ["kd", "dkd", "feature"])
def test_compiled_distillation_step_of_each_method_with_the_frozen_teacher(method, policy,
                                                                           batch):
    teacher = build_teacher(TINY_TEACHER, policy)
    student = build_student(TINY_STUDENT, policy)
    config = DistillConfig(method=method, alpha=0.5, standardize_logits=method == "dkd")
    distiller = Distiller(teacher, student, method_terms(config, steps_per_epoch=1), config.alpha,
                          augment="light", mix="mixup", seed=0, policy=policy)
    compile_trainee(distiller, keras.optimizers.Adam(1e-2), policy, jit_compile=True)
    teacher_before = [w.numpy().copy() for w in teacher.weights]
    logs, updated = train_until_updated(distiller, batch, student.trainable_weights)
    assert np.isfinite(logs["loss"]) and logs["distillation_loss"] > 0 and all(updated)
    assert not any(changed(teacher_before, [w.numpy() for w in teacher.weights]))
    if method == "feature":  # the adapter computes in float32 and trains with the student
        adapter = distiller.adapter
        assert audit_dtypes(adapter, policy.name) == []
        assert adapter.outputs[0].dtype == "float32"
        assert {v.dtype for v in adapter.weights} == {"float32"}


def test_compiled_distillation_step_with_unlabeled_images(policy):
    """Images without a label take the teacher's terms alone: DKD's target class for them is
    the teacher's top class, and the teacher's accuracy counts the labeled images only."""
    images = np.random.default_rng(1).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, UNLABELED, 0, UNLABELED], dtype="int32")
    teacher = build_teacher(TINY_TEACHER, policy)
    bias = teacher.get_layer("logits").bias
    bias.assign(np.array([20.0, 0.0, 0.0], dtype=bias.dtype))  # it answers class 0, always
    student = build_student(TINY_STUDENT, policy)
    config = DistillConfig(method="dkd", alpha=0.5)
    distiller = Distiller(teacher, student, method_terms(config, steps_per_epoch=1), config.alpha,
                          seed=0, policy=policy)
    compile_trainee(distiller, keras.optimizers.Adam(1e-2), policy, jit_compile=True)
    logs, updated = train_until_updated(distiller, (images, labels), student.trainable_weights)
    assert np.isfinite(logs["loss"]) and logs["distillation_loss"] > 0 and all(updated)
    assert logs["teacher_accuracy"] == 1.0  # 0.5 if the unlabeled images counted as misses


def _loss_scale(trainee) -> float | None:
    """The loss scale of the next step; None without loss scaling."""
    optimizer = trainee.optimizer
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return None
    scale = getattr(optimizer, "dynamic_scale", None)  # made by the first step
    return float(optimizer.initial_scale if scale is None else scale.numpy())


def test_compiled_distillation_step_from_an_ensemble_of_two_frozen_teachers(policy, batch,
                                                                           tmp_path):
    """One teacher at the student's input, one at its own (48x48 grey: the student's colour
    batch resized to it inside the step)."""
    from teacher_student.training.teachers import ensemble, listed_teachers

    files = []
    # Two teachers of different weights, saved as runs save them: one trained in float32, one
    # in mixed_float16 (its casts and islands are in the file), adopted by every policy.
    for seed, saved_under, shape in ((1, "float32", TINY_TEACHER.input_shape),
                                     (2, "mixed_float16", (48, 48, 1))):
        keras.utils.set_random_seed(seed)
        files.append(str(tmp_path / f"teacher{seed}.keras"))
        build_teacher(dataclasses.replace(TINY_TEACHER, input_shape=shape),
                      PrecisionPolicy(saved_under)).save(files[-1])
    teachers = listed_teachers(files, policy, TINY_STUDENT.input_shape)
    student = build_student(TINY_STUDENT, policy)
    config = DistillConfig(temperature=2.0)
    distiller = Distiller(ensemble(teachers, config.temperature), student,
                          method_terms(config, steps_per_epoch=1), config.alpha, augment="light",
                          seed=0, policy=policy)
    compile_trainee(distiller, keras.optimizers.Adam(1e-2), policy, jit_compile=True)
    teachers_before = [w.numpy().copy() for t in teachers for w in t.weights]
    logs, updated = train_until_updated(distiller, batch, student.trainable_weights)
    assert np.isfinite(logs["loss"]) and logs["distillation_loss"] > 0 and all(updated)
    assert not any(changed(teachers_before, [w.numpy() for t in teachers for w in t.weights]))
    assert audit_dtypes(distiller.teacher, policy.name) == []
    assert distiller.teacher.output.dtype == "float32"


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's traced step")
def test_a_fit_traces_its_training_step_once(batch):
    """TensorFlow traces a step whose first trace creates variables (the optimizer's slots, a
    metric's totals) a second time: compile_trainee creates them before."""
    class Counted(Trainee):
        traces = 0

        def train_step(self, data):
            Counted.traces += 1  # this Python runs only while TensorFlow traces the step
            return super().train_step(data)

    policy = PrecisionPolicy("mixed_float16")
    trainee = Counted(build_student(TINY_STUDENT, policy), augment="light")
    compile_trainee(trainee, keras.optimizers.Adam(), policy, jit_compile=False)
    images, labels = (np.concatenate([part] * 4) for part in batch)
    history = trainee.fit(images, labels, batch_size=2, epochs=2, verbose=0)
    assert Counted.traces == 1
    assert np.isfinite(history.history["loss"]).all() and "accuracy" in history.history
