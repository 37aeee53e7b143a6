"""A folder of class folders, or of `train/`, `val/` (`valid/`, `validation/`), `test/` folders
of class folders: labeled images, each labeled by its folder.

Folders that hold no classes are left out, listed with the reason and said in one printed line:
hidden and system folders (candidates.py), and beside `train/` and `val/` or `test/`, any folder
that is not a split.
"""

from __future__ import annotations

from pathlib import Path

from teacher_student.data.candidates import Listing, files_under, folder_problem, printable

DESCRIPTION = "an existing folder"
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test"}


def accepts(source: str) -> bool:
    return Path(source).is_dir()


def labeled(source: str, written: Path) -> Listing:
    """The candidate images of the folder `source`, each labeled by its class folder."""
    root = Path(source)
    listing = Listing()
    subfolders, ignored = _subfolders(root)
    names = {folder.name.lower() for folder in subfolders}
    listing.has_splits = _is_split_layout(names)
    if listing.has_splits:
        ignored += [(folder, "not a split folder") for folder in subfolders
                    if folder.name.lower() not in SPLIT_FOLDERS]
        subfolders = [folder for folder in subfolders if folder.name.lower() in SPLIT_FOLDERS]
    listing.skipped += _loose_files(root)
    for folder in subfolders:
        split = SPLIT_FOLDERS[folder.name.lower()] if listing.has_splits else None
        class_folders = [folder]
        if split:
            class_folders, ignored_here = _subfolders(folder)
            ignored += ignored_here
            listing.skipped += _loose_files(folder)
        for class_folder in class_folders:
            _add_class_folder(class_folder, split, listing)
    if ignored:
        print(f"{printable(str(root))}: ignored folders that hold no classes: " + ", ".join(
            f"{printable(str(path.relative_to(root)))} ({reason})" for path, reason in ignored))
    listing.skipped[:0] = [(str(path), reason) for path, reason in ignored]
    return listing


def _is_split_layout(names: set[str]) -> bool:
    """train/ beside val/ or test/ (other folders there are ignored), or train/ alone."""
    splits = names & SPLIT_FOLDERS.keys()
    return "train" in splits and (len(splits) > 1 or names == splits)


def _subfolders(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The subfolders that may hold data, and the others with the reason."""
    kept, ignored = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_dir()):
        reason = folder_problem(path.name)
        if reason:
            ignored.append((path, reason))
        else:
            kept.append(path)
    return kept, ignored


def _loose_files(folder: Path) -> list[tuple[str, str]]:
    return [(str(p), "not inside a class folder") for p in sorted(folder.iterdir()) if p.is_file()]


def _add_class_folder(folder: Path, split: str | None, listing: Listing) -> None:
    found = files_under(folder, folder.name, split)
    listing.skipped += found.skipped
    if not found.candidates:
        listing.skipped.append((str(folder), "empty class folder"))
    listing.candidates += found.candidates
