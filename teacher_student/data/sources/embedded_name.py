"""The name of a dataset that ships inside an installed package (`digits`, `mnist`), written
out as a folder of class folders (embedded.py) and read as one."""

from __future__ import annotations

from pathlib import Path

from teacher_student.data import embedded
from teacher_student.data.candidates import Listing
from teacher_student.data.sources import class_folders

DESCRIPTION = f"an embedded dataset ({', '.join(embedded.EMBEDDED)})"


def accepts(source: str) -> bool:
    return source in embedded.EMBEDDED


def labeled(source: str, written: Path) -> Listing:
    """`written`: where the folder goes."""
    return class_folders.labeled(str(embedded.materialize(source, written)), written)
