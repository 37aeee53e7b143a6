"""The data of `bench distill --unlabeled SHARE`: a labeled dataset with a share of its training
images stripped of their labels, as a user with few labels has it.

Per seed, the images are split (stratified) into test, validation and training parts as a run
splits them; `SHARE` of the training part loses its labels and becomes a `.npz` of images (for
`distill.unlabeled`), the rest keeps them. The labeled parts are written as an image folder of
`train/ val/ test/`, so that the teacher, the baseline and the distilled student of the seed
learn from the same labeled images and are measured on the same test images as each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from teacher_student import atomic
from teacher_student.data import embedded
from teacher_student.data.npz import load_npz

DONE = "done.txt"


def split_off_unlabeled(data: str, share: float, seed: int, folder: Path,
                        val_fraction: float, test_fraction: float) -> tuple[Path, Path]:
    """(the labeled image folder, the `.npz` of unlabeled images), written under `folder`
    unless already there."""
    labeled, unlabeled = folder / "labeled", folder / "unlabeled.npz"
    if (folder / DONE).exists():
        return labeled, unlabeled
    images, labels = _load(data)
    rest, test = _stratified(np.arange(len(labels)), labels, test_fraction, seed)
    train, val = _stratified(rest, labels, val_fraction / (1 - test_fraction), seed)
    kept, stripped = _stratified(train, labels, share, seed)
    for name, rows in (("train", kept), ("val", val), ("test", test)):
        embedded.write_image_folder(images[rows], labels[rows], labeled / name)
    np.savez(unlabeled, images=images[stripped])
    atomic.write_text(folder / DONE, f"{len(kept)} labeled training images, {len(stripped)} "
                      f"unlabeled, {len(val)} validation, {len(test)} test\n")
    return labeled, unlabeled


def _load(data: str) -> tuple[np.ndarray, np.ndarray]:
    if data in embedded.EMBEDDED:
        return embedded.EMBEDDED[data]()
    return load_npz(Path(data))


def _stratified(rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int):
    """(kept, taken): `fraction` of `rows` taken, stratified by label."""
    return train_test_split(rows, test_size=fraction, random_state=seed, stratify=labels[rows])
