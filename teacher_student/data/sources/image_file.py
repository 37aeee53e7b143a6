"""One image file, given by name (`predict photo.jpg`)."""

from __future__ import annotations

from pathlib import Path

from teacher_student.data.candidates import Listing, candidate

DESCRIPTION = "an image file"


def accepts(source: str) -> bool:
    return Path(source).is_file()


def unlabeled(source: str, written: Path) -> Listing:
    return Listing([candidate(source)])
