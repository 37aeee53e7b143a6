"""The student: a narrow depthwise-separable CNN with the teacher's input and head contract.

    image (uint8) -> rescale -> 3x3 stem -> separable stages (stride 2 after the first)
                  -> global pool -> dropout -> float32 logits
"""

from __future__ import annotations

import keras
from keras import layers

from teacher_student.config.schema import StudentConfig
from teacher_student.errors import ConfigError
from teacher_student.models.blocks import apply_conv_bn_act, apply_separable_block, stem_stride
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.structure import Structure, attach, parts_by_prefix


def build_student(config: StudentConfig, policy: PrecisionPolicy) -> keras.Model:
    if not config.widths:
        raise ConfigError("student.widths: must list at least one width")
    if config.num_classes < 2:
        raise ConfigError(f"num_classes must be at least 2, got {config.num_classes}")
    inputs = keras.Input(config.input_shape, dtype="uint8", name="image")
    x = layers.Rescaling(1 / 255, dtype=policy.layer_dtype, name="stem_rescale")(inputs)
    x = apply_conv_bn_act(x, config.widths[0], 3, stem_stride(config.input_shape[0]), policy,
                          "stem")
    stages = [f"stage{i}" for i in range(1, len(config.widths) + 1)]
    for i, (width, stage) in enumerate(zip(config.widths, stages)):
        x = apply_separable_block(x, width, 1 if i == 0 else 2, policy, stage)
    x = layers.GlobalAveragePooling2D(dtype=policy.layer_dtype, name="head_pool")(x)
    x = layers.Dropout(config.dropout, dtype=policy.layer_dtype, name="head_dropout")(x)
    logits = policy.logits(x, config.num_classes)
    model = keras.Model(inputs, logits, name="student")
    return attach(model, Structure(parts_by_prefix(model, ["stem", *stages]), "head_pool"))
