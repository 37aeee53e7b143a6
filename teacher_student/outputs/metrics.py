"""Numbers of a model's test predictions beyond accuracy: calibration, agreement with the
teacher, and the confusions that matter most. NumPy and pandas only: any backend.

- expected calibration error (Guo et al., ICML 2017, "On Calibration of Modern Neural
  Networks"): the test images binned by their top-1 probability into 15 equal-width bins; the
  mean over images of |accuracy - confidence| of their bin. 0 is calibrated: among images
  answered with 80% confidence, 80% are right.
- agreement: the share of images on which a model's top-1 class is the teacher's; what a
  student copied of its teacher, right or wrong.
- mean KL(teacher || model) in nats, at temperature 1: how far the whole answer is from the
  teacher's, beyond the top class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

CALIBRATION_BINS = 15
EPSILON = 1e-12  # keeps log(0) out of the KL divergence


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin of equal width over [0, 1]: images, mean confidence, accuracy
    (NaN in empty bins)."""
    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        total = self.counts.sum()
        if not total:
            return float("nan")
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(np.sum(self.counts[filled] * gaps) / total)


def reliability(probabilities: np.ndarray, labels: np.ndarray,
                bins: int = CALIBRATION_BINS) -> Reliability:
    """The reliability of top-1 answers: `probabilities` [N, classes], integer `labels` [N]."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    confidence = probabilities.max(axis=-1) if len(probabilities) else np.zeros(0)
    correct = (probabilities.argmax(axis=-1) == labels) if len(probabilities) else np.zeros(0)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # A confidence of exactly 1 belongs to the last bin, 0 to the first.
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, confidence, minlength=bins) / counts
        accuracy = np.bincount(which, correct.astype(np.float64), minlength=bins) / counts
    return Reliability(edges, counts, mean_confidence, accuracy)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = CALIBRATION_BINS) -> float:
    return reliability(probabilities, labels, bins).ece


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)


def agreement(reference: np.ndarray, probabilities: np.ndarray) -> float:
    """The share of images whose top-1 class is the same in both."""
    if not len(reference):
        return float("nan")
    return float(np.mean(np.argmax(reference, -1) == np.argmax(probabilities, -1)))


def mean_kl(reference: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean over images of KL(reference || probabilities), in nats."""
    if not len(reference):
        return float("nan")
    p = np.clip(np.asarray(reference, dtype=np.float64), EPSILON, 1.0)
    q = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1.0)
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1)))


def normalized_confusion(y_true: np.ndarray, y_pred: np.ndarray,
                         num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(counts, shares): the confusion matrix (rows: true class, columns: predicted) and each
    row divided by its total (the share of the true class answered as each class; a class
    absent from the test split is a row of zeros)."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)),
              1)
    totals = counts.sum(axis=1, keepdims=True)
    return counts, np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)


def top_confusions(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str],
                   limit: int = 20) -> pd.DataFrame:
    """The most frequent mistakes: true class, predicted class, images, and their share of the
    true class's test images; most images first (then the larger share)."""
    counts, shares = normalized_confusion(y_true, y_pred, len(class_names))
    np.fill_diagonal(counts, 0)
    true, predicted = np.nonzero(counts)
    frame = pd.DataFrame({"true": [class_names[i] for i in true],
                          "predicted": [class_names[j] for j in predicted],
                          "images": counts[true, predicted],
                          "share_of_true_class": shares[true, predicted]})
    return frame.sort_values(["images", "share_of_true_class"], ascending=False,
                             kind="stable").head(limit).reset_index(drop=True)
