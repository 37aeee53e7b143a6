"""Calibration, agreement with the teacher and the top confusions, on numbers worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from teacher_student.outputs import metrics


def test_ece_is_the_image_weighted_gap_between_accuracy_and_confidence():
    # Four images answered with 0.9 (three right), two with 0.55 (one right).
    probabilities = np.array([[0.9, 0.1]] * 4 + [[0.55, 0.45]] * 2)
    labels = np.array([0, 0, 0, 1, 0, 1])
    found = metrics.reliability(probabilities, labels)
    assert found.counts.sum() == 6 and (found.counts > 0).sum() == 2
    expected = (4 * abs(0.75 - 0.9) + 2 * abs(0.5 - 0.55)) / 6
    assert found.ece == pytest.approx(expected)
    assert metrics.expected_calibration_error(probabilities, labels) == pytest.approx(expected)
    assert len(found.edges) == metrics.CALIBRATION_BINS + 1


def test_a_calibrated_model_has_an_ece_of_zero_and_a_sure_wrong_one_of_one():
    sure = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert metrics.expected_calibration_error(sure, np.array([0, 1])) == pytest.approx(0.0)
    assert metrics.expected_calibration_error(sure, np.array([1, 0])) == pytest.approx(1.0)


def test_agreement_and_kl_compare_whole_answers_with_the_teachers():
    teacher = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    same = teacher.copy()
    other = np.array([[0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    assert metrics.agreement(teacher, same) == 1.0
    assert metrics.agreement(teacher, other) == 0.5
    assert metrics.mean_kl(teacher, same) == pytest.approx(0.0, abs=1e-9)
    expected = (0.7 * np.log(0.7 / 0.2) + 0.2 * np.log(0.2 / 0.7)) / 2
    assert metrics.mean_kl(teacher, other) == pytest.approx(expected)


def test_normalized_confusion_rows_are_shares_of_the_true_class():
    counts, shares = metrics.normalized_confusion(np.array([0, 0, 0, 0, 1]),
                                                  np.array([0, 0, 0, 1, 1]), 3)
    assert counts.tolist() == [[3, 1, 0], [0, 1, 0], [0, 0, 0]]
    np.testing.assert_allclose(shares, [[0.75, 0.25, 0], [0, 1, 0], [0, 0, 0]])


def test_top_confusions_list_the_most_frequent_mistakes_first():
    y_true = np.array([0] * 10 + [1] * 4 + [2] * 2)
    y_pred = np.array([0] * 7 + [1] * 3 + [2] * 2 + [1] * 2 + [0, 2])
    frame = metrics.top_confusions(y_true, y_pred, ["cat", "dog", "fox"], limit=2)
    assert frame[["true", "predicted", "images"]].values.tolist() == [
        ["cat", "dog", 3], ["dog", "fox", 2]]
    assert frame["share_of_true_class"].tolist() == pytest.approx([0.3, 0.5])
    assert metrics.top_confusions(y_true, y_true, ["cat", "dog", "fox"]).empty
