"""Which kind of source reads a given `data.source`, `distill.unlabeled` or `predict` input: the
first of its list that accepts it. A new kind of source is one module here (a DESCRIPTION, an
`accepts` and a reader) and one line in the list of each use it serves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from teacher_student.data import embedded
from teacher_student.data.candidates import Listing
from teacher_student.data.sources import (
    class_folders,
    csv_table,
    embedded_name,
    image_file,
    image_folder,
    npz_file,
)
from teacher_student.errors import DataError


class Kind(NamedTuple):
    description: str  # what the error names when no kind accepts a source
    accepts: Callable[[str], bool]
    # (source, where sources written out as image folders go) -> its candidates
    read: Callable[[str, Path], Listing]


LABELED = (  # data.source
    Kind(embedded_name.DESCRIPTION, embedded_name.accepts, embedded_name.labeled),
    Kind(class_folders.DESCRIPTION, class_folders.accepts, class_folders.labeled),
    Kind(csv_table.DESCRIPTION, csv_table.accepts, csv_table.labeled),
    Kind(npz_file.DESCRIPTION, npz_file.accepts, npz_file.labeled),
)
UNLABELED = (  # distill.unlabeled
    Kind(image_folder.DESCRIPTION, image_folder.accepts, image_folder.unlabeled),
    Kind(csv_table.DESCRIPTION, csv_table.accepts, csv_table.unlabeled),
    Kind(npz_file.DESCRIPTION, npz_file.accepts, npz_file.unlabeled),
)
PREDICT = (  # the predict command's input; any other file is one image, so it comes last
    Kind(image_folder.DESCRIPTION, image_folder.accepts, image_folder.unlabeled),
    Kind(csv_table.DESCRIPTION, csv_table.accepts, csv_table.unlabeled),
    Kind(image_file.DESCRIPTION, image_file.accepts, image_file.unlabeled),
)


def list_source(kinds: Sequence[Kind], source: str, written: Path | None = None) -> Listing:
    """The candidates of `source`, listed by the first of `kinds` that accepts it. `written`:
    where embedded datasets and `.npz` files are written out as image folders (by default,
    embedded.default_cache_dir())."""
    for kind in kinds:
        if kind.accepts(source):
            return kind.read(source, written or embedded.default_cache_dir())
    raise DataError(f"{source}: not {_one_of([kind.description for kind in kinds])}")


def _one_of(descriptions: list[str]) -> str:
    """"a, b or c", each description once."""
    unique = list(dict.fromkeys(descriptions))
    return ", ".join(unique[:-1]) + " or " + unique[-1] if len(unique) > 1 else unique[0]
