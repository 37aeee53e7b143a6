"""What every method's loss is made of: teacher terms, each a weighted loss with a name.

    distillation loss = alpha * label loss + sum of the method's terms

A term is called with the step's outputs (`logits`, `teacher_logits`; with mixing `partner`
and `share`), the labels (negative: unlabeled) and the step count, and answers a float32
scalar. A term that compares feature maps (`taps_features`) also says which maps: its `tap`
makes teacher and student answer (logits, feature map), its `adapter` maps the student's map
to the teacher's, and the outputs then hold `adapted_features` and `teacher_features`.
Composing terms, not wrapping classes, makes a method: `feature` is KD's term and a hint (as
Keras' own `keras.distillation` combines its losses by weight).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from keras import ops


class Term(Protocol):
    name: str  # its name in the training logs
    taps_features: bool  # False: the logits alone

    def __call__(self, outputs: dict, labels, step): ...


def teacher_loss(terms: Sequence[Term], outputs: dict, labels, step):
    """The sum of the terms: what the teacher adds to the label loss."""
    return sum(term(outputs, labels, step) for term in terms)


def major_labels(outputs: dict, labels, unlabeled_as=None):
    """Each image's label; under mixing, the label it holds most of. An image without a label
    (a negative one) gets the teacher's top class, or `unlabeled_as`."""
    labels = ops.cast(labels, "int32")
    if "partner" in outputs:
        labels = ops.where(outputs["share"] >= 0.5, labels,
                           ops.take(labels, outputs["partner"], axis=0))
    stand_in = teacher_classes(outputs) if unlabeled_as is None else unlabeled_as
    return ops.where(labels >= 0, labels, stand_in)


def teacher_classes(outputs: dict):
    return ops.cast(ops.argmax(outputs["teacher_logits"], axis=-1), "int32")
