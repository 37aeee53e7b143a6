"""Knowledge distillation (Hinton, Vinyals and Dean, 2015, "Distilling the Knowledge in a
Neural Network"): the student matches the teacher's softened class probabilities.

    distill.kd.weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))
"""

from __future__ import annotations

from dataclasses import dataclass

from keras import ops

from teacher_student.config.values import positive
from teacher_student.training.losses import prepared_logits


@dataclass(frozen=True)
class Section:
    weight: float | None = None  # of the KD term; null: 1 - distill.alpha


CHECKS = {"weight": positive}
FLAT_KEYS = {"kd_weight": "weight"}


def check(distill) -> None:
    """Any teacher, any number of them."""


def terms(distill, steps_per_epoch: int) -> list:
    return [KD.of(distill)]


@dataclass(frozen=True)
class KD:
    """The KD term on the logits, standardized first if `distill.standardize_logits`."""
    weight: float
    temperature: float
    standardized: bool = False
    name = "kd_loss"
    taps_features = False

    @classmethod
    def of(cls, distill) -> KD:
        weight = distill.kd.weight if distill.kd.weight is not None else 1 - distill.alpha
        return cls(weight, distill.temperature, distill.standardize_logits)

    def __call__(self, outputs: dict, labels, step):
        return self.weight * kd_loss(outputs["teacher_logits"], outputs["logits"],
                                     self.temperature, self.standardized)


def kd_loss(teacher_logits, student_logits, temperature: float, standardized: bool = False):
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.

    The T^2 keeps the gradient's size independent of T. From log-softmax, so a zero teacher
    probability gives 0, not NaN. `standardized`: both logits standardized first.
    """
    teacher, student = prepared_logits(teacher_logits, student_logits, standardized)
    teacher_log_p = ops.log_softmax(teacher / temperature, axis=-1)
    student_log_p = ops.log_softmax(student / temperature, axis=-1)
    kl = ops.sum(ops.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)
    return temperature**2 * ops.mean(kl)
