"""The run directory: every path of a run, and every write into it, atomic.

    config.yaml          the resolved config: enough to rebuild every model of the run
    split.csv            every image with its label and split (drawn once, kept by every job)
    split.csv.sha256     its digest: a split cut short is found, not used
    skipped_files.csv    every file that could not be used, and why
    unlabeled.csv        the unlabeled images the distillation learnt from (distill.unlabeled)
    skipped_unlabeled.csv    those that could not be used, and why
    teacher/phase1_<name>/ ...   one `CheckpointDir` per teacher phase (checkpoints.py); with
                         data.folds K: teacher/fold1/phase1_<name>/ ... for each fold
    student_distilled/, student_scratch/    the distillation's and the baseline's
    teacher.keras, student_distilled.keras, student_scratch.keras    the final models; with
                         folds, teacher_fold1.keras ... and teacher.keras their ensemble
    reports/             curves, confusion matrices, per-class reports, comparison table,
                         reliability, accuracy against latency, latency.json
    export/              deployable copies (the export command)
    variants/<name>/     a distillation variant of this run's teacher: a run directory of its own
    predictions/         one CSV per input of the predict command
    cache/               decoded images, when they are kept on disk (data/images.py)
    compile_cache/       XLA's compiled steps on JAX, reused by a rerun (compile_cache.py)
    status.json          where the run is: step, epoch, share of the plan, time left
    preflight.json       what the preflight measured, and the fallback of any step
    .lock                held by the process training here (lock.py)
    workers/worker-N/    what a non-chief worker of a multi-host run writes

Every file is written under a temporary name and renamed into place, and a resume folder
appears whole or not at all, so a kill at any moment leaves a consistent run. What a kill cannot
explain (a disk that filled up, a copy between sessions cut short) is found by `recover`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from teacher_student import atomic
from teacher_student.data.splits import SPLITS
from teacher_student.errors import RunDirError
from teacher_student.run.checkpoints import (  # noqa: F401 - what callers import from here
    RESUME_PROGRESS,
    RESUME_STATE,
    CheckpointDir,
    inside,
    latest_best,
    unreadable_model,
)

# The run's models: each is saved as `<name>.keras`, and a student's checkpoint folder has its
# name. Every other module takes the names from here.
TEACHER, STUDENT_SCRATCH, STUDENT_DISTILLED = "teacher", "student_scratch", "student_distilled"
MODEL_NAMES = (TEACHER, STUDENT_SCRATCH, STUDENT_DISTILLED)
FOLD_TEACHER = re.compile(r"teacher_fold[1-9][0-9]*")  # each fold's teacher (data.folds)
# Each self-training round's network (teacher.self_training)
ROUND_TEACHER = re.compile(r"teacher_round[1-9][0-9]*")
# The model that stands for the run where one is asked for (export, predict): the first it has.
DEFAULT_MODELS = (STUDENT_DISTILLED, STUDENT_SCRATCH)
SPLIT_COLUMNS = ["path", "label", "class_name", "split"]
# What a run directory seeded from another takes from it (`seed_from`).
SEEDED = ("config.yaml", "split.csv", "split.csv.sha256", "skipped_files.csv",
          f"{TEACHER}.keras", "self_training.json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class RunDir:
    path: Path
    config_file = inside("config.yaml")
    split_file = inside("split.csv")
    split_digest_file = inside("split.csv.sha256")
    skipped_file = inside("skipped_files.csv")
    unlabeled_file = inside("unlabeled.csv")
    skipped_unlabeled_file = inside("skipped_unlabeled.csv")
    reports = inside("reports")
    export_dir = inside("export")
    cache = inside("cache")  # decoded images, when they are kept on disk
    compile_cache = inside("compile_cache")  # compiled steps on JAX (compile_cache.py)
    status_file = inside("status.json")  # where the run is: step, epoch, time left
    preflight_file = inside("preflight.json")  # what the preflight measured and chose
    # The teacher and each self-training round's network, their validation accuracy, and which
    # teaches the student (teacher.self_training)
    self_training_file = inside("self_training.json")

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def model_file(self, name: str) -> Path:
        """One of `MODEL_NAMES`, or a fold's teacher (`fold_teacher`), as a final `.keras`
        file."""
        if name not in MODEL_NAMES and not (FOLD_TEACHER.fullmatch(name)
                                            or ROUND_TEACHER.fullmatch(name)):
            raise ValueError(f"no model {name!r} in a run (known: {', '.join(MODEL_NAMES)}, "
                             "teacher_fold1..., teacher_round1...)")
        return self.path / f"{name}.keras"

    def fold_teachers(self) -> list[str]:
        """The names of the fold teachers the run has saved, in fold order."""
        found = [path.stem for path in self.path.glob("teacher_fold*.keras")
                 if FOLD_TEACHER.fullmatch(path.stem)]
        return sorted(found, key=lambda name: int(name.removeprefix("teacher_fold")))

    def round_teachers(self) -> list[str]:
        """The names of the self-training rounds' networks the run has saved, in order."""
        found = [path.stem for path in self.path.glob("teacher_round*.keras")
                 if ROUND_TEACHER.fullmatch(path.stem)]
        return sorted(found, key=lambda name: int(name.removeprefix("teacher_round")))

    def teacher_round(self, round_: int) -> CheckpointDir:
        """A self-training round's folder."""
        return CheckpointDir(self.path / TEACHER / f"round{round_}")

    def teacher_phase(self, index: int, name: str, fold: int = 0) -> CheckpointDir:
        """A teacher phase's folder; of fold `fold`'s teacher when there are folds."""
        folder = self.path / TEACHER / (f"fold{fold}" if fold else "")
        return CheckpointDir(folder / f"phase{index}_{name}")

    @property
    def distillation(self) -> CheckpointDir:
        return CheckpointDir(self.path / STUDENT_DISTILLED)

    @property
    def baseline(self) -> CheckpointDir:
        return CheckpointDir(self.path / STUDENT_SCRATCH)

    def variant(self, name: str) -> RunDir:
        """Where a distillation variant of this run's teacher lives (`distill --variant`): a
        run directory of its own inside this one."""
        return RunDir(self.path / "variants" / name)

    def variants(self) -> list[RunDir]:
        folder = self.path / "variants"
        return [RunDir(path) for path in sorted(folder.iterdir())] if folder.is_dir() else []

    def seed_from(self, teacher_run: RunDir) -> RunDir:
        """This directory holding `teacher_run`'s config, split, teacher (and each fold's,
        with data.folds; each round's, with teacher.self_training) and decoded images (the
        cache linked), unless it has its own: distilling here neither trains the teachers nor
        decodes the images again."""
        self.path.mkdir(parents=True, exist_ok=True)
        made = [f"{name}.keras" for name in [*teacher_run.fold_teachers(),
                                             *teacher_run.round_teachers()]]
        for name in [*SEEDED, *made]:
            if (teacher_run.path / name).exists() and not (self.path / name).exists():
                shutil.copy2(teacher_run.path / name, self.path / name)
        if teacher_run.cache.exists() and not self.cache.exists():
            self.cache.symlink_to(teacher_run.cache.resolve(), target_is_directory=True)
        return self

    def for_worker(self, index: int) -> RunDir:
        """Where a non-chief worker keeps its own files, apart from the chief's."""
        return RunDir(self.path / "workers" / f"worker-{index}")

    def check_writable(self, needed_mb: int = 200) -> None:
        """Fails before training, not after hours, when the directory cannot take checkpoints."""
        probe = self.path / ".write-test"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic.write_text(probe, "ok")
            probe.unlink()
        except OSError as err:
            raise RunDirError(f"run directory {self.path} is not writable: {err}") from err
        free_mb = shutil.disk_usage(self.path).free // 2**20
        if free_mb < needed_mb:
            raise RunDirError(f"run directory {self.path} has {free_mb} MB free; checkpoints "
                              f"need at least {needed_mb} MB")

    def write_config(self, text: str) -> None:
        atomic.write_text(self.config_file, text)

    def save_model(self, model, name: str) -> Path:
        return atomic.save_model(model, self.model_file(name))

    def require_model(self, name: str, hint: str) -> Path:
        path = self.model_file(name)
        if not path.exists():
            raise RunDirError(f"{path} does not exist: {hint}")
        return path

    def write_split(self, splits: Mapping, class_names: Sequence[str]) -> None:
        """`split.csv`: `path,label,class_name,split` of every image, to reproduce and audit
        the run. `splits` maps each split name to an object with `paths` and `labels`."""
        rows = [(p, y, class_names[y], name) for name in SPLITS
                for p, y in zip(splits[name].paths, splits[name].labels)]
        atomic.write_csv(pd.DataFrame(rows, columns=SPLIT_COLUMNS), self.split_file)
        # Its digest, in sha256sum's format: a split cut short at a line still parses.
        atomic.write_text(self.split_digest_file, f"{_sha256(self.split_file)}  split.csv\n")

    def read_split(self) -> pd.DataFrame:
        if not self.split_file.exists():
            raise RunDirError(f"{self.split_file} does not exist: train a model in "
                              f"{self.path} first")
        if self.split_digest_file.exists() and \
                self.split_digest_file.read_text().split()[:1] != [_sha256(self.split_file)]:
            raise RunDirError(f"{self.split_file} is damaged (it differs from the digest in "
                              f"{self.split_digest_file.name} written with it): restore it "
                              "from a copy of the run, or start a new --run-dir")
        try:
            frame = pd.read_csv(self.split_file, dtype={"path": str, "class_name": str,
                                                        "split": str}, keep_default_na=False)
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise RunDirError(f"{self.split_file} cannot be read ({err}): it records which "
                              "images are for testing; restore it from a copy of the run, "
                              "or start a new --run-dir") from err
        if list(frame.columns) != SPLIT_COLUMNS or frame.empty or \
                not frame["split"].isin(SPLITS).all() or frame["label"].dtype.kind != "i":
            raise RunDirError(f"{self.split_file} is damaged (expected the columns "
                              f"{', '.join(SPLIT_COLUMNS)} and a row per image): restore it "
                              "from a copy of the run, or start a new --run-dir")
        return frame

    def recorded_split(self) -> pd.DataFrame | None:
        """The run's split, kept for every later job; None before the run has recorded one
        (its config and split are recorded together, when its first job starts training). A
        run that has trained without a readable split is an error: its test images are no
        longer known."""
        if self.config_file.exists() and self.split_file.exists():
            return self.read_split()
        if self.has_trained() and not self.split_file.exists():
            raise RunDirError(f"{self.split_file} is missing, and {self.path} has trained "
                              "models: which images are for testing is no longer known. "
                              "Restore it from a copy of the run, or start a new --run-dir")
        return None

    def has_trained(self) -> bool:
        """Whether any model or checkpoint of the run exists."""
        return any(self.model_file(name).exists() or (self.path / name).exists()
                   for name in MODEL_NAMES)

    def class_names(self) -> list[str]:
        """Class names in label order, from `split.csv`."""
        by_label = self.read_split().drop_duplicates("label").sort_values("label")
        return [str(name) for name in by_label["class_name"]]

    def write_skipped(self, skipped: Sequence[tuple[str, str]], unlabeled: bool = False) -> None:
        """`skipped_files.csv` (`skipped_unlabeled.csv` of the unlabeled images):
        `path,reason` of every file that was found but not used."""
        atomic.write_csv(pd.DataFrame(list(skipped), columns=["path", "reason"]),
                         self.skipped_unlabeled_file if unlabeled else self.skipped_file)

    def write_unlabeled(self, used: Sequence[str], skipped: Sequence[tuple[str, str]]) -> None:
        """`unlabeled.csv` (`path`) and `skipped_unlabeled.csv`: the unlabeled images of the
        latest distillation job."""
        atomic.write_csv(pd.DataFrame({"path": list(used)}), self.unlabeled_file)
        self.write_skipped(skipped, unlabeled=True)

    def unlabeled_count(self) -> int | None:
        """How many unlabeled images the distillation learnt from; None: it had none."""
        if not self.unlabeled_file.exists():
            return None
        return len(pd.read_csv(self.unlabeled_file))

    def write_preflight(self, record: Mapping) -> None:
        atomic.write_json(self.preflight_file, dict(record))
