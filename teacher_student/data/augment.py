"""Training augmentation on the accelerator, inside the compiled training step.

`Augmentation` gives each image of a uint8 batch a random shift, turn and zoom (and a contrast
change for "strong"; with `flip`, a left-right mirror image for half of them), composed into one
projective transform per image and applied by one bilinear interpolation pass, in float32
whatever the precision policy. `Mixing` then blends
pairs of images of the batch (mixup) or pastes a patch of one into another (cutmix), and says
with what weight each image's own label counts.

Both draw their random numbers from a Keras `SeedGenerator`, whose state is saved with the
training checkpoints, so a run is reproducible and a resumed run continues the same stream. They
`Erasing` (random erasing) then covers a box of some images with noise. They
use `keras.ops` only (the warp is written with gathers: TensorFlow's own projective transform
has no XLA kernel), so they compile under XLA on every backend.

The flip is the data's switch (`data.flip`: a mirrored photo of a cat is a cat, a mirrored digit
or letter is not), added to a step's augmentation (`light` or `strong`) when the data allows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import keras
from keras import ops

from teacher_student.models.layers import PACKAGE


@dataclass(frozen=True)
class Strength:
    shift: float  # largest shift, as a fraction of the height and width
    turn: float  # largest rotation, as a fraction of a full turn
    zoom: float  # largest zoom in or out, as a fraction of the size
    contrast: float  # largest contrast change, as a fraction; 0 leaves contrast alone


STRENGTHS = {
    "light": Strength(shift=0.08, turn=0.04, zoom=0.1, contrast=0.0),
    "strong": Strength(shift=0.15, turn=0.08, zoom=0.2, contrast=0.2),
}


def augmentation(augment: str, seed: int = 0, flip: bool = False,
                 **kwargs) -> Augmentation | None:
    """The layer of an augmentation's strength ("light", "strong"), with the left-right flip
    when `flip`; None for "none" (no flip either: the step leaves its images alone)."""
    if augment == "none":
        return None
    return Augmentation(augment, seed, flip=flip, **kwargs)


class SeededLayer(keras.layers.Layer):
    """A layer whose `SeedGenerator` state is saved and loaded with its weights (Keras saves
    only trainable and non-trainable variables, not seed states), so that a run resumed from a
    checkpoint draws the same random numbers as one that was never interrupted."""

    def __init__(self, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def save_own_variables(self, store):
        store["seed_state"] = self.seed_generator.state

    def load_own_variables(self, store):
        self.seed_generator.state.assign(store["seed_state"])

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Augmentation(SeededLayer):
    """uint8 images [B, H, W, C] -> uint8 images, each moved (and contrast-changed, and with
    `flip` mirrored left to right half the time) at random."""

    def __init__(self, strength: str, seed: int = 0, flip: bool = False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(seed, **kwargs)
        if strength not in STRENGTHS:
            raise ValueError(f"augment must be 'none', {' or '.join(map(repr, STRENGTHS))}, "
                             f"got {strength!r}")
        self.strength = strength
        self.flip = flip

    def call(self, images):
        size = ops.shape(images)[0]
        strength = STRENGTHS[self.strength]
        # Without the flip, the draws of earlier versions: a run resumes the same stream.
        draws = keras.random.uniform((size, 6 if self.flip else 5), -1.0, 1.0,
                                     seed=self.seed_generator)
        height, width = images.shape[1], images.shape[2]
        mirror = ops.where(draws[:, 5] < 0, -1.0, 1.0) if self.flip else None
        transforms = output_to_input(angle=draws[:, 0] * strength.turn * 2 * math.pi,
                                     scale=1 + draws[:, 1] * strength.zoom,
                                     shift_x=draws[:, 2] * strength.shift * width,
                                     shift_y=draws[:, 3] * strength.shift * height,
                                     width=width, height=height, mirror=mirror)
        contrast = 1 + draws[:, 4] * strength.contrast
        return _compiled_move()(images, transforms, contrast, bool(strength.contrast))

    def compute_output_spec(self, images):
        return keras.KerasTensor(images.shape, dtype="uint8")

    def get_config(self):
        return {**super().get_config(), "strength": self.strength, "flip": self.flip}


def output_to_input(angle, scale, shift_x, shift_y, width: int, height: int, mirror=None):
    """Per image, the 8 projective coefficients mapping an output pixel to the input pixel it
    samples: a turn and a zoom about the centre, then a shift. A scale above 1 samples a larger
    area: it zooms out. `mirror` (-1 or 1 per image, or None) first mirrors the output's x
    about the centre where it is -1: the flip costs nothing, it is part of the one warp."""
    cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    zeros = ops.zeros_like(angle)
    # x -> centre_x + mirror * (x - centre_x), then the turn and zoom: the x column times
    # mirror, and the offset moved to keep the centre in place.
    mirror = ops.ones_like(angle) if mirror is None else mirror
    return ops.stack([cos * mirror, -sin,
                      centre_x - cos * mirror * centre_x + sin * centre_y + shift_x,
                      sin * mirror, cos,
                      centre_y - sin * mirror * centre_x - cos * centre_y + shift_y,
                      zeros, zeros], axis=1)


@functools.cache
def _compiled_move():
    """On TensorFlow, `move` compiled with XLA even inside a step that is not (the CPU default,
    where XLA slows the student's convolutions): the warp's gathers and arithmetic run 2.7x
    faster fused (BENCHMARKS.md). JAX compiles every step anyway."""
    if keras.backend.backend() != "tensorflow":
        return move
    import tensorflow as tf

    return tf.function(move, jit_compile=True, autograph=False)


def move(images, transforms, contrast, change_contrast: bool):
    """uint8 images warped by `transforms` (and contrast-scaled), back in uint8."""
    moved = warp(images, transforms)
    if change_contrast:
        moved = scale_contrast(moved, contrast)
    return ops.cast(ops.clip(ops.round(moved), 0, 255), "uint8")


def warp(images, transforms):
    """Images [B, H, W, C] sampled where `transforms` [B, 8] send each output pixel
    (x' = (a0 x + a1 y + a2) / k, y' = (b0 x + b1 y + b2) / k, k = c0 x + c1 y + 1), by bilinear
    interpolation in float32, reflecting the image at its edges. The four neighbours of every
    output pixel are fetched by one gather of whole pixels (rows of C values) in the images'
    own dtype (uint8: a quarter of float32's bytes), then interpolated in float32."""
    batch, height, width, channels = (ops.shape(images)[0], images.shape[1], images.shape[2],
                                      images.shape[3])
    ys, xs = ops.meshgrid(ops.arange(height, dtype="float32"),
                          ops.arange(width, dtype="float32"), indexing="ij")
    xs, ys = ops.reshape(xs, (1, -1)), ops.reshape(ys, (1, -1))
    a0, a1, a2, b0, b1, b2, c0, c1 = (transforms[:, i:i + 1] for i in range(8))
    k = c0 * xs + c1 * ys + 1.0
    source_x = (a0 * xs + a1 * ys + a2) / k
    source_y = (b0 * xs + b1 * ys + b2) / k
    x0, y0 = ops.floor(source_x), ops.floor(source_y)
    first_pixel = ops.arange(batch, dtype="int32")[:, None] * (height * width)
    corners = ops.stack([first_pixel + _reflect(y, height) * width + _reflect(x, width)
                         for y, x in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1))])
    pixels = ops.reshape(images, (-1, channels))
    found = ops.cast(ops.take(pixels, ops.reshape(corners, (-1,)), axis=0), "float32")
    top_left, top_right, bottom_left, bottom_right = ops.unstack(
        ops.reshape(found, (4, batch, height * width, channels)), axis=0)
    wx, wy = (source_x - x0)[..., None], (source_y - y0)[..., None]
    top = top_left * (1 - wx) + top_right * wx
    bottom = bottom_left * (1 - wx) + bottom_right * wx
    return ops.reshape(top * (1 - wy) + bottom * wy, (batch, height, width, channels))


def _reflect(index, size: int):
    """Integer pixel indices folded into [0, size) by reflecting about the edges
    (d c b a | a b c d | d c b a), as int32."""
    period = 2 * size
    folded = ops.mod(index, period)
    folded = ops.where(folded >= size, period - 1 - folded, folded)
    return ops.cast(folded, "int32")


def scale_contrast(images, factor):
    """Each image's distance from its own mean (per channel) times its `factor`."""
    mean = ops.mean(images, axis=(1, 2), keepdims=True)
    return (images - mean) * factor[:, None, None, None] + mean


# Random erasing's boxes (Zhong et al., AAAI 2020, their defaults): 2-40% of the image,
# height over width from 0.3 to 1 / 0.3.
ERASED_AREA = (0.02, 0.4)
ERASED_ASPECT = 0.3


@keras.saving.register_keras_serializable(package=PACKAGE)
class Erasing(SeededLayer):
    """uint8 images [B, H, W, C] -> uint8 images in which each image, with probability
    `probability`, has one box filled with uniform noise (Zhong et al., "Random Erasing Data
    Augmentation"): the network learns to use every part of an object, not the one that
    happens to be most telling."""

    def __init__(self, probability: float, seed: int = 0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(seed, **kwargs)
        if not 0 < probability <= 1:
            raise ValueError(f"erasing must be in (0, 1], got {probability!r}")
        self.probability = probability

    def call(self, images):
        size, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
        draws = keras.random.uniform((size, 5), seed=self.seed_generator)
        low, high = ERASED_AREA
        area = low + draws[:, 0] * (high - low)
        aspect = ops.exp((2 * draws[:, 1] - 1) * math.log(1 / ERASED_ASPECT))
        box_height = ops.minimum(ops.sqrt(area * aspect), 1.0)
        box_width = ops.minimum(ops.sqrt(area / aspect), 1.0)
        # The box's centre, placed so that the box lies inside the image.
        centre_y = box_height / 2 + draws[:, 2] * (1 - box_height)
        centre_x = box_width / 2 + draws[:, 3] * (1 - box_width)
        inside = _box_mask(centre_y, centre_x, box_height, box_width, height, width)
        erased = ops.logical_and(inside, (draws[:, 4] < self.probability)[:, None, None])
        noise = keras.random.randint(ops.shape(images), 0, 256, dtype="int32",
                                     seed=self.seed_generator)
        return ops.where(erased[..., None], ops.cast(noise, "uint8"), images)

    def compute_output_spec(self, images):
        return keras.KerasTensor(images.shape, dtype="uint8")

    def get_config(self):
        return {**super().get_config(), "probability": self.probability}


MIXES = ("none", "mixup", "cutmix")


@keras.saving.register_keras_serializable(package=PACKAGE)
class Mixing(SeededLayer):
    """Pairs each image of a batch with another of the same batch (a seeded permutation) and
    blends the two: `mixup` mixes their pixels with a weight w, `cutmix` pastes a box of the
    partner covering 1 - w of the image. w is uniform on [0, 1] (Beta(1, 1), as CutMix draws
    it; a Beta of another shape has no XLA kernel on TensorFlow).

    uint8 images [B, H, W, C] -> (mixed uint8 images, each image's partner [B] int32, the share
    w of its own image [B] float32): the label loss then counts w of its own label and 1 - w of
    its partner's, and a teacher shown the same mixed images answers for both.
    """

    def __init__(self, kind: str, seed: int = 0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(seed, **kwargs)
        if kind not in MIXES[1:]:
            raise ValueError(f"mix must be one of {list(MIXES)}, got {kind!r}")
        self.kind = kind

    def call(self, images):
        size = ops.shape(images)[0]
        partner = ops.cast(ops.argsort(keras.random.uniform((size,), seed=self.seed_generator)),
                           "int32")
        draws = keras.random.uniform((size, 3), seed=self.seed_generator)
        own = ops.cast(images, "float32")
        other = ops.take(own, partner, axis=0)
        if self.kind == "mixup":
            share = draws[:, 0]
            mixed = share[:, None, None, None] * own + (1 - share[:, None, None, None]) * other
        else:
            inside = _boxes(draws, images.shape[1], images.shape[2])
            mixed = ops.where(inside[..., None], other, own)
            share = 1 - ops.mean(ops.cast(inside, "float32"), axis=(1, 2))
        return ops.cast(ops.clip(ops.round(mixed), 0, 255), "uint8"), partner, share

    def compute_output_spec(self, images):
        size = images.shape[0]
        return (keras.KerasTensor(images.shape, dtype="uint8"),
                keras.KerasTensor((size,), dtype="int32"),
                keras.KerasTensor((size,), dtype="float32"))

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


def _boxes(draws, height: int, width: int):
    """bool [B, H, W]: per image, a square box of 1 - draws[:, 0] of the area (clipped at the
    edges) centred at (draws[:, 1], draws[:, 2]) as fractions of the height and width."""
    side = ops.sqrt(1 - draws[:, 0])
    return _box_mask(draws[:, 1], draws[:, 2], side, side, height, width)


def _box_mask(centre_y, centre_x, box_height, box_width, height: int, width: int):
    """bool [B, H, W]: per image, the pixels whose centres lie in its box; the centre and the
    sides [B] are fractions of the image's height and width."""
    ys = ops.arange(height, dtype="float32")[None, :, None] + 0.5
    xs = ops.arange(width, dtype="float32")[None, None, :] + 0.5
    within_y = ops.abs(ys - (centre_y * height)[:, None, None]) \
        < (box_height * height / 2)[:, None, None]
    within_x = ops.abs(xs - (centre_x * width)[:, None, None]) \
        < (box_width * width / 2)[:, None, None]
    return ops.logical_and(within_y, within_x)
