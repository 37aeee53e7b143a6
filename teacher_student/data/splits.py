"""Splitting an `ImageTable` into train, val and test (stratified, seeded), keeping a folder's
own split where it has one; the split a run recorded, kept when the source has changed since;
the folds of its training and validation images (data.folds); and the class weights that
balance the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.utils.class_weight import compute_class_weight

from teacher_student.data.labeled import ImageTable
from teacher_student.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    rows: tuple[int, ...] = ()  # each image's row in the decoded array (ImageTable.pixels)


def split_table(
    table: ImageTable, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, Split]:
    """{"train", "val", "test"} -> Split; the folder's own split is kept where it has one."""
    whole = Split(table.paths, table.labels, table.rows)
    if table.splits is None:
        return _stratified_split(whole, table.class_names, val_fraction, test_fraction, seed)
    given = {name: _only(whole, table.splits, name) for name in SPLITS}
    missing = sorted(set(table.labels) - set(given["train"].labels))
    if missing:
        raise DataError(f"class {table.class_names[missing[0]]!r} has no images in train/")
    # Splits the folder lacks are carved out of its train split.
    val = val_fraction if not given["val"].paths else 0.0
    test = test_fraction if not given["test"].paths else 0.0
    carved = _stratified_split(given["train"], table.class_names, val, test, seed)
    return {**carved, **{name: given[name] for name in ("val", "test") if given[name].paths}}


def _only(whole: Split, splits: tuple[str, ...], name: str) -> Split:
    chosen = [i for i, s in enumerate(splits) if s == name]
    return Split(tuple(whole.paths[i] for i in chosen), tuple(whole.labels[i] for i in chosen),
                 tuple(whole.rows[i] for i in chosen))


def _stratified_split(
    whole: Split, class_names: tuple[str, ...], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, Split]:
    parts = 1 + (val_fraction > 0) + (test_fraction > 0)
    needed = max(parts, 2)  # scikit-learn cannot stratify a class with a single image
    counts = np.bincount(whole.labels, minlength=len(class_names))
    for label in sorted(set(whole.labels)):
        if parts > 1 and counts[label] < needed:
            raise DataError(
                f"class {class_names[label]!r} has {counts[label]} "
                f"image{'' if counts[label] == 1 else 's'}; "
                f"a stratified split into {parts} parts needs at least {needed}"
            )
    rest, test = _take(whole, test_fraction, seed)
    train, val = _take(rest, val_fraction / (1.0 - test_fraction), seed)
    return {"train": train, "val": val, "test": test}


def _take(whole: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """(kept, taken): about `fraction` of the images taken out, stratified by label."""
    if fraction <= 0:
        return whole, Split((), (), ())
    total, num_classes = len(whole.paths), len(set(whole.labels))
    # At least one slot per class (and one left over for each) so tiny datasets still split.
    size = min(max(round(fraction * total), num_classes), total - num_classes)
    try:
        kept_p, taken_p, kept_y, taken_y, kept_r, taken_r = train_test_split(
            whole.paths, whole.labels, whole.rows, test_size=size, random_state=seed,
            stratify=whole.labels)
    except ValueError as err:
        raise DataError(f"cannot split {total} images of {num_classes} classes: {err}") from err
    return (Split(tuple(kept_p), tuple(kept_y), tuple(kept_r)),
            Split(tuple(taken_p), tuple(taken_y), tuple(taken_r)))


@dataclass(frozen=True)
class KeptSplit:
    """The run's recorded split, applied to the source as it is now."""
    splits: dict[str, Split]
    class_names: tuple[str, ...]  # the run's, in label order
    added: tuple[str, ...]  # files in the source that the record does not list: left out
    missing: tuple[str, ...]  # files the record lists that the source no longer has
    relabelled: tuple[str, ...]  # files whose class changed since: left out


def keep_recorded_split(table: ImageTable, recorded: pd.DataFrame, where: str) -> KeptSplit:
    """Each file keeps the split `recorded` (a run's `split.csv`, named `where`) gave it; files
    added to the source since are in no split, so a test image can never have trained a model.
    The classes are the run's: another set of classes is an error naming them, and so is a
    class left with no image in a split that had some."""
    by_label = recorded.drop_duplicates("label").sort_values("label")
    class_names = tuple(str(name) for name in by_label["class_name"])
    _same_classes(class_names, table.class_names, where)
    found = {path: (table.class_names[label], row)
             for path, label, row in zip(table.paths, table.labels, table.rows)}
    listed = set(recorded["path"])
    label_of = {name: index for index, name in enumerate(class_names)}
    splits, relabelled = {}, []
    for name in SPLITS:
        part = recorded[recorded["split"] == name]
        kept = []
        for path, class_name in zip(part["path"], part["class_name"].astype(str)):
            if path in found and found[path][0] != class_name:
                relabelled.append(path)
            elif path in found:
                kept.append((path, label_of[class_name], found[path][1]))
        _still_evaluable(name, part, kept, where)
        columns = [tuple(column) for column in zip(*kept)] if kept else [(), (), ()]
        splits[name] = Split(*columns)
    return KeptSplit(splits, class_names,
                     added=tuple(path for path in table.paths if path not in listed),
                     missing=tuple(path for path in recorded["path"] if path not in found),
                     relabelled=tuple(relabelled))


def _same_classes(run: tuple[str, ...], now: tuple[str, ...], where: str) -> None:
    if set(run) == set(now):
        return
    added, gone = sorted(set(now) - set(run)), sorted(set(run) - set(now))
    change = "; ".join(part for part in (f"new: {', '.join(added)}" if added else "",
                                         f"gone: {', '.join(gone)}" if gone else "") if part)
    raise DataError(f"the source's classes differ from the run's ({len(run)} classes in "
                    f"{where}; {change}): the run's models know only its own classes. Train "
                    "on this data in a new --run-dir")


def _still_evaluable(split: str, recorded: pd.DataFrame, kept: list, where: str) -> None:
    """Every class that had images in `split` keeps at least one."""
    left = {label for _, label, _ in kept}
    for label, class_name in sorted(set(zip(recorded["label"], recorded["class_name"]))):
        if label not in left:
            raise DataError(
                f"class {class_name!r} has none of its {split} images of {where} left in the "
                "source (moved, deleted or unreadable since): that split can no longer measure "
                "it. Restore the files, or train on this data in a new --run-dir")


def folds_of(train: Split, val: Split, folds: int, seed: int,
             class_names: tuple[str, ...]) -> list[tuple[Split, Split]]:
    """K (training, validation) pairs over the training and validation images together:
    stratified folds, seeded, each fold validating once (data.folds)."""
    whole = Split(train.paths + val.paths, train.labels + val.labels, train.rows + val.rows)
    counts = np.bincount(whole.labels, minlength=len(class_names))
    for label in sorted(set(whole.labels)):
        if counts[label] < folds:
            raise DataError(f"data.folds: class {class_names[label]!r} has {counts[label]} "
                            f"training and validation images; {folds} folds need {folds}")
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    pairs = []
    for kept, held in splitter.split(np.zeros(len(whole.labels)), whole.labels):
        pairs.append((_pick(whole, kept), _pick(whole, held)))
    return pairs


def _pick(whole: Split, indices) -> Split:
    return Split(*(tuple(column[i] for i in indices)
                   for column in (whole.paths, whole.labels, whole.rows)))


def class_weights(labels: tuple[int, ...], num_classes: int) -> dict[int, float]:
    """Inverse-frequency ("balanced") loss weights; a class without images gets 1.0."""
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=np.asarray(labels))
    by_class = dict(zip(present.tolist(), weights.tolist()))
    return {c: float(by_class.get(c, 1.0)) for c in range(num_classes)}
