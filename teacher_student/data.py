"""Where the images come from and how they reach the model.

source (embedded name, folder or CSV) -> `ImageTable` (every file decoded once; unusable ones
listed in `skipped` with a reason) -> `split_table` (stratified, seeded) -> `make_dataset`
(tf.data: decode, resize, cache, shuffle, batch, augment, prefetch). Images stay uint8 all the
way to the model, which does its own scaling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_class_weight

from teacher_student import augment as augment_module
from teacher_student import datasets
from teacher_student.files import replace_atomically

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SPLITS = ("train", "val", "test")
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test"}


class DataError(ValueError):
    """Data that would make training meaningless; the message names the file, folder or class."""


@dataclass(frozen=True)
class ImageTable:
    paths: tuple[str, ...]
    labels: tuple[int, ...]  # indices into class_names
    class_names: tuple[str, ...]
    splits: tuple[str, ...] | None = None  # per image, when the folder was already split
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason) for every unusable file


@dataclass(frozen=True)
class Split:
    paths: tuple[str, ...]
    labels: tuple[int, ...]


# A candidate image before it is checked: (path, class name, split or None).
Candidate = tuple[str, str, str | None]


# ---------------------------------------------------------------------------------------------
# Reading a source into an ImageTable.

def read_source(source: str, cache_dir: Path | None = None) -> ImageTable:
    """The checked images of an embedded dataset name, an image folder or a `path,label` CSV."""
    if source in datasets.EMBEDDED:
        folder = datasets.materialize(source, cache_dir or datasets.default_cache_dir())
        return _read_folder(folder)
    path = Path(source)
    if path.is_dir():
        return _read_folder(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return _read_csv(path)
    raise DataError(
        f"{source}: not an embedded dataset ({', '.join(datasets.EMBEDDED)}), "
        "an existing folder or a .csv file"
    )


def _visible_subfolders(folder: Path) -> list[Path]:
    # Hidden folders (.ipynb_checkpoints, .git, ...) are never classes.
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_folder(root: Path) -> ImageTable:
    subfolders = _visible_subfolders(root)
    names = {p.name.lower() for p in subfolders}
    is_split_layout = "train" in names and names <= SPLIT_FOLDERS.keys()
    candidates: list[Candidate] = []
    skipped: list[tuple[str, str]] = []
    skipped += _loose_files(root)
    for folder in subfolders:
        split = SPLIT_FOLDERS[folder.name.lower()] if is_split_layout else None
        class_folders = _visible_subfolders(folder) if is_split_layout else [folder]
        skipped += _loose_files(folder) if is_split_layout else []
        for class_folder in class_folders:
            _collect_class_folder(class_folder, split, candidates, skipped)
    return _check_and_build(str(root), candidates, skipped, has_splits=is_split_layout)


def _loose_files(folder: Path) -> list[tuple[str, str]]:
    return [(str(p), "not inside a class folder") for p in sorted(folder.iterdir()) if p.is_file()]


def _collect_class_folder(
    folder: Path, split: str | None, candidates: list[Candidate], skipped: list
) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    others = [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
    skipped += [(str(p), "not an image extension") for p in others]
    if not images:
        skipped.append((str(folder), "empty class folder"))
    candidates += [(str(p), folder.name, split) for p in images]


def _read_csv(csv_path: Path) -> ImageTable:
    try:
        rows = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{csv_path}: cannot read CSV ({err})") from err
    rows.columns = [str(c).strip() for c in rows.columns]
    if not {"path", "label"} <= set(rows.columns):
        raise DataError(f"{csv_path}: needs columns 'path' and 'label', has {list(rows.columns)}")
    candidates: list[Candidate] = []
    skipped: list[tuple[str, str]] = []
    for index, (raw_path, label) in enumerate(zip(rows["path"], rows["label"])):
        where = f"{csv_path.name} row {index + 2}"  # the file's line number; line 1 is the header
        path = csv_path.parent / raw_path.strip()  # an absolute path replaces the folder
        if not raw_path.strip():
            skipped.append((raw_path, f"{where}: empty path"))
        elif not label.strip():
            skipped.append((str(path), f"{where}: empty label"))
        elif not path.is_file():
            skipped.append((str(path), f"{where}: file not found"))
        else:
            candidates.append((str(path), label.strip(), None))
    return _check_and_build(str(csv_path), candidates, skipped, has_splits=False)


def decode_problem(path: str) -> str | None:
    """None if TensorFlow can decode the image at `path`, else a short reason."""
    try:
        tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
    except (tf.errors.OpError, ValueError) as err:
        message = getattr(err, "message", str(err))
        message = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", message)  # drop TF's op-location noise
        return "cannot decode: " + " ".join(message.split())[:200]
    return None


def _check_and_build(
    source: str, candidates: list[Candidate], skipped: list, *, has_splits: bool
) -> ImageTable:
    usable = []
    for path, class_name, split in candidates:
        problem = decode_problem(path)
        if problem:
            skipped.append((path, problem))
        else:
            usable.append((path, class_name, split))
    class_names = tuple(sorted({class_name for _, class_name, _ in usable}))
    if not usable:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise DataError(f"{source}: no usable images; {len(skipped)} entries skipped{first}")
    if len(class_names) < 2:
        raise DataError(
            f"{source}: found only {len(class_names)} class ({class_names[0]!r}, "
            f"{len(usable)} images); need at least 2 classes"
        )
    index = {name: i for i, name in enumerate(class_names)}
    return ImageTable(
        paths=tuple(path for path, _, _ in usable),
        labels=tuple(index[class_name] for _, class_name, _ in usable),
        class_names=class_names,
        splits=tuple(split for _, _, split in usable) if has_splits else None,
        skipped=tuple(skipped),
    )


# ---------------------------------------------------------------------------------------------
# Splitting.

def split_table(
    table: ImageTable, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, Split]:
    """{"train", "val", "test"} -> Split; the folder's own split is kept where it has one."""
    whole = Split(table.paths, table.labels)
    if table.splits is None:
        return _stratified_split(whole, table.class_names, val_fraction, test_fraction, seed)
    given = {name: _only(whole, table.splits, name) for name in SPLITS}
    missing = sorted(set(table.labels) - set(given["train"].labels))
    if missing:
        raise DataError(f"class {table.class_names[missing[0]]!r} has no images in train/")
    # Splits the folder lacks are carved out of its train split.
    val = val_fraction if not given["val"].paths else 0.0
    test = test_fraction if not given["test"].paths else 0.0
    carved = _stratified_split(given["train"], table.class_names, val, test, seed)
    return {**carved, **{name: given[name] for name in ("val", "test") if given[name].paths}}


def _only(whole: Split, splits: tuple[str, ...], name: str) -> Split:
    chosen = [(p, y) for p, y, s in zip(whole.paths, whole.labels, splits) if s == name]
    return Split(tuple(p for p, _ in chosen), tuple(y for _, y in chosen))


def _stratified_split(
    whole: Split, class_names: tuple[str, ...], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, Split]:
    parts = 1 + (val_fraction > 0) + (test_fraction > 0)
    needed = max(parts, 2)  # scikit-learn cannot stratify a class with a single image
    counts = np.bincount(whole.labels, minlength=len(class_names))
    for label in sorted(set(whole.labels)):
        if parts > 1 and counts[label] < needed:
            raise DataError(
                f"class {class_names[label]!r} has {counts[label]} images; "
                f"a stratified split into {parts} parts needs at least {needed}"
            )
    rest, test = _take(whole, test_fraction, seed)
    train, val = _take(rest, val_fraction / (1.0 - test_fraction), seed)
    return {"train": train, "val": val, "test": test}


def _take(whole: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """(kept, taken): about `fraction` of the images taken out, stratified by label."""
    if fraction <= 0:
        return whole, Split((), ())
    total, num_classes = len(whole.paths), len(set(whole.labels))
    # At least one slot per class (and one left over for each) so tiny datasets still split.
    size = min(max(round(fraction * total), num_classes), total - num_classes)
    try:
        kept_p, taken_p, kept_y, taken_y = train_test_split(
            whole.paths, whole.labels, test_size=size, random_state=seed, stratify=whole.labels
        )
    except ValueError as err:
        raise DataError(f"cannot split {total} images of {num_classes} classes: {err}") from err
    return Split(tuple(kept_p), tuple(kept_y)), Split(tuple(taken_p), tuple(taken_y))


# ---------------------------------------------------------------------------------------------
# Records and class weights.

def _write_csv_atomically(frame: pd.DataFrame, path: Path) -> None:
    replace_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_split(splits: dict[str, Split], class_names: tuple[str, ...], path: Path) -> None:
    """A CSV `path,label,class_name,split` of every image, for reproducing and auditing a run."""
    rows = [
        (p, y, class_names[y], name)
        for name in SPLITS
        for p, y in zip(splits[name].paths, splits[name].labels)
    ]
    columns = ["path", "label", "class_name", "split"]
    _write_csv_atomically(pd.DataFrame(rows, columns=columns), path)


def write_skipped(skipped: tuple[tuple[str, str], ...], path: Path) -> None:
    """A CSV `path,reason` of every file that was found but not used."""
    _write_csv_atomically(pd.DataFrame(list(skipped), columns=["path", "reason"]), path)


def class_weights(labels: tuple[int, ...], num_classes: int) -> dict[int, float]:
    """Inverse-frequency ("balanced") loss weights; a class without images gets 1.0."""
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=np.asarray(labels))
    by_class = dict(zip(present.tolist(), weights.tolist()))
    return {c: float(by_class.get(c, 1.0)) for c in range(num_classes)}


# ---------------------------------------------------------------------------------------------
# The tf.data pipeline.

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
