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
from teacher_student.data.folders import Candidate, is_utf8, printable, scan_folder
from teacher_student.data.images import decode_all
from teacher_student.errors import DataError


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


def _read_folder(root: Path, decoding: Decoding) -> ImageTable:
    scan = scan_folder(root)
    return _decode_and_build(str(root), scan.candidates, scan.skipped, decoding,
                             has_splits=scan.has_splits)


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
        else:
            problem = None if path.is_file() else f"{where}: file not found"
            candidates.append(Candidate(str(path), label.strip(), problem=problem))
    return _decode_and_build(str(csv_path), candidates, skipped, decoding, has_splits=False)


def _decode_and_build(source: str, candidates: list[Candidate], skipped: list,
                      decoding: Decoding, *, has_splits: bool) -> ImageTable:
    candidates = [_check_name(candidate) for candidate in candidates]
    readable = [candidate for candidate in candidates if candidate.problem is None]
    decoded = decode_all([candidate.path for candidate in readable], decoding.image_size,
                         decoding.channels, decoding.cache, decoding.cache_dir)
    problems = {candidate.path: candidate.problem for candidate in candidates
                if candidate.problem}
    usable = []  # (candidate, its row in decoded.pixels)
    for row, (candidate, problem) in enumerate(zip(readable, decoded.problems)):
        if problem:
            problems[candidate.path] = problem
        else:
            usable.append((candidate, row))
    skipped = [(printable(path), reason) for path, reason in [*skipped, *problems.items()]]
    if not usable:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise DataError(f"{source}: no usable images; {len(skipped)} entries skipped{first}")
    _check_no_class_lost(source, candidates, {c.class_name for c, _ in usable}, problems)
    class_names = tuple(sorted({candidate.class_name for candidate, _ in usable}))
    if len(class_names) < 2:
        raise DataError(
            f"{source}: found only {len(class_names)} class ({class_names[0]!r}, "
            f"{len(usable)} images); need at least 2 classes"
        )
    index = {name: i for i, name in enumerate(class_names)}
    return ImageTable(
        paths=tuple(candidate.path for candidate, _ in usable),
        labels=tuple(index[candidate.class_name] for candidate, _ in usable),
        class_names=class_names,
        pixels=decoded.pixels,
        rows=tuple(row for _, row in usable),
        splits=tuple(candidate.split for candidate, _ in usable) if has_splits else None,
        skipped=tuple(skipped),
    )


def _check_name(candidate: Candidate) -> Candidate:
    """A path that is not valid UTF-8 could be read, but not written to split.csv, printed or
    read back by name: it is skipped."""
    if candidate.problem or is_utf8(candidate.path):
        return candidate
    return candidate._replace(problem="file name is not valid UTF-8")


def _check_no_class_lost(source: str, candidates: list[Candidate], kept: set[str],
                         problems: dict[str, str]) -> None:
    """A class whose every file was skipped is a DataError, not a class silently dropped."""
    for candidate in candidates:
        if candidate.class_name not in kept:
            files = sum(c.class_name == candidate.class_name for c in candidates)
            raise DataError(
                f"{source}: class {candidate.class_name!r} has no usable image: its {files} "
                f"file(s) were all skipped (first: {printable(candidate.path)}: "
                f"{problems[candidate.path]}); fix or remove them")
