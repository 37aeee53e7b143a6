"""What an image folder holds: one folder per class, or `train/`, `val/` (`valid/`,
`validation/`), `test/` folders of class folders; listed as candidates, not yet decoded.

What is not data is left out, listed with the reason, and, for folders where classes are looked
for, said in one printed line: hidden folders and files (`.ipynb_checkpoints`, `.DS_Store`,
macOS's `._x.png`), system folders (`__MACOSX` from macOS zips, `$RECYCLE.BIN`), names that are
not valid UTF-8, and beside `train/` and `val/` or `test/`, any folder that is not a split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from teacher_student.data.decode import IMAGE_EXTENSIONS

SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test"}
SYSTEM_FOLDERS = {"__macosx", "$recycle.bin", "system volume information", "lost+found"}


class Candidate(NamedTuple):
    """A file that should hold an image of `class_name`, before it is decoded."""
    path: str
    class_name: str
    split: str | None = None  # when the folder is already split
    problem: str | None = None  # why it cannot be used, when known before decoding


@dataclass
class FolderScan:
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    has_splits: bool = False


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


def not_data(name: str, kind: str = "folder") -> str | None:
    """Why the file or folder `name` holds no data, or None."""
    if not is_utf8(name):
        return f"{kind} name is not valid UTF-8"
    if name.startswith("."):
        return f"hidden {kind}"
    if kind == "folder" and name.lower() in SYSTEM_FOLDERS:
        return "system folder"
    return None


def scan_folder(root: Path) -> FolderScan:
    """The candidate images of `root` and what was left out."""
    scan = FolderScan()
    subfolders, ignored = _subfolders(root)
    names = {folder.name.lower() for folder in subfolders}
    scan.has_splits = _is_split_layout(names)
    if scan.has_splits:
        ignored += [(folder, "not a split folder") for folder in subfolders
                    if folder.name.lower() not in SPLIT_FOLDERS]
        subfolders = [folder for folder in subfolders if folder.name.lower() in SPLIT_FOLDERS]
    scan.skipped += _loose_files(root)
    for folder in subfolders:
        split = SPLIT_FOLDERS[folder.name.lower()] if scan.has_splits else None
        class_folders = [folder]
        if split:
            class_folders, ignored_here = _subfolders(folder)
            ignored += ignored_here
            scan.skipped += _loose_files(folder)
        for class_folder in class_folders:
            _add_class_folder(class_folder, split, scan)
    if ignored:
        print(f"{printable(str(root))}: ignored folders that hold no classes: " + ", ".join(
            f"{printable(str(path.relative_to(root)))} ({reason})" for path, reason in ignored))
    scan.skipped[:0] = [(str(path), reason) for path, reason in ignored]
    return scan


def _is_split_layout(names: set[str]) -> bool:
    """train/ beside val/ or test/ (other folders there are ignored), or train/ alone."""
    splits = names & SPLIT_FOLDERS.keys()
    return "train" in splits and (len(splits) > 1 or names == splits)


def _subfolders(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The subfolders that may hold data, and the others with the reason."""
    kept, ignored = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_dir()):
        reason = not_data(path.name)
        if reason:
            ignored.append((path, reason))
        else:
            kept.append(path)
    return kept, ignored


def _loose_files(folder: Path) -> list[tuple[str, str]]:
    return [(str(p), "not inside a class folder") for p in sorted(folder.iterdir()) if p.is_file()]


def _add_class_folder(folder: Path, split: str | None, scan: FolderScan) -> None:
    files = files_under(folder, scan.skipped)
    if not files:
        scan.skipped.append((str(folder), "empty class folder"))
    for path in files:
        extension_ok = path.suffix.lower() in IMAGE_EXTENSIONS
        scan.candidates.append(Candidate(str(path), folder.name, split,
                                         None if extension_ok else "not an image extension"))


def files_under(folder: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    """The files under `folder`, in order; hidden and system folders are not entered, and
    hidden files (`.DS_Store`) are left out."""
    files = []
    for parent, subfolders, names in os.walk(folder):
        entered = []
        for name in sorted(subfolders):
            reason = not_data(name)
            if reason:
                skipped.append((os.path.join(parent, name), reason))
            else:
                entered.append(name)
        subfolders[:] = entered
        for name in names:
            path = Path(parent, name)
            reason = "hidden file" if name.startswith(".") else (
                None if path.is_file() else "not a regular file")
            if reason:
                skipped.append((str(path), reason))
            else:
                files.append(path)
    return sorted(files)
