"""How images reach the model: tf.data reads, decodes, resizes, caches, shuffles, batches,
augments and prefetches. Images stay uint8 all the way to the model, which scales them itself.
"""

from __future__ import annotations

import re

import tensorflow as tf

from teacher_student.data import augment as augment_module


def decode_problem(path: str) -> str | None:
    """None if TensorFlow can decode the image at `path`, else a short reason."""
    try:
        tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
    except (tf.errors.OpError, ValueError) as err:
        message = getattr(err, "message", str(err))
        message = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", message)  # drop TF's op-location noise
        return "cannot decode: " + " ".join(message.split())[:200]
    return None



def load_image(path: tf.Tensor, image_size: int, channels: int) -> tf.Tensor:
    """uint8 [image_size, image_size, channels] from any decodable image file."""
    # decode_image's uint8 output scales 16-bit PNGs down (65535 -> 255) rather than wrapping.
    image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
    depth = tf.shape(image)[-1]
    image = tf.cond(depth % 2 == 0, lambda: image[..., :-1], lambda: image)  # drop alpha (LA, RGBA)
    is_gray = tf.shape(image)[-1] == 1
    if channels == 3:
        image = tf.cond(is_gray, lambda: tf.image.grayscale_to_rgb(image), lambda: image)
    else:
        image = tf.cond(is_gray, lambda: image, lambda: tf.image.rgb_to_grayscale(image))
    image.set_shape([None, None, channels])
    # Shrinking averages the pixels each output pixel covers ("area": no aliasing, and several
    # times faster than an antialiased bilinear resize); enlarging interpolates.
    shrinks = tf.reduce_all(tf.shape(image)[:2] >= image_size)
    size = (image_size, image_size)
    image = tf.cond(shrinks, lambda: tf.image.resize(image, size, method="area"),
                    lambda: tf.image.resize(image, size, method="bilinear"))
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def make_dataset(
    paths: tuple[str, ...],
    labels: tuple[int, ...],
    *,
    image_size: int,
    channels: int,
    batch_size: int,
    training: bool,
    augment: str = "none",
    cache: bool = True,
    seed: int = 0,
    drop_remainder: bool | None = None,
) -> tf.data.Dataset:
    """Batches of (uint8 images [B, H, W, C], int32 labels [B]).

    `drop_remainder` defaults to True for training (when there is more than one batch)."""
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(list(paths), dtype=tf.string), tf.constant(list(labels), dtype=tf.int32))
    )
    dataset = dataset.map(
        lambda path, label: (load_image(path, image_size, channels), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if cache:
        dataset = dataset.cache()  # decoded, resized, not yet augmented
    if training:
        dataset = dataset.shuffle(max(len(paths), 1), seed=seed, reshuffle_each_iteration=True)
    # Training drops a ragged last batch: a compiled step then keeps one shape, and BatchNorm
    # never sees a batch of one.
    if drop_remainder is None:
        drop_remainder = training and len(paths) >= batch_size
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if training and augment != "none":
        strength = augment_module.strength_of(augment)
        # A seed per batch, different in every epoch and the same for the same `seed`: the
        # batches then augment in parallel and reproducibly (see teacher_student.augment).
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

        def augment_batch(batch: tuple, batch_seed: tf.Tensor) -> tuple:
            images, batch_labels = batch
            return augment_module.augment_batch(images, batch_seed, strength), batch_labels

        dataset = tf.data.Dataset.zip(dataset, seeds).map(augment_batch,
                                                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
