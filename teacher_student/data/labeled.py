"""Labeled images, read from a `data.source` (any kind that sources/registry.py lists) into an
`ImageTable`: every file decoded once into the image cache (see images.py), every unusable one
listed in `skipped` with its reason, and a class whose every file is unusable an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from teacher_student.data.candidates import Candidate, printable
from teacher_student.data.decoding import (
    Decoding,
    decode_candidates,
    printable_pairs,
    skipped_summary,
)
from teacher_student.data.sources.registry import LABELED, list_source
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


def read_source(source: str, decoding: Decoding) -> ImageTable:
    """The decoded images of an embedded dataset name, an image folder, a `path,label` CSV or
    a `.npz` of `images` and `labels`."""
    listing = list_source(LABELED, source, decoding.embedded_dir)
    decoded = decode_candidates(listing.candidates, decoding)
    skipped = printable_pairs([*listing.skipped, *decoded.problems()])
    if not decoded.usable:
        raise DataError(f"{source}: no usable images; {skipped_summary(skipped)}")
    _check_no_class_lost(source, listing.candidates, decoded.usable, dict(decoded.problems()))
    class_names = tuple(sorted({candidate.class_name for candidate in decoded.usable}))
    if len(class_names) < 2:
        raise DataError(
            f"{source}: found only {len(class_names)} class ({class_names[0]!r}, "
            f"{len(decoded.usable)} image{'' if len(decoded.usable) == 1 else 's'}); need at "
            "least 2 classes"
        )
    index = {name: i for i, name in enumerate(class_names)}
    return ImageTable(
        paths=tuple(candidate.path for candidate in decoded.usable),
        labels=tuple(index[candidate.class_name] for candidate in decoded.usable),
        class_names=class_names,
        pixels=decoded.pixels,
        rows=decoded.rows,
        splits=tuple(c.split for c in decoded.usable) if listing.has_splits else None,
        skipped=skipped,
    )


def _check_no_class_lost(source: str, candidates: list[Candidate],
                         usable: tuple[Candidate, ...], problems: dict[str, str]) -> None:
    """A class whose every file was skipped is a DataError, not a class silently dropped."""
    kept = {candidate.class_name for candidate in usable}
    for candidate in candidates:
        if candidate.class_name not in kept:
            files = sum(c.class_name == candidate.class_name for c in candidates)
            first = f"{printable(candidate.path)}: {problems[candidate.path]}"
            which = (f"its only file was skipped ({first})" if files == 1 else
                     f"its {files} files were all skipped (first: {first})")
            raise DataError(f"{source}: class {candidate.class_name!r} has no usable image: "
                            f"{which}; fix or remove them")
