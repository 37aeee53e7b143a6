"""The student: a small network with the teacher's input and head contract (uint8 images in,
normalised inside; float32 logits out).

Our own: a narrow depthwise-separable CNN, its size set by `width_multiplier`:

    image (uint8) -> rescale -> 3x3 stem -> separable stages (stride 2 after the first)
                  -> global pool -> dropout -> float32 logits

or a `keras.applications` network people deploy (`student.trunk`: MobileNetV3Small, ...),
pretrained or not, with the same pool, dropout and logits on top.
"""

from __future__ import annotations

import keras
from keras import layers

from teacher_student.config.schema import StudentConfig
from teacher_student.errors import ConfigError
from teacher_student.models.applications import applications_trunk, check_trunk, trunk_parts
from teacher_student.models.blocks import apply_conv_bn_act, apply_separable_block, stem_stride
from teacher_student.models.layers import CastTo
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.structure import HeadPool, Structure, attach, parts_by_prefix

HEAD_POOL = "head_pool"
# The networks a student can be besides our own (any family of applications.py builds; these
# are the ones made for deployment).
STUDENT_TRUNKS = ("MobileNetV3Small", "MobileNetV3Large", "MobileNetV2", "EfficientNetB0")


def student_widths(config: StudentConfig) -> tuple[int, ...]:
    """Each stage's width times the multiplier, rounded to a multiple of 8 (tensor cores)."""
    return tuple(max(8, round(width * config.width_multiplier / 8) * 8)
                 for width in config.widths)


def build_student(config: StudentConfig, policy: PrecisionPolicy) -> keras.Model:
    check_student_config(config)
    inputs = keras.Input(config.input_shape, dtype="uint8", name="image")
    if config.trunk:
        (x,), trunk = applications_trunk(inputs, config.trunk, config.trunk_weights, policy,
                                         key="student.trunk")
        parts = trunk_parts(trunk)
    else:
        x, stages = _separable_trunk(inputs, config, policy)
    x = HeadPool(dtype=policy.layer_dtype, name=HEAD_POOL)(x)
    x = layers.Dropout(config.dropout, dtype=policy.layer_dtype, name="head_dropout")(x)
    logits = policy.logits(x, config.num_classes)
    model = keras.Model(inputs, logits, name="student")
    if not config.trunk:
        parts = parts_by_prefix(model, ["stem", *stages], leave_out=CastTo)
    return attach(model, Structure(parts, HEAD_POOL))


def check_student_config(config: StudentConfig) -> None:
    """A ConfigError naming the key for a student that cannot be built."""
    if not config.widths:
        raise ConfigError("student.widths: must list at least one width")
    if config.num_classes < 2:
        raise ConfigError(f"num_classes must be at least 2, got {config.num_classes}")
    if config.trunk:
        if config.trunk not in STUDENT_TRUNKS:
            raise ConfigError(f"student.trunk: {config.trunk!r} is not one of "
                              f"{', '.join(STUDENT_TRUNKS)}")
        check_trunk(config.trunk, config.trunk_weights, config.input_shape, "student.trunk")


def _separable_trunk(inputs, config: StudentConfig, policy: PrecisionPolicy):
    """The last feature map of our separable stages, and the stages' names."""
    widths = student_widths(config)
    x = layers.Rescaling(1 / 255, dtype=policy.layer_dtype, name="stem_rescale")(inputs)
    x = apply_conv_bn_act(x, widths[0], 3, stem_stride(config.input_shape[0]), policy, "stem")
    stages = [f"stage{i}" for i in range(1, len(widths) + 1)]
    for i, (width, stage) in enumerate(zip(widths, stages)):
        x = apply_separable_block(x, width, 1 if i == 0 else 2, policy, stage)
    return x, stages
