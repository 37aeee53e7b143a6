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

from teacher_student.data.decoding import (
    Decoding,
    decode_candidates,
    printable_pairs,
    skipped_summary,
)
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
                   labeled: Sequence[str] = ()) -> UnlabeledImages:
    """The usable images of `source`, without those whose file is one of `labeled` (the
    paths of the run's labeled images). A ConfigError naming the key when none is usable."""
    try:
        listing = list_source(UNLABELED, source, decoding.embedded_dir)
    except DataError as err:  # not a source, a damaged .npz, an unreadable CSV
        raise ConfigError(f"{KEY}: {err}") from err
    known = {_real(path) for path in labeled}
    candidates = [candidate._replace(problem="one of the run's labeled images")
                  if candidate.problem is None and _real(candidate.path) in known else candidate
                  for candidate in listing.candidates]
    decoded = decode_candidates(candidates, decoding)
    skipped = printable_pairs([*listing.skipped, *decoded.problems()])
    if not decoded.usable:
        raise ConfigError(f"{KEY}: {source}: no usable image; {skipped_summary(skipped)}")
    return UnlabeledImages(source, tuple(candidate.path for candidate in decoded.usable),
                           decoded.pixels, decoded.rows, skipped)


def _real(path: str) -> str:
    return str(Path(path).resolve())
