"""A job's inputs: the source read and decoded once, split (drawn once per run, then kept),
and served as training, validation and test batches."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from teacher_student.config import DataConfig
from teacher_student.data.batches import UNLABELED, Batches, StackedPixels
from teacher_student.data.decoding import Decoding
from teacher_student.data.labeled import ImageTable, read_source
from teacher_student.data.splits import (
    Split,
    class_weights,
    folds_of,
    keep_recorded_split,
    split_table,
)
from teacher_student.data.unlabeled import UnlabeledImages, read_unlabeled
from teacher_student.errors import DataError
from teacher_student.run.directory import RunDir

SHOWN = 5  # files named in a message before "and N more"


@dataclass(frozen=True)
class Inputs:
    train: Batches  # shuffled, seeded per epoch, class-weighted when the config says so
    val: Batches
    test: Batches
    class_names: tuple[str, ...]
    splits: dict[str, Split]
    skipped: tuple[tuple[str, str], ...]  # (path, reason) of every file found but not used
    drawn: bool  # the split was drawn now (the run's first job): it is recorded once it starts
    # The training images and the unlabeled ones (distill.unlabeled), shuffled together: what
    # the distillation trains on when the config lists unlabeled images
    train_with_unlabeled: Batches | None = None
    unlabeled: UnlabeledImages | None = None
    # data.folds K: each fold's (training, validation) images, and their batches
    folds: tuple[tuple[Split, Split], ...] = ()
    fold_batches: tuple[tuple[Batches, Batches], ...] = ()

    def digest(self) -> str:
        """Which images the job takes, in which split and class (and which unlabeled ones)."""
        digest = hashlib.sha256()
        for name, split in self.splits.items():
            for path, label in zip(split.paths, split.labels):
                digest.update(f"{name}\t{path}\t{label}\n".encode("utf-8", "surrogateescape"))
        for path in self.unlabeled.paths if self.unlabeled is not None else ():
            digest.update(f"unlabeled\t{path}\n".encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def record(self, run_dir: RunDir) -> None:
        """`split.csv` and `skipped_files.csv`, when the split was drawn now (a later job of
        the run keeps them as they are); `unlabeled.csv` and `skipped_unlabeled.csv` of the
        job's unlabeled images."""
        if self.drawn:
            run_dir.write_skipped(self.skipped)
            run_dir.write_split(self.splits, self.class_names)
        if self.unlabeled is not None:
            run_dir.write_unlabeled(self.unlabeled.paths, self.unlabeled.skipped)


def prepare_inputs(data: DataConfig, run_dir: RunDir, global_batch: int,
                   replicas: int = 1, to_device: bool = False,
                   unlabeled_source: str | None = None) -> Inputs:
    """`unlabeled_source`: the images without labels to read too (distill.unlabeled)."""
    recorded = run_dir.recorded_split()
    decoding = Decoding(data.image_size, data.channels, data.cache, run_dir.cache)
    table = read_source(data.source, decoding)
    if table.skipped:
        one = len(table.skipped) == 1
        print(f"skipped {len(table.skipped)} unusable file{'' if one else 's'} or ignored "
              f"folder{'' if one else 's'}"
              + ("" if recorded is not None else f" (listed in {run_dir.skipped_file})") + ":")
        for path, reason in table.skipped[:10]:
            print(f"  {path}: {reason}")
    if recorded is None:
        splits = split_table(table, data.val_fraction, data.test_fraction, data.seed)
        class_names = table.class_names
    else:
        splits, class_names = _kept_split(table, recorded, run_dir)
    print(f"data {data.source}: {len(class_names)} classes, "
          + ", ".join(f"{name} {len(split.paths)}" for name, split in splits.items()))
    if replicas > 1:  # replicas need equal shares: a ragged batch fails under tf.distribute
        for name, split in splits.items():
            if len(split.paths) < global_batch:
                raise DataError(
                    f"the {name} split has {len(split.paths)} "
                    f"image{'' if len(split.paths) == 1 else 's'}, fewer than the global "
                    f"batch {global_batch} of {replicas} replicas; lower data.batch_size or "
                    "give the split a larger fraction")

    def batches(split: Split, shuffle: bool = False, **options) -> Batches:
        # Replicas take equal shares of every batch: a ragged training batch is dropped, a
        # ragged evaluation batch filled up with images that count for nothing.
        return Batches(table.pixels, split.rows, split.labels, global_batch, shuffle=shuffle,
                       drop_remainder=True if replicas > 1 and shuffle else None,
                       pad_remainder=replicas > 1 and not shuffle, to_device=to_device,
                       **options)

    def training(split: Split) -> Batches:
        weights = class_weights(split.labels, len(class_names)) if data.class_weights else None
        return batches(split, shuffle=True, seed=data.seed, class_weights=weights)

    folds = (tuple(folds_of(splits["train"], splits["val"], data.folds, data.seed, class_names))
             if data.folds > 1 else ())
    inputs = Inputs(training(splits["train"]), batches(splits["val"]), batches(splits["test"]),
                    class_names, splits, table.skipped, drawn=recorded is None, folds=folds,
                    fold_batches=tuple((training(train), batches(val)) for train, val in folds))
    if unlabeled_source is None:
        return inputs
    unlabeled = read_unlabeled(unlabeled_source, decoding, table)
    _print_unlabeled(unlabeled)
    labeled = splits["train"]
    return dataclasses.replace(inputs, unlabeled=unlabeled, train_with_unlabeled=Batches(
        StackedPixels(table.pixels, unlabeled.pixels),
        [*labeled.rows, *(len(table.pixels) + row for row in unlabeled.rows)],
        [*labeled.labels, *[UNLABELED] * len(unlabeled)], global_batch, shuffle=True,
        seed=data.seed, class_weights=inputs.train.class_weights, to_device=to_device,
        drop_remainder=True if replicas > 1 else None))


def _print_unlabeled(unlabeled: UnlabeledImages) -> None:
    print(f"unlabeled images {unlabeled.source}: {len(unlabeled)} used"
          + (f", {len(unlabeled.skipped)} skipped (listed in skipped_unlabeled.csv):"
             if unlabeled.skipped else ""))
    for path, reason in unlabeled.skipped[:SHOWN]:
        print(f"  {path}: {reason}")
    if len(unlabeled.skipped) > SHOWN:
        print(f"  and {len(unlabeled.skipped) - SHOWN} more")


def _kept_split(table: ImageTable, recorded, run_dir: RunDir):
    kept = keep_recorded_split(table, recorded, str(run_dir.split_file))
    print(f"split: the run's own, from {run_dir.split_file}")
    for files, what in ((kept.added, "added to the source since the split was drawn: left "
                                     "out of every split"),
                        (kept.missing, "listed in the split but missing or unreadable now"),
                        (kept.relabelled, "in another class than when the split was drawn: "
                                          "left out")):
        if files:
            print(f"  {len(files)} file{'' if len(files) == 1 else 's'} {what}: "
                  f"{_some(files)}")
    return kept.splits, kept.class_names


def _some(paths) -> str:
    shown = ", ".join(str(path) for path in paths[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")
