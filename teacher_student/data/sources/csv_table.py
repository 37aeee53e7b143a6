"""A CSV that lists image files in a `path` column (relative to the CSV's folder, or absolute),
with a `label` column for labeled images. Rows are kept in the file's order; a row that cannot
be used is skipped naming the row (its line in the file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from teacher_student.data.candidates import Candidate, Listing, candidate
from teacher_student.errors import DataError

DESCRIPTION = "a .csv"


def accepts(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() == ".csv"


def labeled(source: str, written: Path) -> Listing:
    """Each row's file, labeled by its `label`."""
    csv_path = Path(source)
    listing = Listing()
    for where, found, row in _files(csv_path, _read(csv_path, ("path", "label")), listing):
        if not row["label"].strip():
            listing.skipped.append((found.path, f"{where}: empty label"))
        else:
            listing.candidates.append(found._replace(class_name=row["label"].strip()))
    return listing


def unlabeled(source: str, written: Path) -> Listing:
    """Each row's file; other columns, a `label` too, are not read."""
    csv_path = Path(source)
    listing = Listing()
    listing.candidates = [found for _, found, _ in
                          _files(csv_path, _read(csv_path, ("path",)), listing)]
    return listing


def _read(csv_path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        rows = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{csv_path}: cannot read CSV ({err})") from err
    rows.columns = [str(column).strip() for column in rows.columns]
    if not set(columns) <= set(rows.columns):
        needs = " and ".join(f"'{column}'" for column in columns)
        raise DataError(f"{csv_path}: needs {'columns' if len(columns) > 1 else 'a column'} "
                        f"{needs}, has {list(rows.columns)}")
    return rows


def _files(csv_path: Path, rows: pd.DataFrame,
           listing: Listing) -> Iterator[tuple[str, Candidate, dict[str, str]]]:
    """(the row as messages name it, its file as a candidate, its cells) of each row with a
    path; a row without one is skipped. A missing file is a candidate with that problem, so
    that a class whose every file is missing is named."""
    for index, row in enumerate(rows.to_dict("records")):
        text = row["path"]
        where = f"{csv_path.name} row {index + 2}"  # the file's line number; line 1 is the header
        if not text.strip():
            listing.skipped.append((text, f"{where}: empty path"))
            continue
        path = str(csv_path.parent / text.strip())  # an absolute path replaces the folder
        found = candidate(path, shown=text)
        if found.problem is None and not Path(path).is_file():
            found = found._replace(problem=f"cannot read: file not found ({where})")
        yield where, found, row
