"""Augmentation: the composed transform moves pixels where it says, and is seeded per batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from teacher_student.data import augment


def transform(images: np.ndarray, angle=0.0, scale=1.0, shift_x=0.0, shift_y=0.0) -> np.ndarray:
    height, width = images.shape[1:3]
    count = len(images)
    matrix = augment._output_to_input(
        *(tf.fill([count], float(v)) for v in (angle, scale, shift_x, shift_y)),
        tf.constant(float(width)), tf.constant(float(height)))
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=matrix, output_shape=[height, width], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT").numpy()


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(2, 9, 9, 3), dtype=np.uint8)


def test_no_change_is_the_identity(images):
    np.testing.assert_array_equal(transform(images), images)


def test_a_quarter_turn_turns_the_image_about_its_centre(images):
    turned = transform(images, angle=math.pi / 2).astype(int)
    expected = np.rot90(images, k=1, axes=(1, 2)).astype(int)
    assert np.abs(turned - expected).max() <= 1  # cos(pi / 2) is 6e-17, not 0: rounding


def test_a_shift_samples_further_along(images):
    moved = transform(images, shift_x=2, shift_y=1)
    np.testing.assert_array_equal(moved[:, :-1, :-2], images[:, 1:, 2:])


def test_batches_are_seeded_uint8_and_every_image_changes_its_own_way():
    same = np.tile(np.arange(16 * 16 * 3, dtype=np.uint8).reshape(1, 16, 16, 3), (4, 1, 1, 1))
    strong = augment.strength_of("strong")
    first = augment.augment_batch(same, tf.constant(7, tf.int64), strong).numpy()
    again = augment.augment_batch(same, tf.constant(7, tf.int64), strong).numpy()
    other = augment.augment_batch(same, tf.constant(8, tf.int64), strong).numpy()
    assert first.dtype == np.uint8 and first.shape == same.shape
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert all(not np.array_equal(first[0], first[i]) for i in range(1, 4))


def test_unknown_strength_names_the_known_ones():
    with pytest.raises(ValueError, match="'light' or 'strong', got 'medium'"):
        augment.strength_of("medium")
