"""Candidates decoded: the pixels of those that are images, and every other one skipped with the
reason. The one decode-and-skip routine of the training data, the unlabeled images and the
`predict` command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teacher_student.data.candidates import Candidate, printable
from teacher_student.data.images import decode_all


@dataclass(frozen=True)
class Decoding:
    """How images are decoded: their size and channels, and where the decoded array is kept."""
    image_size: int
    channels: int
    cache: str = "memory"  # "memory", "disk" or "auto" (see images.py)
    cache_dir: Path | None = None  # where a disk cache goes (the run directory's cache/)
    embedded_dir: Path | None = None  # where embedded and .npz datasets are written as folders


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # image i of `usable` is pixels[rows[i]]
    usable: tuple[Candidate, ...]
    rows: tuple[int, ...]
    skipped: tuple[Candidate, ...]  # each with its `problem`: known before, or found decoding

    def problems(self) -> list[tuple[str, str]]:
        """(path, reason) of every skipped candidate."""
        return [(candidate.path, candidate.problem) for candidate in self.skipped]


def decode_candidates(candidates: Sequence[Candidate], decoding: Decoding) -> Decoded:
    """Every candidate without a known problem decoded (once, into the image cache); those
    with one, and those that do not decode, skipped."""
    readable = [candidate for candidate in candidates if candidate.problem is None]
    decoded = decode_all([candidate.path for candidate in readable], decoding.image_size,
                         decoding.channels, decoding.cache, decoding.cache_dir)
    usable, rows = [], []
    skipped = [candidate for candidate in candidates if candidate.problem]
    for row, (candidate, problem) in enumerate(zip(readable, decoded.problems)):
        if problem:
            skipped.append(candidate._replace(problem=problem))
        else:
            usable.append(candidate)
            rows.append(row)
    return Decoded(decoded.pixels, tuple(usable), tuple(rows), tuple(skipped))


def printable_pairs(pairs: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """(path, reason) pairs as they are printed and written to a CSV."""
    return tuple((printable(path), reason) for path, reason in pairs)


def skipped_summary(skipped: Sequence[tuple[str, str]]) -> str:
    """How many entries were skipped, and the first: for the error of a source whose every
    entry was."""
    first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
    return f"{len(skipped)} {'entry' if len(skipped) == 1 else 'entries'} skipped{first}"
