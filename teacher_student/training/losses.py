"""The label loss and what every distillation method shares: pure functions of logits.

Each method's own loss sits beside its config in training/methods/. Every loss is averaged
over the batch (the label loss over its labeled images). Sample weights (class weights)
multiply each image's loss and the sum is divided by the number of images, as Keras' own
losses weight samples, so the baseline and the distilled student are weighted alike.
"""

from __future__ import annotations

from keras import ops


def label_loss(labels, logits, sample_weight=None, partner=None, share=None,
               smoothing: float = 0.0):
    """Cross-entropy with the labels, averaged over the labeled images: an image whose label
    is negative (UNLABELED, data/batches.py) has none. With mixing, image i counts `share[i]`
    of its own label and 1 - share[i] of the label of `partner[i]`, and its sample weight and
    whether it is labeled are mixed the same way. `smoothing` (label smoothing, Szegedy et al.
    2016) moves that share of each label's weight evenly onto every class.
    """
    log_p = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    labels = ops.cast(labels, "int32")
    labeled = ops.cast(labels >= 0, "float32")
    labels = ops.maximum(labels, 0)
    loss = _cross_entropy(log_p, labels, smoothing) * labeled
    weight = None if sample_weight is None else ops.cast(sample_weight, "float32")
    if partner is not None:
        partner_labeled = ops.take(labeled, partner, axis=0)
        partner_loss = _cross_entropy(log_p, ops.take(labels, partner, axis=0), smoothing)
        loss = share * loss + (1 - share) * partner_loss * partner_labeled
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


def prepared_logits(teacher_logits, student_logits, standardized: bool):
    """Teacher's and student's logits in float32, each standardized if asked."""
    if standardized:
        return standardize(teacher_logits), standardize(student_logits)
    return ops.cast(teacher_logits, "float32"), ops.cast(student_logits, "float32")


def _cross_entropy(log_p, labels, smoothing: float):
    """Per image, -log p of its label; smoothed, (1 - smoothing) of it plus smoothing times
    the mean of -log p over all classes."""
    loss = -_pick(log_p, labels)
    if smoothing:
        loss = (1 - smoothing) * loss - smoothing * ops.mean(log_p, axis=-1)
    return loss


def _pick(log_p, labels):
    return ops.squeeze(ops.take_along_axis(log_p, labels[:, None], axis=-1), axis=-1)
