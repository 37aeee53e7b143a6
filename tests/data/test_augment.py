"""Augmentation and mixing on the device: the warp moves pixels where it says, every draw
comes from the layer's seed, and the seed state is saved and loaded with the weights."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops

from teacher_student.data.augment import (
    Augmentation,
    Erasing,
    Mixing,
    augmentation,
    output_to_input,
    warp,
)


def transform(images: np.ndarray, angle=0.0, scale=1.0, shift_x=0.0, shift_y=0.0,
              mirror=None) -> np.ndarray:
    height, width = images.shape[1:3]
    full = lambda value: np.full(len(images), value, dtype="float32")  # noqa: E731
    matrix = output_to_input(full(angle), full(scale), full(shift_x), full(shift_y), width,
                             height, None if mirror is None else full(mirror))
    return np.asarray(warp(ops.cast(images, "float32"), matrix))


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(2, 9, 9, 3), dtype=np.uint8)


def test_no_change_is_the_identity(images):
    np.testing.assert_allclose(transform(images), images, atol=1e-3)


def test_a_quarter_turn_turns_the_image_about_its_centre(images):
    turned = np.round(transform(images, angle=math.pi / 2)).astype(int)
    expected = np.rot90(images, k=1, axes=(1, 2)).astype(int)
    assert np.abs(turned - expected).max() <= 1  # cos(pi / 2) is 6e-17, not 0: rounding


def test_a_shift_samples_further_along_and_reflects_at_the_edge(images):
    moved = transform(images, shift_x=2, shift_y=1)
    np.testing.assert_allclose(moved[:, :-1, :-2], images[:, 1:, 2:], atol=1e-3)
    # the last column samples 2 beyond the edge: the image reflected (..., c, d | d, c, ...)
    np.testing.assert_allclose(moved[:, :-1, -1], images[:, 1:, -2], atol=1e-3)


def test_a_mirror_flips_left_and_right_and_composes_with_the_rest(images):
    np.testing.assert_allclose(transform(images, mirror=-1), images[:, :, ::-1], atol=1e-3)
    np.testing.assert_allclose(transform(images, mirror=1), images, atol=1e-3)
    turned = np.round(transform(images, angle=math.pi / 2, mirror=-1)).astype(int)
    expected = np.rot90(images, k=1, axes=(1, 2))[:, :, ::-1].astype(int)
    assert np.abs(turned - expected).max() <= 1


def left_bright(count: int) -> np.ndarray:
    """`count` copies of one image whose left half is bright and right half dark."""
    image = np.zeros((1, 16, 16, 1), dtype=np.uint8)
    image[:, :, :8] = 255
    return np.tile(image, (count, 1, 1, 1))


@pytest.mark.parametrize("name", ["light", "strong"])
def test_the_flip_mirrors_about_half_of_the_images(name):
    batch = left_bright(64)

    def bright_on_the_right(layer) -> np.ndarray:
        moved = np.asarray(layer(batch)).astype(float)
        return moved[:, :, 8:].mean(axis=(1, 2, 3)) > moved[:, :, :8].mean(axis=(1, 2, 3))

    assert not bright_on_the_right(Augmentation(name, seed=3)).any()
    flipped = bright_on_the_right(augmentation(name, seed=3, flip=True))
    assert 16 <= flipped.sum() <= 48


def test_an_augmentation_is_its_strength_and_the_flip():
    assert augmentation("none") is None and augmentation("none", flip=True) is None
    light = augmentation("light", seed=2)
    assert (light.strength, light.flip, light.seed) == ("light", False, 2)
    strong = augmentation("strong", flip=True)
    assert (strong.strength, strong.flip) == ("strong", True)
    assert Augmentation.from_config(strong.get_config()).flip
    from teacher_student.training.trainee import Trainee

    images = keras.Input((8, 8, 1), dtype="uint8")
    classifier = keras.Model(images, keras.layers.Flatten()(images))
    assert Trainee(classifier, "light", flip=True).augmentation.flip
    assert Trainee(classifier, "none").augmentation is None


def test_every_image_changes_its_own_way_and_the_seed_decides():
    same = np.tile(np.arange(16 * 16 * 3, dtype=np.uint8).reshape(1, 16, 16, 3), (4, 1, 1, 1))
    first = np.asarray(Augmentation("strong", seed=7)(same))
    assert first.dtype == np.uint8 and first.shape == same.shape
    assert all(not np.array_equal(first[0], first[i]) for i in range(1, 4))
    np.testing.assert_array_equal(np.asarray(Augmentation("strong", seed=7)(same)), first)
    assert not np.array_equal(np.asarray(Augmentation("strong", seed=8)(same)), first)


def test_the_seed_state_is_saved_and_loaded_with_the_weights(tmp_path):
    """A resumed run draws what an uninterrupted one would have drawn next."""
    same = np.tile(np.arange(8 * 8, dtype=np.uint8).reshape(1, 8, 8, 1), (3, 1, 1, 1))

    def model(seed: int) -> keras.Model:
        images = keras.Input((8, 8, 1), dtype="uint8")
        return keras.Model(images, Augmentation("light", seed=seed)(images))

    running = model(1)
    running(same)  # one batch drawn
    running.save_weights(tmp_path / "state.weights.h5")
    expected_next = np.asarray(running(same))
    resumed = model(1)
    resumed.load_weights(tmp_path / "state.weights.h5")
    np.testing.assert_array_equal(np.asarray(resumed(same)), expected_next)


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mixing_blends_each_image_with_its_partner_by_its_share(kind):
    # Each image one flat value: every mixed pixel shows how much of each image it holds.
    values = np.array([0, 60, 120, 180, 240, 30], dtype=np.uint8)
    batch = np.broadcast_to(values[:, None, None, None], (6, 10, 10, 1)).copy()
    mixed, partner, share = (np.asarray(t) for t in Mixing(kind, seed=3)(batch))
    assert mixed.dtype == np.uint8 and sorted(partner.tolist()) == list(range(6))
    assert np.all((share >= 0) & (share <= 1))
    for i in range(6):
        own, other = float(values[i]), float(values[partner[i]])
        if kind == "mixup":
            assert np.allclose(mixed[i], np.round(share[i] * own + (1 - share[i]) * other))
        else:
            from_own = np.isclose(mixed[i], own)
            assert np.all(from_own | np.isclose(mixed[i], other))
            if own != other:
                assert from_own.mean() == pytest.approx(share[i])


def test_erasing_fills_one_box_of_about_its_share_of_the_images_with_noise():
    flat = np.full((400, 20, 20, 1), 7, dtype=np.uint8)
    erased = np.asarray(Erasing(0.5, seed=2)(flat))
    changed = erased != 7
    touched = changed.any(axis=(1, 2, 3))
    assert 0.4 < touched.mean() < 0.6
    for image in changed[touched][:50, ..., 0]:
        rows, cols = np.nonzero(image)
        box = image[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.mean() > 0.9  # one box of noise (a noise pixel may draw 7 by chance)
        assert 0.02 * 400 * 0.5 <= box.size <= 0.4 * 400 * 1.3
    np.testing.assert_array_equal(np.asarray(Erasing(0.5, seed=2)(flat)), erased)


def test_unknown_strength_or_mix_names_the_known_ones():
    with pytest.raises(ValueError, match="'light' or 'strong', got 'medium'"):
        Augmentation("medium")
    with pytest.raises(ValueError, match="mixup.*got 'blend'"):
        Mixing("blend")
