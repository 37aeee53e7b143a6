"""Planted faults: each thing the audit exists to catch, built on purpose, must be caught; and
the float16 bilinear path must really fail to compile, so the protection is proven."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from teacher_student.models.audit import audit_dtypes
from teacher_student.models.layers import GradientGate
from teacher_student.models.precision import PrecisionPolicy

HALF = keras.DTypePolicy("mixed_float16")
XLA_ERROR = "different precisions"


def float16_upsampling_model() -> keras.Model:
    """A two-scale block with a float16 bilinear upsampling path and no float32 island."""
    inputs = keras.Input((16, 16, 3))
    fine = layers.Conv2D(8, 3, padding="same", dtype=HALF, name="fine")(inputs)
    coarse = layers.Conv2D(8, 3, strides=2, padding="same", dtype=HALF, name="coarse")(fine)
    up = layers.UpSampling2D(2, interpolation="bilinear", dtype=HALF, name="up")(coarse)
    merged = layers.Add(dtype=HALF, name="merge")([fine, up])
    pooled = layers.GlobalAveragePooling2D(dtype=HALF, name="pool")(merged)
    return keras.Model(inputs, layers.Dense(3, dtype="float32", name="logits")(pooled))


def train_one_step(model: keras.Model) -> float:
    model.compile(optimizer=PrecisionPolicy("mixed_float16").wrap_optimizer(
        keras.optimizers.Adam()),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    return model.train_on_batch(np.ones((2, 16, 16, 3), "float32"), np.array([0, 1]))


def test_float16_bilinear_upsampling_is_flagged():
    problems = {f.layer: f.problem for f in audit_dtypes(float16_upsampling_model())}
    assert "bilinear resize computed in float16" in problems["up"]
    assert "not fed by a CastTo" in problems["merge"]


@pytest.mark.parametrize("interpolation", ["area", "lanczos3", "bicubic"])
def test_half_precision_resizes_of_any_interpolation_are_flagged_inside_nested_models(
        interpolation):
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, dtype=HALF, name="conv")(inputs)
    x = layers.Resizing(8, 8, interpolation=interpolation, dtype=HALF, name="shrink")(x)
    trunk = keras.Model(inputs, x, name="trunk")  # like a keras.applications trunk
    outer_in = keras.Input((16, 16, 3))
    pooled = layers.GlobalAveragePooling2D(dtype=HALF)(trunk(outer_in))
    model = keras.Model(outer_in, layers.Dense(3, dtype="float32", name="logits")(pooled))
    problems = [f.problem for f in audit_dtypes(model) if f.layer.endswith("shrink")]
    assert any(f"{interpolation} resize computed in float16" in p for p in problems)


def test_bicubic_is_flagged_even_in_float32():
    inputs = keras.Input((16, 16, 3))
    x = layers.Resizing(8, 8, interpolation="bicubic", name="shrink")(inputs)
    pooled = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(3, name="logits")(pooled))
    problems = {f.layer: f.problem for f in audit_dtypes(model, "float32")}
    assert "no gradient" in problems["shrink"]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a TensorFlow XLA fault")
def test_float16_bilinear_upsampling_reproduces_the_xla_error():
    with pytest.raises(Exception, match=XLA_ERROR):
        train_one_step(float16_upsampling_model())


def frozen_part_model(gated: bool) -> keras.Model:
    """A frozen float16 part with a bilinear resize feeding a trainable head."""
    inputs = keras.Input((16, 16, 3))
    part = float16_upsampling_model()
    part = keras.Model(part.input, part.get_layer("merge").output, name="frozen_part")
    part.trainable = False
    x = part(inputs)
    if gated:
        x = GradientGate(trainable=False, name="gate")(x)
    x = layers.Conv2D(8, 3, padding="same", dtype=HALF, name="head_conv")(x)
    x = layers.GlobalAveragePooling2D(dtype=HALF, name="head_pool")(x)
    return keras.Model(inputs, layers.Dense(3, dtype="float32", name="logits")(x))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a TensorFlow XLA fault")
def test_frozen_part_is_still_backpropagated_unless_gradient_stopped():
    with pytest.raises(Exception, match=XLA_ERROR):
        train_one_step(frozen_part_model(gated=False))
    assert np.isfinite(train_one_step(frozen_part_model(gated=True)))


def test_merge_fed_without_cast_layers_is_flagged_under_a_mixed_policy():
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(8, 1, dtype=HALF, name="a")(inputs)
    b = layers.Conv2D(8, 1, dtype="float32", name="b")(inputs)
    merged = layers.Concatenate(dtype=HALF, name="concat")([a, b])
    model = keras.Model(inputs, layers.Dense(2, dtype="float32", name="logits")(merged))
    problems = [f.problem for f in audit_dtypes(model) if f.layer == "concat"]
    assert any("not fed by a CastTo" in p for p in problems)


def test_float16_output_logits_and_variables_are_flagged():
    inputs = keras.Input((4,))
    outputs = layers.Dense(2, dtype="float16", name="logits")(inputs)  # float16 variables too
    findings = audit_dtypes(keras.Model(inputs, outputs))
    problems = " | ".join(f"{f.layer}: {f.problem}" for f in findings)
    assert "model output is float16" in problems
    assert "logits computed in float16" in problems
    assert "variable is float16" in problems


def test_missing_loss_scaling_is_flagged():
    """Layers given the policy one by one: compile() alone does not add loss scaling."""
    inputs = keras.Input((4,))
    hidden = layers.Dense(8, dtype=HALF, name="hidden")(inputs)
    model = keras.Model(inputs, layers.Dense(2, dtype="float32", name="logits")(hidden))
    model.compile(optimizer="adam", loss="mse")
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert [f.layer for f in audit_dtypes(model)] == ["optimizer"]
    model.compile(optimizer=PrecisionPolicy("mixed_float16").wrap_optimizer(
        keras.optimizers.Adam()), loss="mse")
    assert audit_dtypes(model) == []
