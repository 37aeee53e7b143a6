"""A `.npz` of `images` and `labels`, checked as strictly as an image folder: an array that
would train on something other than what it holds is a DataError naming the file, the key and
the shape or dtype found.

- `images`: [N, H, W] or [N, H, W, 1 | 3]; uint8, or floats in [0, 1] (scaled to 0..255, and
  said) or in [0, 255], without NaN or infinite values;
- `labels`: one per image ([N], or Keras' [N, 1]); integers, or strings that name the classes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from teacher_student.data.candidates import folder_problem
from teacher_student.errors import DataError

KEYS = ("images", "labels")
IMAGE_SHAPES = "[N, H, W] or [N, H, W, 1 or 3]"


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, H, W] or [N, H, W, 3], and each image's class name (str [N])."""
    arrays = _read_arrays(path)
    images = _checked_images(path, arrays["images"])
    return images, _checked_labels(path, arrays["labels"], len(images))


def load_npz_images(path: Path) -> np.ndarray:
    """The `images` of a `.npz` of unlabeled images (any `labels` are not read)."""
    return _checked_images(path, _read_arrays(path, keys=("images",))["images"])


def _read_arrays(path: Path, keys: tuple[str, ...] = KEYS) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):  # a text file, a single .npy, a download cut short
        raise DataError(f"{path}: not a .npz file (numpy.savez writes one: "
                        "numpy.savez(path, images=..., labels=...))")
    with np.load(path, allow_pickle=False) as arrays:
        missing = set(keys) - set(arrays.files)
        if missing:
            raise DataError(f"{path}: needs arrays " + " and ".join(f"'{k}'" for k in keys)
                            + f", has {sorted(arrays.files)}")
        loaded = {}
        for key in keys:
            try:
                loaded[key] = arrays[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
                raise DataError(f"{path}: '{key}' cannot be read ({err})") from err
    return loaded


def _found(array: np.ndarray) -> str:
    return f"shape {list(array.shape)}, dtype {array.dtype}"


def _checked_images(path: Path, images: np.ndarray) -> np.ndarray:
    where = f"{path}: 'images' has {_found(images)}"
    shape_ok = images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3))
    if not shape_ok or 0 in images.shape:
        raise DataError(f"{where}; need {IMAGE_SHAPES}, N, H and W at least 1")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]  # PIL writes grayscale from [H, W]
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind != "f":
        raise DataError(f"{where}; need uint8, or floats in [0, 1] or [0, 255]")
    if not np.isfinite(images).all():
        raise DataError(f"{where}, with NaN or infinite values")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 255:
        raise DataError(f"{where}, with values from {low:g} to {high:g}; floats must lie in "
                        "[0, 1] or [0, 255]")
    if high <= 1:
        print(f"{path}: images are floats in [0, 1]; scaled to 0..255")
        images = images * 255.0
    return np.round(images).astype(np.uint8)


def _checked_labels(path: Path, labels: np.ndarray, count: int) -> np.ndarray:
    where = f"{path}: 'labels' has {_found(labels)}"
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != count:
        raise DataError(f"{where} for {count} image{'' if count == 1 else 's'}; need one "
                        f"label per image, shape [{count}]")
    if labels.dtype.kind in "iu":
        return labels.astype(str)
    if labels.dtype.kind == "S":
        try:
            labels = np.char.decode(labels, "utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{where}, with bytes that are not UTF-8 ({err})") from err
    if labels.dtype.kind != "U":
        raise DataError(f"{where}; need integer labels, or strings that name the classes")
    for name in np.unique(labels).tolist():
        problem = _class_name_problem(name)
        if problem:
            raise DataError(f"{path}: 'labels' holds {name!r}, which cannot name a class "
                            f"({problem})")
    return labels


def _class_name_problem(name: str) -> str | None:
    """Each class becomes a folder named after it: the name must be one that is read back."""
    if not name.strip():
        return "it is empty"
    if "/" in name or "\0" in name:
        return "it holds '/' or a NUL character"
    return folder_problem(name)
