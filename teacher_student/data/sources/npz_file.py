"""A `.npz` of `images` (and `labels`, for labeled images), checked (npz.py) and written out as
an image folder (embedded.py), so that its images go through the same reading and checking as
a folder's."""

from __future__ import annotations

from pathlib import Path

from teacher_student.data import embedded
from teacher_student.data.candidates import Listing, files_under
from teacher_student.data.sources import class_folders

DESCRIPTION = "a .npz file"


def accepts(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() == ".npz"


def labeled(source: str, written: Path) -> Listing:
    """`written`: where the image folder goes."""
    return class_folders.labeled(str(embedded.materialize_npz(Path(source), written)), written)


def unlabeled(source: str, written: Path) -> Listing:
    return files_under(embedded.materialize_npz_images(Path(source), written))
