"""Images without labels for the distillation (`distill.unlabeled`): a folder of images in any
layout (a Kaggle test folder), a CSV with a `path` column, or a `.npz` with an `images` array.

The teacher labels them, softly, on every batch they are in: they add to what the student
learns from, not to what it is measured on. They are decoded as the labeled images are (into an
image cache of their own), and unusable files are skipped and listed. An image that is also
one of the run's labeled images, the same file or the same decoded pixels, is left out: one of
the validation or test split would teach the student the teacher's answers on the images it is
measured on, and one of the training split is there already.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teacher_student.data.candidates import printable
from teacher_student.data.decoding import (
    Decoded,
    Decoding,
    decode_candidates,
    printable_pairs,
    skipped_summary,
)
from teacher_student.data.labeled import ImageTable
from teacher_student.data.sources.registry import UNLABELED, list_source
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
                   labeled: ImageTable | None = None) -> UnlabeledImages:
    """The usable images of `source`, without those that are one of `labeled` (the run's
    labeled images): the same file, or the same pixels once decoded (a copy under another
    name, the same image in a .npz). A ConfigError naming the key when none is usable."""
    try:
        listing = list_source(UNLABELED, source, decoding.embedded_dir)
    except DataError as err:  # not a source, a damaged .npz, an unreadable CSV
        raise ConfigError(f"{KEY}: {err}") from err
    known = {_real(path) for path in labeled.paths} if labeled is not None else set()
    candidates = [candidate._replace(problem="one of the run's labeled images")
                  if candidate.problem is None and _real(candidate.path) in known else candidate
                  for candidate in listing.candidates]
    decoded = decode_candidates(candidates, decoding)
    twins = _labeled_twins(decoded, labeled) if labeled is not None else {}
    used = [(candidate, row) for candidate, row in zip(decoded.usable, decoded.rows)
            if candidate.path not in twins]
    skipped = printable_pairs([*listing.skipped, *decoded.problems(),
                               *((path, f"the same image as the labeled {twin}")
                                 for path, twin in twins.items())])
    if not used:
        raise ConfigError(f"{KEY}: {source}: no usable image; {skipped_summary(skipped)}")
    return UnlabeledImages(source, tuple(candidate.path for candidate, _ in used),
                           decoded.pixels, tuple(row for _, row in used), skipped)


def _labeled_twins(decoded: Decoded, labeled: ImageTable) -> dict[str, str]:
    """Each decoded image whose pixels are those of a labeled image: its path, and the
    labeled one's."""
    by_pixels = {_digest(labeled.pixels[row]): path
                 for path, row in zip(labeled.paths, labeled.rows)}
    twins = {}
    for candidate, row in zip(decoded.usable, decoded.rows):
        twin = by_pixels.get(_digest(decoded.pixels[row]))
        if twin is not None:
            twins[candidate.path] = printable(twin)
    return twins


def _digest(pixels: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(pixels).tobytes(), digest_size=16).digest()


def _real(path: str) -> str:
    return str(Path(path).resolve())
