"""Loss functions of distillation, pure functions of float32 logits."""

from __future__ import annotations

from keras import ops


def distillation_loss(teacher_logits, student_logits, temperature: float):
    """Knowledge distillation (Hinton, Vinyals and Dean, 2015, "Distilling the Knowledge in a
    Neural Network"):

        T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.

    The T^2 keeps the gradient's size independent of T. Computed in float32 from log-softmax,
    so a zero teacher probability gives 0, not NaN.
    """
    teacher_log_p = ops.log_softmax(ops.cast(teacher_logits, "float32") / temperature, axis=-1)
    student_log_p = ops.log_softmax(ops.cast(student_logits, "float32") / temperature, axis=-1)
    kl = ops.sum(ops.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)
    return temperature**2 * ops.mean(kl)


def classification_loss(labels, logits, sample_weight=None):
    """Sparse categorical cross-entropy on float32 logits, weighted per sample if asked."""
    per_sample = ops.sparse_categorical_crossentropy(labels, ops.cast(logits, "float32"),
                                                     from_logits=True)
    if sample_weight is None:
        return ops.mean(per_sample)
    weights = ops.cast(sample_weight, "float32")
    return ops.sum(per_sample * weights) / ops.maximum(ops.sum(weights), 1e-7)
