"""The folder of one training step: its resume points, models, history and end mark.

A `CheckpointDir` holds

    resume/epoch-0003/   weights, optimizer state and progress after epoch 3 (and epoch 2's)
    last.keras           the deployable model after the last finished epoch
    best.keras           the deployable model of the best validation accuracy
    history.csv          one row per finished epoch
    done.json            written last: the step is finished
    published.json       the run's model the finished step made is written (`Step.publish`)
    set_aside/           what could not be read back, moved out of the way (`recover`)

Every file is written under a temporary name and renamed into place, and a resume folder
appears whole or not at all, so a kill at any moment leaves a consistent folder. What a kill
cannot explain (a disk that filled up, a copy between sessions cut short) is found by
`recover`.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from teacher_student import atomic

RESUME_STATE, RESUME_PROGRESS = "state.weights.h5", "progress.json"


def inside(name: str) -> property:
    """A read-only attribute: the path `name` inside the folder."""
    return property(lambda self: self.path / name, doc=f"`{name}` in this folder")


@dataclass(frozen=True)
class CheckpointDir:
    """The folder of one training step: its resume points, models, history and end mark."""

    path: Path
    last_model = inside("last.keras")
    best_model = inside("best.keras")
    history_file = inside("history.csv")
    tensorboard = inside("tensorboard")
    resume = inside("resume")

    @property
    def name(self) -> str:
        return self.path.name

    def is_done(self) -> bool:
        return (self.path / "done.json").exists()

    def mark_done(self, summary: Mapping) -> None:
        atomic.write_json(self.path / "done.json", dict(summary))

    def is_published(self) -> bool:
        return (self.path / "published.json").exists()

    def mark_published(self, model: Path | None) -> None:
        atomic.write_json(self.path / "published.json",
                          {"model": model.name if model is not None else None})

    def done_summary(self) -> dict:
        """What `mark_done` recorded (epochs, best validation accuracy...)."""
        return json.loads((self.path / "done.json").read_text())

    def resume_points(self) -> list[Path]:
        """Finished epochs' resume folders, oldest first."""
        return sorted(self.resume.glob("epoch-*"))

    def latest_resume_point(self) -> Path | None:
        points = self.resume_points()
        return points[-1] if points else None

    def publish_resume_point(self, epoch: int, fill: Callable[[Path], object],
                             keep: int = 1) -> Path:
        """`fill(folder)` writes the resume point of `epoch`; older ones beyond `keep` go."""
        final = self.resume / f"epoch-{epoch:04d}"
        if final.exists():
            shutil.rmtree(final)
        atomic.publish_directory(fill, final)
        for old in self.resume_points()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def write_history(self, rows: Sequence[Mapping]) -> None:
        """`history.csv`: one row per epoch, `epoch` first, then the metrics by name."""
        frame = pd.DataFrame(list(rows))
        columns = ["epoch", *sorted(c for c in frame.columns if c != "epoch")]
        atomic.write_csv(frame.reindex(columns=columns), self.history_file)

    def read_history(self) -> pd.DataFrame:
        return pd.read_csv(self.history_file) if self.history_file.exists() else pd.DataFrame()

    def remove_leftovers(self) -> None:
        """What a killed run left under temporary names."""
        for folder in (self.path, self.resume):
            if folder.exists():
                atomic.remove_leftovers(folder)

    def recover(self) -> list[str]:
        """Removes leftovers and sets aside every checkpoint file that cannot be read back;
        one line per file set aside.

        An epoch's checkpoint is its resume point and `last.keras`: when either cannot be read,
        the epoch is set aside whole and the run goes on from the resume point before it. An
        unreadable `best.keras` is set aside too (training writes a new one after its next
        epoch; a finished step takes its last epoch's model instead).
        """
        self.remove_leftovers()
        notes = []
        points = self.resume_points()
        while points and (why := _unreadable_resume_point(points[-1])):
            notes.append(self._set_aside(points.pop(), why))
        if self.last_model.exists() and (why := unreadable_model(self.last_model)):
            notes.append(self._set_aside(self.last_model, why))
            if points:
                notes.append(self._set_aside(points.pop(), "its epoch's last.keras could "
                                             "not be read"))
        if self.best_model.exists() and (why := unreadable_model(self.best_model)):
            notes.append(self._set_aside(self.best_model, why))
        if self.is_done() and not self.best_model.exists() and self.last_model.exists():
            shutil.copy2(self.last_model, self.best_model)
            notes.append(f"{self.best_model}: the last epoch's model stands in for it")
        return notes

    def _set_aside(self, path: Path, why: str) -> str:
        folder = self.path / "set_aside"
        folder.mkdir(exist_ok=True)
        target, copy = folder / path.name, 1
        while target.exists():
            copy += 1
            target = folder / f"{path.name}-{copy}"
        path.rename(target)
        return f"{path} cannot be read ({why}); set aside as {target}"


def unreadable_model(path: Path) -> str | None:
    """Why a .keras file cannot be read back whole (every member's checksum), or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            members = set(archive.namelist())
    except (OSError, zipfile.BadZipFile) as err:
        return f"{type(err).__name__}: {err}"
    if broken:
        return f"{broken} is damaged"
    missing = {"config.json", "model.weights.h5"} - members
    return f"{', '.join(sorted(missing))} missing" if missing else None


def _unreadable_resume_point(folder: Path) -> str | None:
    """Why a resume point cannot be read back whole (every array of its state), or None."""
    import h5py

    try:
        json.loads((folder / RESUME_PROGRESS).read_text())
        with h5py.File(folder / RESUME_STATE, "r") as state:
            state.visititems(lambda _, item: item[()] if isinstance(item, h5py.Dataset)
                             else None)
    except (OSError, ValueError, KeyError) as err:
        return f"{type(err).__name__}: {err}"
    return None


def latest_best(directories: Sequence[CheckpointDir]) -> Path | None:
    """The best model of the last of `directories` that has one."""
    return next((d.best_model for d in reversed(directories) if d.best_model.exists()), None)
