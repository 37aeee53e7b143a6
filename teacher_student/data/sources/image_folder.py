"""A folder of images in any layout, without labels (a Kaggle test folder): every file under it,
at any depth, by the rules of candidates.py."""

from __future__ import annotations

from pathlib import Path

from teacher_student.data.candidates import Listing, files_under

DESCRIPTION = "an existing folder"


def accepts(source: str) -> bool:
    return Path(source).is_dir()


def unlabeled(source: str, written: Path) -> Listing:
    return files_under(Path(source))
