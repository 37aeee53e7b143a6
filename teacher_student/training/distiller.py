"""The distiller: trains a student on labels and on a frozen teacher that sees the same batch.

    loss = alpha * label loss + the method's teacher terms (training/methods/)

A `Trainee` whose `call` (in training) augments and mixes the batch once and shows the result
to both the student and the teacher (Beyer et al., CVPR 2022: "a good teacher is patient and
consistent"); the teacher runs in inference mode, gradient-stopped. Images without a label
(distill.unlabeled; a negative label in the batch) get the teacher terms alone. Evaluation skips
the teacher and reports the student alone. A term that compares feature maps taps teacher and
student for them, and its adapter (trained with the student, saved in the training checkpoints,
not part of the exported student) maps the student's map to the teacher's.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from teacher_student.errors import ConfigError
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.training.methods import METHODS
from teacher_student.training.methods.terms import (
    Term,
    major_labels,
    teacher_classes,
    teacher_loss,
)
from teacher_student.training.trainee import Trainee


def method_terms(distill, steps_per_epoch: int) -> list[Term]:
    """The configured method's teacher terms."""
    return METHODS[distill.method].terms(distill, steps_per_epoch)


class Distiller(Trainee):
    def __init__(self, teacher: keras.Model, student: keras.Model, terms: Sequence[Term],
                 alpha: float, augment: str = "none", mix: str = "none", seed: int = 0,
                 policy: PrecisionPolicy | None = None, flip: bool = False,
                 clean_teacher: bool = False, **kwargs):
        """
        teacher: the classifier to learn from; frozen here, and run in inference mode.
        student: the classifier that trains (and is what gets deployed).
        terms: the teacher terms of the loss (`method_terms`).
        alpha: the weight of the label loss, in [0, 1].
        augment, mix, seed, flip: the batch's augmentation and mixing, as for any `Trainee`;
            the teacher sees the same transformed batch as the student.
        policy: the precision policy that a feature adapter's casts follow.
        clean_teacher: the teacher sees the batch as it came, not augmented (Noisy Student:
            clean soft labels, noised images to learn them from); no mixing then.
        """
        super().__init__(student, augment, mix, seed, flip,
                         name=kwargs.pop("name", "distiller"), **kwargs)
        if not 0 <= alpha <= 1:
            raise ConfigError(f"distill.alpha: must be in [0, 1], got {alpha}")
        if clean_teacher and mix != "none":
            raise ValueError("a teacher of clean images answers for unmixed ones: no mixing")
        self.teacher = teacher
        self.teacher.trainable = False  # takes effect at the next compile()
        self.clean_teacher = clean_teacher
        self.terms = tuple(terms)
        self.alpha = alpha
        self.step = keras.Variable(0.0, trainable=False, name="distillation_step")
        tapping = [term for term in self.terms if term.taps_features]
        self.taps_features = bool(tapping)
        if len(tapping) > 1:
            raise ValueError("one term at most may compare feature maps")
        if tapping:
            self.teacher, self.model = tapping[0].tap(teacher, student)
            self.adapter = tapping[0].adapter(self.model.outputs[1], self.teacher.outputs[1],
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
        clean = images
        outputs = self.transform(images)
        images = outputs.pop("images")
        # BatchNorm in inference mode, and no backward pass through the frozen teacher.
        teacher_out = self.teacher(clean if self.clean_teacher else images, training=False)
        student_out = self.model(images, training=True)
        if self.taps_features:
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
        teacher_terms = teacher_loss(self.terms, y_pred, y, self.step)
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
    predicted = teacher_classes(outputs)
    major = major_labels(outputs, labels, unlabeled_as=-1)
    return ops.cast(ops.equal(predicted, major), "float32"), ops.cast(major >= 0, "float32")
