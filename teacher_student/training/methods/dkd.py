"""Decoupled knowledge distillation (Zhao et al., CVPR 2022):

    ramp * T^2 * (distill.dkd.alpha * TCKD + distill.dkd.beta * NCKD)

TCKD: KL between the teacher's and the student's binary distributions (target class against
all others). NCKD: KL between their distributions over the non-target classes alone, which
plain KD weights down by (1 - p_target) when the teacher is confident. The ramp rises linearly
over the first `distill.dkd.warmup_epochs`, as its authors warm it up.
"""

from __future__ import annotations

from dataclasses import dataclass

from keras import ops

from teacher_student.config.values import non_negative, positive
from teacher_student.training.losses import prepared_logits
from teacher_student.training.methods.terms import major_labels


@dataclass(frozen=True)
class Section:
    alpha: float = 1.0  # weight of the target-class part (TCKD)
    # Weight of the non-target part (NCKD). Its authors use 8 on CIFAR-100's 100 classes and
    # 0.5 on ImageNet; on 10 classes 8 swamps the label loss (BENCHMARKS.md)
    beta: float = 2.0
    warmup_epochs: float = 1.0  # its weight ramps up linearly over these epochs


CHECKS = {"alpha": positive, "beta": positive, "warmup_epochs": non_negative}
FLAT_KEYS = {"dkd_alpha": "alpha", "dkd_beta": "beta", "dkd_warmup_epochs": "warmup_epochs"}


def check(distill) -> None:
    """Any teacher, any number of them."""


def terms(distill, steps_per_epoch: int) -> list:
    section = distill.dkd
    return [DKD(section.alpha, section.beta, distill.temperature,
                round(section.warmup_epochs * steps_per_epoch), distill.standardize_logits)]


@dataclass(frozen=True)
class DKD:
    alpha: float
    beta: float
    temperature: float
    warmup_steps: int
    standardized: bool = False
    name = "dkd_loss"
    taps_features = False

    def __call__(self, outputs: dict, labels, step):
        ramp = ops.minimum(step / max(self.warmup_steps, 1), 1.0)
        return ramp * dkd_loss(outputs["teacher_logits"], outputs["logits"],
                               major_labels(outputs, labels), self.alpha, self.beta,
                               self.temperature, self.standardized)


def dkd_loss(teacher_logits, student_logits, labels, alpha: float, beta: float,
             temperature: float, standardized: bool = False):
    """T^2 * (alpha * TCKD + beta * NCKD), averaged over the batch. The log probabilities come
    from log-sum-exps, so no probability is rounded to 0 before its log."""
    teacher, student = prepared_logits(teacher_logits, student_logits, standardized)
    target = ops.one_hot(ops.cast(labels, "int32"), ops.shape(student)[-1], dtype="float32")
    tckd = ops.mean(_binary_kl(teacher / temperature, student / temperature, target))
    # The target logit pushed far down: softmax over the non-target classes alone.
    teacher_rest = ops.log_softmax(teacher / temperature - 1000.0 * target, axis=-1)
    student_rest = ops.log_softmax(student / temperature - 1000.0 * target, axis=-1)
    nckd = ops.mean(ops.sum(ops.exp(teacher_rest) * (teacher_rest - student_rest), axis=-1))
    return temperature**2 * (alpha * tckd + beta * nckd)


def _binary_kl(teacher, student, target):
    """KL([p_t, 1 - p_t] of the teacher || the same of the student), per sample."""
    def log_binary(logits):
        everything = ops.logsumexp(logits, axis=-1)
        return (ops.sum(logits * target, axis=-1) - everything,
                ops.logsumexp(logits - 1000.0 * target, axis=-1) - everything)

    (t_in, t_out), (s_in, s_out) = log_binary(teacher), log_binary(student)
    return ops.exp(t_in) * (t_in - s_in) + ops.exp(t_out) * (t_out - s_out)
