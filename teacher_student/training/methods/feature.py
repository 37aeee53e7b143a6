"""Feature distillation: KD's term on the logits plus FitNets' hint (Romero et al., 2015) on
a feature map of each,

    distill.feature.weight * MSE(standardized adapter(student map), standardized teacher map)

The student's map is brought to the teacher's channels (a 1x1 convolution) and size
(bilinear) by an adapter that trains with the student, lives in the training checkpoints and
is not part of the exported student. The maps are `head` (the one each classifier's head pools,
as its builder recorded it) or a layer's name.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers, ops

from teacher_student.config.values import positive
from teacher_student.errors import ConfigError
from teacher_student.models.structure import structure_of
from teacher_student.training.methods.kd import KD

HEAD = "head"  # a layer name meaning: the map the classifier's head pools


@dataclass(frozen=True)
class Section:
    weight: float = 1.0  # of the hint loss on the feature maps
    teacher: str = HEAD  # the teacher's map: "head" or a layer name
    student: str = HEAD  # the student's map, likewise


CHECKS = {"weight": positive}
FLAT_KEYS = {"feature_weight": "weight", "teacher_feature": "teacher",
             "student_feature": "student"}


def check(distill) -> None:
    if len(distill.teachers) > 1:
        raise ConfigError(f"distill.teachers: the feature method learns from one teacher's "
                          f"feature map; {len(distill.teachers)} are listed")


def terms(distill, steps_per_epoch: int) -> list:
    section = distill.feature
    return [KD.of(distill), Hint(section.weight, section.teacher, section.student)]


@dataclass(frozen=True)
class Hint:
    weight: float
    teacher_layer: str
    student_layer: str
    name = "feature_loss"
    taps_features = True

    def tap(self, teacher: keras.Model, student: keras.Model) -> tuple[keras.Model, keras.Model]:
        """Teacher and student answering (logits, the map this hint compares)."""
        return (with_features(teacher, self.teacher_layer, "distill.feature.teacher"),
                with_features(student, self.student_layer, "distill.feature.student"))

    def adapter(self, student_map, teacher_map, policy) -> keras.Model:
        return build_adapter(student_map, teacher_map, policy)

    def __call__(self, outputs: dict, labels, step):
        return self.weight * hint_loss(outputs["adapted_features"], outputs["teacher_features"])


def hint_loss(student_features, teacher_features):
    """The mean squared difference of the standardized maps: each sample's map minus its mean
    over its standard deviation. Standardized, the loss is the same size for any teacher's
    scale."""
    return ops.mean(ops.square(_standardized_map(student_features)
                               - _standardized_map(teacher_features)))


def _standardized_map(features):
    features = ops.cast(features, "float32")
    mean = ops.mean(features, axis=(1, 2, 3), keepdims=True)
    variance = ops.mean(ops.square(features - mean), axis=(1, 2, 3), keepdims=True)
    return (features - mean) / ops.sqrt(variance + 1e-10)  # a constant map: a finite gradient


def with_features(model: keras.Model, layer_name: str, key: str) -> keras.Model:
    """The same model (the same layers and weights) answering (logits, feature map): `head` is
    the map its head pools (as its builder recorded, models/structure.py), anything else the
    output of the layer of that name."""
    if layer_name == HEAD:
        try:
            features = model.get_layer(structure_of(model).head_pool).input
        except ValueError as err:  # a model saved before its structure was kept in the file
            raise ConfigError(f"{key}: {model.name} does not record which map its head pools "
                              "(saved by an earlier version): name one of its layers") from err
    else:
        try:
            features = model.get_layer(layer_name).output
        except ValueError as err:
            raise ConfigError(f"{key}: {model.name} has no layer {layer_name!r}") from err
    if len(features.shape) != 4:
        raise ConfigError(f"{key}: {layer_name!r} of {model.name} is not a feature map "
                          f"(its shape is {tuple(features.shape)})")
    return keras.Model(model.inputs, [model.outputs[0], features], name=f"{model.name}_features")


def build_adapter(student_map, teacher_map, policy) -> keras.Model:
    """The student's feature map to the teacher's channels (a 1x1 convolution) and size
    (bilinear), in float32: the features meet in float32 whatever the precision policy."""
    inputs = keras.Input(student_map.shape[1:], dtype=student_map.dtype, name="student_map")
    x = policy.cast(inputs, "float32", name="adapter_in_float32")
    x = layers.Conv2D(teacher_map.shape[-1], 1, dtype=policy.float32_dtype,
                      name="adapter_conv")(x)
    if tuple(student_map.shape[1:3]) != tuple(teacher_map.shape[1:3]):
        x = layers.Resizing(*teacher_map.shape[1:3], interpolation="bilinear",
                            dtype=policy.float32_dtype, name="adapter_resize")(x)
    return keras.Model(inputs, x, name="feature_adapter")
