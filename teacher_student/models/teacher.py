"""The teacher: a multi-scale CNN with CBAM attention.

    image (uint8) -> rescale -> trunk -> features at the last three scales
                  -> fusion (1x1 lateral, pool down / bilinear up to the middle scale, concat)
                  -> 1x1 conv + CBAM -> global pool -> dropout -> float32 logits

The trunk is either our own residual CBAM stages (`stem`, `stage1`, ...) or a
`keras.applications` network. Each trunk part ends in a `GradientGate`, so freezing a part also
stops its gradient (see freezing.py); the parts are recorded in the head's pool, a `HeadPool`
(structure.py).
"""

from __future__ import annotations

import keras
from keras import layers

from teacher_student.config.schema import TeacherConfig
from teacher_student.errors import ConfigError
from teacher_student.models.applications import applications_trunk, check_trunk, trunk_parts
from teacher_student.models.blocks import (
    apply_cbam,
    apply_conv_bn_act,
    apply_multiscale_fusion,
    apply_residual_block,
    stem_stride,
)
from teacher_student.models.layers import CastTo, GradientGate
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.structure import HeadPool, Structure, attach, parts_by_prefix

SCALES = 3  # features are taken at the last three resolutions
HEAD_POOL = "head_pool"


def build_teacher(config: TeacherConfig, policy: PrecisionPolicy,
                  stochastic_depth: float = 0.0) -> keras.Model:
    """`stochastic_depth`: the rate at which the last residual stage's branch is dropped in
    training (the earlier ones' rise linearly to it, Huang et al. 2016); a network trained so
    and one built without it have the same weights, by name."""
    check_teacher_config(config)
    inputs = keras.Input(config.input_shape, dtype="uint8", name="image")
    if config.trunk:
        features, trunk = applications_trunk(inputs, config.trunk, config.trunk_weights,
                                             policy, SCALES, key="teacher.trunk")
        features = [GradientGate(dtype=policy.layer_dtype, name=f"trunk_gate{i}")(f)
                    for i, f in enumerate(features)]
    else:
        features = _residual_trunk(inputs, config, policy, stochastic_depth)
    x = apply_multiscale_fusion(features, config.fusion_width, config.upsampling, policy,
                                "fusion")
    x = apply_conv_bn_act(x, config.fusion_width, 1, 1, policy, "fusion_mix")
    if config.cbam:
        x = apply_cbam(x, config.cbam_reduction, policy, "fusion_cbam")
    x = HeadPool(dtype=policy.layer_dtype, name=HEAD_POOL)(x)
    x = layers.Dropout(config.dropout, dtype=policy.layer_dtype, name="head_dropout")(x)
    logits = policy.logits(x, config.num_classes)
    model = keras.Model(inputs, logits, name="teacher")
    if config.trunk:
        structure = Structure(trunk_parts(trunk), HEAD_POOL,
                              tuple(f"trunk_gate{i}" for i in range(SCALES)))
    else:
        stages = [f"stage{i}" for i in range(1, len(config.widths) + 1)]
        structure = Structure(parts_by_prefix(model, ["stem", *stages], leave_out=CastTo),
                              HEAD_POOL)
    return attach(model, structure)


def check_teacher_config(config: TeacherConfig) -> None:
    """A ConfigError naming the key for a teacher that cannot be built."""
    if not config.trunk and len(config.widths) < SCALES:
        raise ConfigError(
            f"teacher.widths: needs at least {SCALES} stages for multi-scale fusion, "
            f"got {list(config.widths)}"
        )
    if config.trunk:
        check_trunk(config.trunk, config.trunk_weights, config.input_shape, "teacher.trunk")
    size = config.input_shape[0]
    stride = 2 ** (len(config.widths) - 1) * stem_stride(size) if not config.trunk else 32
    if size % stride:
        raise ConfigError(
            f"data.image_size: {size} must be a multiple of {stride} so that the feature maps of "
            "every scale line up; choose e.g. " + str(max(stride, size // stride * stride))
        )
    if config.num_classes < 2:
        raise ConfigError(f"num_classes must be at least 2, got {config.num_classes}")


def _residual_trunk(inputs, config: TeacherConfig, policy: PrecisionPolicy,
                    stochastic_depth: float) -> list:
    x = layers.Rescaling(1 / 255, dtype=policy.layer_dtype, name="stem_rescale")(inputs)
    x = apply_conv_bn_act(x, config.widths[0], 3, stem_stride(config.input_shape[0]), policy,
                          "stem")
    x = GradientGate(dtype=policy.layer_dtype, name="stem_gate")(x)
    outputs = []
    for i, width in enumerate(config.widths, start=1):
        name = f"stage{i}"
        x = apply_residual_block(x, width, 1 if i == 1 else 2, policy, name, config.cbam,
                                 config.cbam_reduction,
                                 stochastic_depth * i / len(config.widths))
        x = GradientGate(dtype=policy.layer_dtype, name=f"{name}_gate")(x)
        outputs.append(x)
    return outputs[-SCALES:]
