"""What is an image file, by one set of rules for every source (training data, unlabeled images,
the `predict` command): the `Candidate` files a source lists before they are decoded, and what
is left out, with the reason.

Left out, never entered or listed: hidden folders and files (`.ipynb_checkpoints`, `.DS_Store`,
macOS's AppleDouble `._x.png`), system folders (`__MACOSX` from macOS zips, `$RECYCLE.BIN`).
Listed as candidates that cannot be used: files without an image extension and names that are
not valid UTF-8 (they could be read, but not written to a CSV, printed or read back by name).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from teacher_student.data.decode import IMAGE_EXTENSIONS

SYSTEM_FOLDERS = {"__macosx", "$recycle.bin", "system volume information", "lost+found"}
HIDDEN_FILE = "hidden file"


class Candidate(NamedTuple):
    """A file that should hold an image, before it is decoded."""
    path: str  # the file
    class_name: str | None = None  # its label, for labeled data
    split: str | None = None  # when the source is already split
    problem: str | None = None  # why it cannot be used, when known before decoding
    shown: str | None = None  # how the source names it, when not by `path` (a CSV's text)

    @property
    def name(self) -> str:
        """The file as its source names it: what the `predict` command writes."""
        return self.path if self.shown is None else self.shown


@dataclass
class Listing:
    """What a source holds: its candidates, and what is not one, with the reason."""
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    has_splits: bool = False  # the candidates' `split` is the source's own


def is_utf8(text: str) -> bool:
    """False for a name that was not valid UTF-8 on disk (Python holds its bytes as
    surrogates, which cannot be printed or written as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """`text` with the bytes of an invalid UTF-8 name written as `\\xff` escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_hidden(name: str) -> bool:
    """A name that starts with a dot: hidden on Linux and macOS, which also writes `._x.png`
    beside `x.png` on drives it does not own (AppleDouble: attributes, not an image)."""
    return name.startswith(".")


def folder_problem(name: str) -> str | None:
    """Why the folder `name` holds no data, or None."""
    if not is_utf8(name):
        return "folder name is not valid UTF-8"
    if is_hidden(name):
        return "hidden folder"
    if name.lower() in SYSTEM_FOLDERS:
        return "system folder"
    return None


def file_problem(path: str) -> str | None:
    """Why the file at `path` cannot be an image, by its name alone, or None."""
    name = os.path.basename(path)
    if is_hidden(name):
        return HIDDEN_FILE
    if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
        return "not an image extension"
    if not is_utf8(path):
        return "file name is not valid UTF-8"
    return None


def candidate(path: str, class_name: str | None = None, split: str | None = None,
              shown: str | None = None) -> Candidate:
    """The file at `path` as a candidate, with the problem its name shows."""
    return Candidate(path, class_name, split, file_problem(path), shown)


def files_under(folder: Path, class_name: str | None = None,
                split: str | None = None) -> Listing:
    """Every file under `folder`, in order, as a candidate; hidden and system folders are not
    entered, and hidden files and what is not a regular file are listed as skipped."""
    listing = Listing()
    files = []
    for parent, subfolders, names in os.walk(folder):
        entered = []
        for name in sorted(subfolders):
            reason = folder_problem(name)
            if reason:
                listing.skipped.append((os.path.join(parent, name), reason))
            else:
                entered.append(name)
        subfolders[:] = entered
        for name in names:
            path = Path(parent, name)
            reason = HIDDEN_FILE if is_hidden(name) else (
                None if path.is_file() else "not a regular file")
            if reason:
                listing.skipped.append((str(path), reason))
            else:
                files.append(path)
    # Sorted as paths (by folder, then name), the order splits have always been drawn from.
    listing.candidates = [candidate(str(path), class_name, split) for path in sorted(files)]
    return listing
