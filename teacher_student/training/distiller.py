"""The distiller: trains a student on labels and on a frozen teacher that sees the same batch.

    loss = alpha * label loss + the method's teacher terms

A `Trainee` whose `call` (in training) augments and mixes the batch once and shows the result
to both the student and the teacher (Beyer et al., CVPR 2022: "a good teacher is patient and
consistent"); the teacher runs in inference mode, gradient-stopped. Images without a label
(distill.unlabeled; a negative label in the batch) get the teacher terms alone. Evaluation skips
the teacher and reports the student alone. The methods (`METHODS`, by name) are small classes made
from the config that compute their terms from the logits; `feature` also gets the two feature
maps, the student's mapped to the teacher's channels (and size) by a learned 1x1 convolution
adapter that trains with the student, is saved in the training checkpoints, and is not part of
the exported student.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers, ops

from teacher_student.config import DistillConfig
from teacher_student.errors import ConfigError
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.structure import structure_of
from teacher_student.training.losses import dkd_loss, feature_loss, kd_loss
from teacher_student.training.trainee import Trainee

HEAD_INPUT = "head"  # a feature key meaning: the map the classifier's head pools


@dataclass(frozen=True)
class KD:
    """Hinton's KD on the softened logits (standardized first if asked)."""
    weight: float
    temperature: float
    standardized: bool = False
    uses_features = False

    @classmethod
    def of(cls, config: DistillConfig, steps_per_epoch: int) -> KD:
        weight = config.kd_weight if config.kd_weight is not None else 1 - config.alpha
        return cls(weight, config.temperature, config.standardize_logits)

    def terms(self, outputs: dict, labels, step) -> dict:
        return {"kd_loss": self.weight * kd_loss(outputs["teacher_logits"], outputs["logits"],
                                                 self.temperature, self.standardized)}


@dataclass(frozen=True)
class DKD:
    """Decoupled KD, its weight ramped up linearly over the first `warmup_steps` steps (as its
    authors warm it up over the first epochs)."""
    alpha: float
    beta: float
    temperature: float
    warmup_steps: int
    standardized: bool = False
    uses_features = False

    @classmethod
    def of(cls, config: DistillConfig, steps_per_epoch: int) -> DKD:
        return cls(config.dkd_alpha, config.dkd_beta, config.temperature,
                   round(config.dkd_warmup_epochs * steps_per_epoch), config.standardize_logits)

    def terms(self, outputs: dict, labels, step) -> dict:
        ramp = ops.minimum(step / max(self.warmup_steps, 1), 1.0)
        labels = _major_labels(outputs, labels)
        return {"dkd_loss": ramp * dkd_loss(outputs["teacher_logits"], outputs["logits"], labels,
                                            self.alpha, self.beta, self.temperature,
                                            self.standardized)}


@dataclass(frozen=True)
class FeatureKD:
    """KD on the logits plus FitNets' hint loss on the adapted feature maps."""
    logits: KD
    weight: float
    uses_features = True

    @classmethod
    def of(cls, config: DistillConfig, steps_per_epoch: int) -> FeatureKD:
        return cls(KD.of(config, steps_per_epoch), config.feature_weight)

    def terms(self, outputs: dict, labels, step) -> dict:
        hint = feature_loss(outputs["adapted_features"], outputs["teacher_features"])
        return {**self.logits.terms(outputs, labels, step), "feature_loss": self.weight * hint}


# The methods, by the name `distill.method` gives; config/schema.py lists the same names so
# that a config is checked without importing Keras.
METHODS = {"kd": KD, "dkd": DKD, "feature": FeatureKD}


def method_of(config: DistillConfig, steps_per_epoch: int):
    """The configured method's terms."""
    return METHODS[config.method].of(config, steps_per_epoch)


class Distiller(Trainee):
    def __init__(self, teacher: keras.Model, student: keras.Model, method, alpha: float,
                 augment: str = "none", mix: str = "none", seed: int = 0,
                 policy: PrecisionPolicy | None = None, teacher_feature: str = HEAD_INPUT,
                 student_feature: str = HEAD_INPUT, **kwargs):
        """
        teacher: the classifier to learn from; frozen here, and run in inference mode.
        student: the classifier that trains (and is what gets deployed).
        method: the teacher terms of the loss (`method_of`: KD, DKD or FeatureKD).
        alpha: the weight of the label loss, in [0, 1].
        augment, mix, seed: the batch's augmentation and mixing, as for any `Trainee`; the
            teacher sees the same transformed batch as the student.
        policy: the precision policy that the feature adapter's casts follow (feature method).
        teacher_feature, student_feature: the feature maps the hint matches: `head` (the map
            each head pools) or a layer name (feature method).
        """
        super().__init__(student, augment, mix, seed, name=kwargs.pop("name", "distiller"),
                         **kwargs)
        if not 0 <= alpha <= 1:
            raise ConfigError(f"distill.alpha: must be in [0, 1], got {alpha}")
        self.teacher = teacher
        self.teacher.trainable = False  # takes effect at the next compile()
        self.method = method
        self.alpha = alpha
        self.step = keras.Variable(0.0, trainable=False, name="distillation_step")
        if method.uses_features:
            self.teacher = with_features(teacher, teacher_feature, "distill.teacher_feature")
            self.model = with_features(student, student_feature, "distill.student_feature")
            self.adapter = build_adapter(self.model.outputs[1], self.teacher.outputs[1],
                                         policy or PrecisionPolicy())
        self.student = student
        self.label_loss_tracker = keras.metrics.Mean(name="label_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        # How often the teacher is right on the labeled images it teaches: near 1, its soft
        # targets say little beyond the labels; well below its test accuracy, something is
        # wrong.
        self.teacher_accuracy = keras.metrics.Mean(name="teacher_accuracy")
        self.built = True

    def call(self, images, training=False):
        if not training:
            return self.student(images, training=False)
        outputs = self.transform(images)
        images = outputs.pop("images")
        # BatchNorm in inference mode, and no backward pass through the frozen teacher.
        teacher_out = self.teacher(images, training=False)
        student_out = self.model(images, training=True)
        if self.method.uses_features:
            (teacher_out, teacher_map), (student_out, student_map) = teacher_out, student_out
            outputs["teacher_features"] = ops.stop_gradient(teacher_map)
            outputs["adapted_features"] = self.adapter(student_map)
        outputs["teacher_logits"] = ops.stop_gradient(teacher_out)
        outputs["logits"] = student_out
        return outputs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        labels = super().compute_loss(x, y, y_pred, sample_weight, training)
        self.label_loss_tracker.update_state(labels)
        if not isinstance(y_pred, dict):  # evaluation: the student alone
            return labels
        self.step.assign(self.step + 1.0)
        hits, labeled = _hits(y_pred, y)
        self.teacher_accuracy.update_state(hits, sample_weight=labeled)
        teacher_terms = sum(self.method.terms(y_pred, y, self.step).values())
        self.distillation_loss_tracker.update_state(teacher_terms)
        return self.alpha * labels + teacher_terms

    @property
    def metrics(self):
        return [*super().metrics, self.label_loss_tracker, self.distillation_loss_tracker,
                self.teacher_accuracy]

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        results = super().compute_metrics(x, y, y_pred, sample_weight)
        if isinstance(y_pred, dict):
            return results
        # Evaluation runs the student alone: what only the teacher measures is not reported.
        return {name: value for name, value in results.items()
                if name not in (self.distillation_loss_tracker.name, self.teacher_accuracy.name)}


def _hits(outputs: dict, labels):
    """1 where the teacher's top class is the label (under mixing: the label an image holds
    most of), else 0; and 1 where there is a label to compare with, else 0."""
    predicted = _teacher_classes(outputs)
    major = _major_labels(outputs, labels, unlabeled_as=-1)
    return ops.cast(ops.equal(predicted, major), "float32"), ops.cast(major >= 0, "float32")


def _major_labels(outputs: dict, labels, unlabeled_as=None):
    """Each image's label; under mixing, the label it holds most of. An image without a label
    (a negative one) gets the teacher's top class, or `unlabeled_as`."""
    labels = ops.cast(labels, "int32")
    if "partner" in outputs:
        labels = ops.where(outputs["share"] >= 0.5, labels,
                           ops.take(labels, outputs["partner"], axis=0))
    stand_in = _teacher_classes(outputs) if unlabeled_as is None else unlabeled_as
    return ops.where(labels >= 0, labels, stand_in)


def _teacher_classes(outputs: dict):
    return ops.cast(ops.argmax(outputs["teacher_logits"], axis=-1), "int32")


def with_features(model: keras.Model, layer_name: str, key: str) -> keras.Model:
    """The same model (the same layers and weights) answering (logits, feature map):
    `head` is the map its head pools (as its builder recorded, structure.py), anything else
    the output of the layer of that name."""
    if layer_name == HEAD_INPUT:
        features = model.get_layer(structure_of(model).head_pool).input
    else:
        try:
            features = model.get_layer(layer_name).output
        except ValueError as err:
            raise ConfigError(f"{key}: {model.name} has no layer {layer_name!r}") from err
    if len(features.shape) != 4:
        raise ConfigError(f"{key}: {layer_name!r} of {model.name} is not a feature map "
                          f"(its shape is {tuple(features.shape)})")
    return keras.Model(model.inputs, [model.outputs[0], features], name=f"{model.name}_features")


def build_adapter(student_map, teacher_map, policy: PrecisionPolicy) -> keras.Model:
    """The student's feature map to the teacher's channels (a 1x1 convolution) and size
    (bilinear), in float32: the features meet in float32 whatever the policy."""
    inputs = keras.Input(student_map.shape[1:], dtype=student_map.dtype, name="student_map")
    x = policy.cast(inputs, "float32", name="adapter_in_float32")
    x = layers.Conv2D(teacher_map.shape[-1], 1, dtype=policy.float32_dtype,
                      name="adapter_conv")(x)
    if tuple(student_map.shape[1:3]) != tuple(teacher_map.shape[1:3]):
        x = layers.Resizing(*teacher_map.shape[1:3], interpolation="bilinear",
                            dtype=policy.float32_dtype, name="adapter_resize")(x)
    return keras.Model(inputs, x, name="feature_adapter")
