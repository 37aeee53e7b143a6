"""The input path on the CPU: from a folder of real-sized JPEGs to augmented batches, ours against
Keras' stock `image_dataset_from_directory`, each built afresh `spec.repeats` times.

Ours, as the trainer runs it: `read_source` decodes (and checks) every file once into the image
cache, `Batches` serves shuffled uint8 batches, and the `Augmentation` layer transforms each
batch as the training step does (compiled without XLA on a CPU; its warp with XLA on
TensorFlow). The first epoch includes the decoding; later epochs come from the cache. The stock
loader decodes every epoch, does not check files and does not augment; so it is also measured
with Keras' own augmentation layers doing what `augment: light` does (shift, turn, zoom) mapped
over it, first epoch and from `Dataset.cache()`: the fair comparison.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from teacher_student.data.augment import Augmentation
from teacher_student.data.batches import Batches
from teacher_student.data.decoding import Decoding
from teacher_student.data.labeled import read_source

OURS_LIGHT = "ours: decode once, batches, augment light in the step"
OURS_PLAIN = "ours: decode once, batches, no augmentation"
KERAS_PIPELINE = "keras image_dataset_from_directory (defaults)"
KERAS_LIGHT = ("keras image_dataset_from_directory, cached, + RandomTranslation, RandomRotation, "
               "RandomZoom (as light)")


def write_jpegs(root: Path, count: int, classes: int, size: tuple[int, int]) -> None:
    """`count` photo-like JPEGs (smooth colour fields plus grain), one folder per class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    width, height = size
    for i in range(count):
        folder = root / f"class_{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.int16)
        grain = rng.normal(0, 8, smooth.shape).astype(np.int16)
        pixels = np.clip(smooth + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:04d}.jpg", quality=90)


def pipeline_rows(root: Path, spec) -> list[dict]:
    rows = []
    for name, augment in ((OURS_LIGHT, "light"), (OURS_PLAIN, "none")):
        first, cached = [], []
        for _ in range(spec.repeats):
            epochs = _our_epochs(root, spec, augment)
            first.append(epochs[0])
            cached += epochs[1:]
        rows += [_row(name, "first", first), _row(name, "cached", cached)]
    stock = []
    for _ in range(spec.repeats):
        start = time.perf_counter()
        loader = keras.utils.image_dataset_from_directory(
            root, image_size=(spec.image_size, spec.image_size), batch_size=spec.batch_size,
            verbose=False)
        stock.append(_epoch(loader, start))
    rows.append(_row(KERAS_PIPELINE, "first", stock))
    first, cached = [], []
    for _ in range(spec.repeats):
        epochs = _keras_augmented_epochs(root, spec)
        first.append(epochs[0])
        cached += epochs[1:]
    rows += [_row(KERAS_LIGHT, "first", first), _row(KERAS_LIGHT, "cached", cached)]
    return rows


def _keras_augmented_epochs(root: Path, spec) -> list[tuple[float, int]]:
    """Keras' loader with Keras' augmentation layers at `light`'s strengths, mapped in
    parallel, the decoded images cached after the first epoch."""
    import tensorflow as tf

    from teacher_student.data.augment import STRENGTHS

    light = STRENGTHS["light"]
    augment = keras.Sequential([
        keras.layers.RandomTranslation(light.shift, light.shift, seed=0),
        keras.layers.RandomRotation(light.turn, seed=1),  # a fraction of a full turn, as ours
        keras.layers.RandomZoom(light.zoom, seed=2)])
    start = time.perf_counter()
    loader = keras.utils.image_dataset_from_directory(
        root, image_size=(spec.image_size, spec.image_size), batch_size=spec.batch_size,
        verbose=False).cache()
    batches = loader.map(lambda images, labels: (augment(images, training=True), labels),
                         num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return [_epoch(batches, start if epoch == 0 else time.perf_counter())
            for epoch in range(spec.epochs)]


def _our_epochs(root: Path, spec, augment: str) -> list[tuple[float, int]]:
    transform = _augmenter(spec.image_size, augment)
    start = time.perf_counter()
    table = read_source(str(root), Decoding(spec.image_size, 3, cache="memory"))
    batches = Batches(table.pixels, table.rows, table.labels, spec.batch_size, shuffle=True)
    epochs = []
    for epoch in range(spec.epochs):
        batches.set_epoch(epoch)
        epochs.append(_epoch(((transform(batches[i][0]),) for i in range(len(batches))),
                             start if epoch == 0 else time.perf_counter()))
    return epochs


def _augmenter(image_size: int, augment: str):
    """A batch function: the `Augmentation` compiled as the training step runs it, warmed up."""
    if augment == "none":
        return lambda images: images
    images = keras.Input((image_size, image_size, 3), dtype="uint8")
    model = keras.Model(images, Augmentation(augment, seed=0)(images))
    model.compile(jit_compile=False)
    model.predict_on_batch(np.zeros((2, image_size, image_size, 3), np.uint8))
    return lambda batch: keras.ops.convert_to_numpy(model.predict_on_batch(batch))


def _epoch(batches, start: float) -> tuple[float, int]:
    """Seconds from `start` until every batch was drawn, and how many images came out."""
    count = sum(int(batch[0].shape[0]) for batch in batches)
    return time.perf_counter() - start, count


def _row(pipeline: str, epoch: str, timings: list[tuple[float, int]]) -> dict:
    """The median rate of several timed epochs: one epoch of a few hundred images takes well
    under a second, and a shared 2-core machine varies by 2x from one second to the next."""
    images = timings[-1][1]
    return {"pipeline": pipeline, "epoch": epoch, "images": images,
            "images_per_s": images / float(np.median([seconds for seconds, _ in timings]))}
