"""Where the images come from: an embedded dataset name, an image folder (class folders, or
train/ val/ test/ of them), a CSV of `path,label`, or a `.npz` of `images` and `labels`, read
into an `ImageTable`: every file decoded once into the image cache (see images.py), every
unusable one listed in `skipped` with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from teacher_student.data import embedded
from teacher_student.data.decode import IMAGE_EXTENSIONS
from teacher_student.data.images import decode_all
from teacher_student.errors import DataError

SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test"}


@dataclass(frozen=True)
class ImageTable:
    paths: tuple[str, ...]
    labels: tuple[int, ...]  # indices into class_names
    class_names: tuple[str, ...]
    pixels: np.ndarray  # the decoded images: image i is pixels[rows[i]]
    rows: tuple[int, ...]
    splits: tuple[str, ...] | None = None  # per image, when the folder was already split
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason) for every unusable file


@dataclass(frozen=True)
class Decoding:
    """How images are decoded: their size and channels, and where the decoded array is kept."""
    image_size: int
    channels: int
    cache: str = "memory"  # "memory", "disk" or "auto" (see images.py)
    cache_dir: Path | None = None  # where a disk cache goes (the run directory's cache/)
    embedded_dir: Path | None = None  # where embedded and .npz datasets are written as folders


# A candidate image before it is checked: (path, class name, split or None).
Candidate = tuple[str, str, str | None]


def read_source(source: str, decoding: Decoding) -> ImageTable:
    """The decoded images of an embedded dataset name, an image folder, a `path,label` CSV or
    a `.npz` of `images` and `labels` (written out as an image folder first, like embedded
    datasets, so that it goes through the same reading and checking)."""
    folders = decoding.embedded_dir or embedded.default_cache_dir()
    path = Path(source)
    if source in embedded.EMBEDDED:
        return _read_folder(embedded.materialize(source, folders), decoding)
    if path.is_dir():
        return _read_folder(path, decoding)
    if path.is_file() and path.suffix.lower() == ".csv":
        return _read_csv(path, decoding)
    if path.is_file() and path.suffix.lower() == ".npz":
        return _read_folder(embedded.materialize_npz(path, folders), decoding)
    raise DataError(
        f"{source}: not an embedded dataset ({', '.join(embedded.EMBEDDED)}), "
        "an existing folder, a .csv or a .npz file"
    )


def _visible_subfolders(folder: Path) -> list[Path]:
    # Hidden folders (.ipynb_checkpoints, .git, ...) are never classes.
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_folder(root: Path, decoding: Decoding) -> ImageTable:
    subfolders = _visible_subfolders(root)
    names = {p.name.lower() for p in subfolders}
    is_split_layout = "train" in names and names <= SPLIT_FOLDERS.keys()
    candidates: list[Candidate] = []
    skipped: list[tuple[str, str]] = []
    skipped += _loose_files(root)
    for folder in subfolders:
        split = SPLIT_FOLDERS[folder.name.lower()] if is_split_layout else None
        class_folders = _visible_subfolders(folder) if is_split_layout else [folder]
        skipped += _loose_files(folder) if is_split_layout else []
        for class_folder in class_folders:
            _collect_class_folder(class_folder, split, candidates, skipped)
    return _decode_and_build(str(root), candidates, skipped, decoding, has_splits=is_split_layout)


def _loose_files(folder: Path) -> list[tuple[str, str]]:
    return [(str(p), "not inside a class folder") for p in sorted(folder.iterdir()) if p.is_file()]


def _collect_class_folder(
    folder: Path, split: str | None, candidates: list[Candidate], skipped: list
) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    others = [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
    skipped += [(str(p), "not an image extension") for p in others]
    if not images:
        skipped.append((str(folder), "empty class folder"))
    candidates += [(str(p), folder.name, split) for p in images]


def _read_csv(csv_path: Path, decoding: Decoding) -> ImageTable:
    try:
        rows = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{csv_path}: cannot read CSV ({err})") from err
    rows.columns = [str(c).strip() for c in rows.columns]
    if not {"path", "label"} <= set(rows.columns):
        raise DataError(f"{csv_path}: needs columns 'path' and 'label', has {list(rows.columns)}")
    candidates: list[Candidate] = []
    skipped: list[tuple[str, str]] = []
    for index, (raw_path, label) in enumerate(zip(rows["path"], rows["label"])):
        where = f"{csv_path.name} row {index + 2}"  # the file's line number; line 1 is the header
        path = csv_path.parent / raw_path.strip()  # an absolute path replaces the folder
        if not raw_path.strip():
            skipped.append((raw_path, f"{where}: empty path"))
        elif not label.strip():
            skipped.append((str(path), f"{where}: empty label"))
        elif not path.is_file():
            skipped.append((str(path), f"{where}: file not found"))
        else:
            candidates.append((str(path), label.strip(), None))
    return _decode_and_build(str(csv_path), candidates, skipped, decoding, has_splits=False)


def _decode_and_build(source: str, candidates: list[Candidate], skipped: list,
                      decoding: Decoding, *, has_splits: bool) -> ImageTable:
    decoded = decode_all([path for path, _, _ in candidates], decoding.image_size,
                         decoding.channels, decoding.cache, decoding.cache_dir)
    usable = []
    for row, ((path, class_name, split), problem) in enumerate(zip(candidates,
                                                                   decoded.problems)):
        if problem:
            skipped.append((path, problem))
        else:
            usable.append((path, class_name, split, row))
    class_names = tuple(sorted({class_name for _, class_name, _, _ in usable}))
    if not usable:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise DataError(f"{source}: no usable images; {len(skipped)} entries skipped{first}")
    if len(class_names) < 2:
        raise DataError(
            f"{source}: found only {len(class_names)} class ({class_names[0]!r}, "
            f"{len(usable)} images); need at least 2 classes"
        )
    index = {name: i for i, name in enumerate(class_names)}
    return ImageTable(
        paths=tuple(path for path, _, _, _ in usable),
        labels=tuple(index[class_name] for _, class_name, _, _ in usable),
        class_names=class_names,
        pixels=decoded.pixels,
        rows=tuple(row for _, _, _, row in usable),
        splits=tuple(split for _, _, split, _ in usable) if has_splits else None,
        skipped=tuple(skipped),
    )
