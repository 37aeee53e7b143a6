"""Images without labels for the distillation (`distill.unlabeled`): a folder of images in any
layout (a Kaggle test folder), a CSV with a `path` column, or a `.npz` with an `images` array.

The teacher labels them, softly, on every batch they are in: they add to what the student
learns from, not to what it is measured on. They are decoded as the labeled images are (into an
image cache of their own), and unusable files are skipped and listed. A file that is also one
of the run's labeled images is left out: one of the validation or test split would teach the
student the teacher's answers on the images it is measured on, and one of the training split is
there already.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from teacher_student.data import embedded
from teacher_student.data.decode import IMAGE_EXTENSIONS
from teacher_student.data.folders import files_under, is_utf8, printable
from teacher_student.data.images import decode_all
from teacher_student.data.sources import Decoding
from teacher_student.errors import ConfigError, DataError

KEY = "distill.unlabeled"


@dataclass(frozen=True)
class UnlabeledImages:
    source: str
    paths: tuple[str, ...]  # of the images used
    pixels: np.ndarray  # the decoded images: image i (of paths[i]) is pixels[rows[i]]
    rows: tuple[int, ...]
    skipped: tuple[tuple[str, str], ...]  # (path, reason) of every file found but not used

    def __len__(self) -> int:
        return len(self.rows)


def read_unlabeled(source: str, decoding: Decoding,
                   labeled: Sequence[str] = ()) -> UnlabeledImages:
    """The usable images of `source`, without those whose file is one of `labeled` (the
    paths of the run's labeled images). A ConfigError naming the key when none is usable."""
    try:
        paths, skipped = _candidates(Path(source), decoding)
    except DataError as err:  # a damaged .npz, an unreadable CSV
        raise ConfigError(f"{KEY}: {err}") from err
    known = {_real(path) for path in labeled}
    usable_paths = []
    for path in paths:
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append((str(path), "not an image extension"))
        elif not is_utf8(str(path)):
            skipped.append((str(path), "file name is not valid UTF-8"))
        elif _real(str(path)) in known:
            skipped.append((str(path), "one of the run's labeled images"))
        else:
            usable_paths.append(str(path))
    decoded = decode_all(usable_paths, decoding.image_size, decoding.channels, decoding.cache,
                         decoding.cache_dir)
    used, rows = [], []
    for row, (path, problem) in enumerate(zip(usable_paths, decoded.problems)):
        if problem:
            skipped.append((path, problem))
        else:
            used.append(path)
            rows.append(row)
    skipped = [(printable(path), reason) for path, reason in skipped]
    if not rows:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise ConfigError(f"{KEY}: {source}: no usable image; {len(skipped)} entries "
                          f"skipped{first}")
    return UnlabeledImages(source, tuple(used), decoded.pixels, tuple(rows), tuple(skipped))


def _candidates(source: Path, decoding: Decoding) -> tuple[list[Path], list[tuple[str, str]]]:
    """The files that should be images, and those already left out, with the reason."""
    skipped: list[tuple[str, str]] = []
    if source.is_dir():
        return files_under(source, skipped), skipped
    if source.is_file() and source.suffix.lower() == ".csv":
        return _listed(source, skipped), skipped
    if source.is_file() and source.suffix.lower() == ".npz":
        folder = embedded.materialize_npz_images(
            source, decoding.embedded_dir or embedded.default_cache_dir())
        return files_under(folder, skipped), skipped
    raise ConfigError(f"{KEY}: {source}: not an existing folder, a .csv or a .npz file")


def _listed(csv_path: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    """The files of a CSV's `path` column (relative to the CSV's folder); other columns, a
    `label` too, are not read."""
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{csv_path}: cannot read CSV ({err})") from err
    table.columns = [str(column).strip() for column in table.columns]
    if "path" not in table.columns:
        raise DataError(f"{csv_path}: needs a column 'path', has {list(table.columns)}")
    files = []
    for index, raw in enumerate(table["path"]):
        path = csv_path.parent / raw.strip()
        where = f"{csv_path.name} row {index + 2}"
        if not raw.strip():
            skipped.append((raw, f"{where}: empty path"))
        elif not path.is_file():
            skipped.append((str(path), f"{where}: file not found"))
        else:
            files.append(path)
    return files


def _real(path: str) -> str:
    return str(Path(path).resolve())
