"""Each loss against a NumPy reference written from its paper's definition, on a fixed batch."""

from __future__ import annotations

import numpy as np
import pytest

from teacher_student.training import losses
from teacher_student.training.methods.dkd import dkd_loss
from teacher_student.training.methods.feature import hint_loss
from teacher_student.training.methods.kd import kd_loss

RNG = np.random.default_rng(0)
TEACHER = (RNG.normal(size=(6, 5)) * 3).astype("float32")
STUDENT = RNG.normal(size=(6, 5)).astype("float32")
LABELS = np.array([0, 1, 2, 3, 4, 0], dtype="int32")


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kl(p, q):
    """KL(p || q) per row."""
    return np.sum(p * (np.log(p) - np.log(q)), axis=-1)


def zscore(z):
    deviation = np.sqrt(z.var(axis=-1, ddof=1, keepdims=True) + 1e-14)
    return (z - z.mean(axis=-1, keepdims=True)) / deviation


def test_label_loss_is_the_mean_cross_entropy_weighted_per_sample():
    p = softmax(STUDENT)
    each = -np.log(p[np.arange(6), LABELS])
    assert float(losses.label_loss(LABELS, STUDENT)) == pytest.approx(each.mean(), rel=1e-5)
    weights = np.array([1, 2, 0.5, 1, 3, 1], dtype="float32")
    # sum(w * l) / N: as Keras' own losses weight samples
    assert float(losses.label_loss(LABELS, STUDENT, weights)) == pytest.approx(
        (weights * each).sum() / 6, rel=1e-5)


def test_mixed_label_loss_counts_each_label_by_its_share():
    partner = np.array([1, 0, 3, 2, 5, 4], dtype="int32")
    share = np.array([0.7, 0.2, 1.0, 0.5, 0.0, 0.9], dtype="float32")
    weights = np.array([1, 2, 0.5, 1, 3, 1], dtype="float32")
    p = softmax(STUDENT)
    own = -np.log(p[np.arange(6), LABELS])
    other = -np.log(p[np.arange(6), LABELS[partner]])
    mixed_weights = share * weights + (1 - share) * weights[partner]
    expected = (mixed_weights * (share * own + (1 - share) * other)).mean()
    got = losses.label_loss(LABELS, STUDENT, weights, partner, share)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_smoothed_label_loss_spreads_its_share_of_each_label_over_every_class():
    smoothing = 0.1
    p = softmax(STUDENT)
    target = np.full((6, 5), smoothing / 5)
    target[np.arange(6), LABELS] += 1 - smoothing
    expected = -(target * np.log(p)).sum(axis=-1).mean()
    got = losses.label_loss(LABELS, STUDENT, smoothing=smoothing)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    partner = np.array([1, 0, 3, 2, 5, 4], dtype="int32")
    share = np.full(6, 0.25, dtype="float32")
    other = target[partner]
    mixed = -((0.25 * target + 0.75 * other) * np.log(p)).sum(axis=-1).mean()
    got = losses.label_loss(LABELS, STUDENT, None, partner, share, smoothing)
    assert float(got) == pytest.approx(mixed, rel=1e-5)


def test_label_loss_averages_over_the_labeled_images_only():
    labels = np.array([0, -1, 2, -1, 4, 0], dtype="int32")  # -1: UNLABELED
    labeled = labels >= 0
    p = softmax(STUDENT)
    each = -np.log(p[np.arange(6)[labeled], labels[labeled]])
    assert float(losses.label_loss(labels, STUDENT)) == pytest.approx(each.mean(), rel=1e-5)
    weights = np.array([1, 2, 0.5, 1, 3, 1], dtype="float32")
    assert float(losses.label_loss(labels, STUDENT, weights)) == pytest.approx(
        (weights[labeled] * each).sum() / labeled.sum(), rel=1e-5)
    # A batch without a label: no label loss (not 0/0)
    assert float(losses.label_loss(np.full(6, -1, dtype="int32"), STUDENT)) == 0


def test_mixed_label_loss_counts_each_labeled_part_by_its_share():
    labels = np.array([0, -1, 2, -1, 4, 0], dtype="int32")
    partner = np.array([1, 0, 3, 2, 5, 4], dtype="int32")
    share = np.array([0.7, 0.2, 1.0, 0.5, 0.0, 0.9], dtype="float32")
    p = softmax(STUDENT)
    known = (labels >= 0).astype("float32")
    safe = np.maximum(labels, 0)
    own = -np.log(p[np.arange(6), safe]) * known
    other = -np.log(p[np.arange(6), safe[partner]]) * known[partner]
    labeled_share = share * known + (1 - share) * known[partner]
    expected = (share * own + (1 - share) * other).sum() / labeled_share.sum()
    got = losses.label_loss(labels, STUDENT, None, partner, share)
    assert float(got) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("standardized", [False, True])
def test_kd_is_t_squared_times_the_kl_of_the_softened_distributions(standardized):
    t, s = (zscore(TEACHER), zscore(STUDENT)) if standardized else (TEACHER, STUDENT)
    temperature = 4.0
    expected = temperature**2 * kl(softmax(t / temperature), softmax(s / temperature)).mean()
    got = kd_loss(TEACHER, STUDENT, temperature, standardized)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_standardized_logits_have_zero_mean_and_unit_deviation():
    z = np.asarray(losses.standardize(TEACHER * 10 + 3))
    assert np.allclose(z.mean(axis=-1), 0, atol=1e-5)
    assert np.allclose(z.std(axis=-1, ddof=1), 1, atol=1e-5)
    assert np.allclose(z, zscore(TEACHER), atol=1e-5)  # scale and shift leave no trace


@pytest.mark.parametrize("standardized", [False, True])
def test_dkd_is_alpha_tckd_plus_beta_nckd(standardized):
    """Zhao et al. 2022, eq. (1)-(5): the binary target/others distributions, and the
    distribution over the other classes renormalised."""
    t, s = (zscore(TEACHER), zscore(STUDENT)) if standardized else (TEACHER, STUDENT)
    temperature, alpha, beta = 4.0, 1.0, 8.0
    pt, ps = softmax(t / temperature), softmax(s / temperature)
    rows = np.arange(6)
    bt = np.stack([pt[rows, LABELS], 1 - pt[rows, LABELS]], axis=1)
    bs = np.stack([ps[rows, LABELS], 1 - ps[rows, LABELS]], axis=1)
    others = np.ones_like(pt, dtype=bool)
    others[rows, LABELS] = False
    qt = pt[others].reshape(6, 4) / bt[:, 1:]
    qs = ps[others].reshape(6, 4) / bs[:, 1:]
    expected = temperature**2 * (alpha * kl(bt, bs).mean() + beta * kl(qt, qs).mean())
    got = dkd_loss(TEACHER, STUDENT, LABELS, alpha, beta, temperature, standardized)
    assert float(got) == pytest.approx(expected, rel=1e-4)


def test_dkd_with_a_confident_teacher_stays_finite():
    confident = TEACHER.copy()
    confident[np.arange(6), LABELS] += 200.0  # softmax(target) rounds to exactly 1
    value = float(dkd_loss(confident, STUDENT, LABELS, 1.0, 8.0, 1.0))
    assert np.isfinite(value) and value > 0


def gradient(loss, x):
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(x)
    return tape.gradient(value, x).numpy()


def test_a_constant_row_of_logits_or_a_constant_feature_map_has_a_finite_gradient():
    # A dead student (all its logits or features equal) has zero variance, where sqrt's own
    # gradient is infinite: one NaN gradient and loss scaling skips every step.
    constant_row = STUDENT.copy()
    constant_row[2] = 0.5
    for standardized_loss in (
            lambda s: kd_loss(TEACHER, s, 4.0, standardized=True),
            lambda s: dkd_loss(TEACHER, s, LABELS, 1.0, 8.0, 4.0, standardized=True)):
        grad = gradient(standardized_loss, constant_row)
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    dead_map = np.zeros((2, 4, 4, 3), dtype="float32")
    teacher_map = RNG.normal(size=(2, 4, 4, 3)).astype("float32")
    assert np.isfinite(gradient(lambda s: hint_loss(s, teacher_map), dead_map)).all()


def test_the_hint_loss_is_the_mse_of_standardized_maps_whatever_their_scale():
    student = RNG.normal(size=(2, 4, 4, 3)).astype("float32")
    teacher = RNG.normal(size=(2, 4, 4, 3)).astype("float32")

    def standardized(f):
        mean = f.mean(axis=(1, 2, 3), keepdims=True)
        return (f - mean) / np.sqrt(f.var(axis=(1, 2, 3), keepdims=True) + 1e-10)

    expected = np.mean((standardized(student) - standardized(teacher)) ** 2)
    assert float(hint_loss(student, teacher)) == pytest.approx(expected, rel=1e-4)
    assert float(hint_loss(student, teacher * 50 + 7)) == pytest.approx(
        expected, rel=1e-3)
    assert float(hint_loss(teacher, teacher)) == pytest.approx(0, abs=1e-8)
