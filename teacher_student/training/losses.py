"""The losses of training and distillation: pure functions of float32 logits and features.

Every loss is averaged over the batch (the label loss over its labeled images). Sample
weights (class weights) multiply each image's loss and the sum is divided by the number of
images, as Keras' own losses weight samples, so the baseline and the distilled student are
weighted alike.
"""

from __future__ import annotations

from keras import ops


def label_loss(labels, logits, sample_weight=None, partner=None, share=None):
    """Cross-entropy with the labels, averaged over the labeled images: an image whose label
    is negative (UNLABELED, data/batches.py) has none. With mixing, image i counts `share[i]`
    of its own label and 1 - share[i] of the label of `partner[i]`, and its sample weight and
    whether it is labeled are mixed the same way.
    """
    log_p = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    labels = ops.cast(labels, "int32")
    labeled = ops.cast(labels >= 0, "float32")
    labels = ops.maximum(labels, 0)
    loss = -_pick(log_p, labels) * labeled
    weight = None if sample_weight is None else ops.cast(sample_weight, "float32")
    if partner is not None:
        partner_labeled = ops.take(labeled, partner, axis=0)
        loss = share * loss - (1 - share) * _pick(log_p, ops.take(labels, partner, axis=0)) \
            * partner_labeled
        labeled = share * labeled + (1 - share) * partner_labeled
        if weight is not None:
            weight = share * weight + (1 - share) * ops.take(weight, partner, axis=0)
    count = ops.sum(labeled)  # the batch size when every image is labeled
    total = ops.sum(loss if weight is None else loss * weight)
    return total / ops.where(count > 0, count, 1.0)


def standardize(logits):
    """Each sample's logits minus their mean, over their standard deviation (Sun et al., "Logit
    Standardization in Knowledge Distillation", CVPR 2024): the student then matches the
    relations between the teacher's logits, not their scale. The small constant goes inside the
    square root: at zero variance (a constant row) sqrt's own gradient is infinite, and the
    step's gradient NaN."""
    logits = ops.cast(logits, "float32")
    count = ops.cast(ops.shape(logits)[-1], "float32")
    mean = ops.mean(logits, axis=-1, keepdims=True)
    variance = ops.sum(ops.square(logits - mean), axis=-1, keepdims=True) / (count - 1)
    return (logits - mean) / ops.sqrt(variance + 1e-14)


def kd_loss(teacher_logits, student_logits, temperature: float, standardized: bool = False):
    """Knowledge distillation (Hinton, Vinyals and Dean, 2015, "Distilling the Knowledge in a
    Neural Network"):

        T^2 * KL(softmax(teacher / T) || softmax(student / T))

    The T^2 keeps the gradient's size independent of T. From log-softmax, so a zero teacher
    probability gives 0, not NaN. `standardized`: both logits standardized first.
    """
    teacher, student = _prepared(teacher_logits, student_logits, standardized)
    teacher_log_p = ops.log_softmax(teacher / temperature, axis=-1)
    student_log_p = ops.log_softmax(student / temperature, axis=-1)
    kl = ops.sum(ops.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)
    return temperature**2 * ops.mean(kl)


def dkd_loss(teacher_logits, student_logits, labels, alpha: float, beta: float,
             temperature: float, standardized: bool = False):
    """Decoupled knowledge distillation (Zhao et al., CVPR 2022):

        alpha * TCKD + beta * NCKD, each times T^2

    TCKD: KL between the teacher's and the student's binary distributions (target class
    against all others). NCKD: KL between their distributions over the non-target classes
    alone, which plain KD weights down by (1 - p_target) when the teacher is confident. The log
    probabilities come from log-sum-exps, so no probability is rounded to 0 before its log.
    """
    teacher, student = _prepared(teacher_logits, student_logits, standardized)
    target = ops.one_hot(ops.cast(labels, "int32"), ops.shape(student)[-1], dtype="float32")
    tckd = ops.mean(_binary_kl(teacher / temperature, student / temperature, target))
    # The target logit pushed far down: softmax over the non-target classes alone.
    teacher_rest = ops.log_softmax(teacher / temperature - 1000.0 * target, axis=-1)
    student_rest = ops.log_softmax(student / temperature - 1000.0 * target, axis=-1)
    nckd = ops.mean(ops.sum(ops.exp(teacher_rest) * (teacher_rest - student_rest), axis=-1))
    return temperature**2 * (alpha * tckd + beta * nckd)


def feature_loss(student_features, teacher_features):
    """FitNets' hint loss (Romero et al., 2015) on standardized feature maps: each sample's
    map (adapted student, teacher) minus its mean over its standard deviation, then the mean
    squared difference. Standardized, the loss is the same size for any teacher's scale."""
    return ops.mean(ops.square(_standardized_map(student_features)
                               - _standardized_map(teacher_features)))


def _standardized_map(features):
    features = ops.cast(features, "float32")
    mean = ops.mean(features, axis=(1, 2, 3), keepdims=True)
    variance = ops.mean(ops.square(features - mean), axis=(1, 2, 3), keepdims=True)
    return (features - mean) / ops.sqrt(variance + 1e-10)  # a constant map: a finite gradient


def _prepared(teacher_logits, student_logits, standardized: bool):
    if standardized:
        return standardize(teacher_logits), standardize(student_logits)
    return ops.cast(teacher_logits, "float32"), ops.cast(student_logits, "float32")


def _binary_kl(teacher, student, target):
    """KL([p_t, 1 - p_t] of the teacher || the same of the student), per sample."""
    def log_binary(logits):
        everything = ops.logsumexp(logits, axis=-1)
        return (ops.sum(logits * target, axis=-1) - everything,
                ops.logsumexp(logits - 1000.0 * target, axis=-1) - everything)

    (t_in, t_out), (s_in, s_out) = log_binary(teacher), log_binary(student)
    return ops.exp(t_in) * (t_in - s_in) + ops.exp(t_out) * (t_out - s_out)


def _pick(log_p, labels):
    return ops.squeeze(ops.take_along_axis(log_p, labels[:, None], axis=-1), axis=-1)
