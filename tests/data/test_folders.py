"""Image folders as people hand them over: macOS zips, hidden and system folders, classes whose
every file is broken, file names that are not UTF-8. Real files written with PIL."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from helpers import make_class_folder, write_png

from teacher_student import atomic
from teacher_student.data.decoding import Decoding
from teacher_student.data.labeled import read_source
from teacher_student.data.splits import split_table
from teacher_student.errors import DataError
from teacher_student.run.directory import RunDir


def read(source: Path):
    return read_source(str(source), Decoding(8, 1))


def write_bytes_named(folder: Path, name: bytes, content: bytes) -> str:
    """A file whose name is the raw bytes `name`; its path as Python gives it back (str, with
    surrogates for bytes that are not UTF-8)."""
    path = os.path.join(os.fsencode(folder), name)
    with open(path, "wb") as file:
        file.write(content)
    return os.fsdecode(path)


def kaggle_split(root: Path) -> Path:
    for split in ("train", "val", "test"):
        make_class_folder(root / split, {"a": 3, "b": 3})
    return root


# ---------------------------------------------------------------------------------------------
# Folders that hold no data.

def test_split_layout_is_kept_beside_macos_hidden_and_system_folders(tmp_path: Path, capsys):
    root = kaggle_split(tmp_path / "kaggle")
    write_png(root / "__MACOSX" / "train" / "a" / "._0.png", 1)  # what a macOS zip carries
    (root / ".git").mkdir()
    (root / "$RECYCLE.BIN").mkdir()
    (root / "System Volume Information").mkdir()
    (root / "train" / "__MACOSX").mkdir()
    table = read(root)
    assert table.splits is not None and table.class_names == ("a", "b")
    assert sorted(table.splits) == ["test"] * 6 + ["train"] * 6 + ["val"] * 6
    reasons = dict(table.skipped)
    assert reasons[str(root / "__MACOSX")] == "system folder"
    assert reasons[str(root / ".git")] == "hidden folder"
    assert reasons[str(root / "$RECYCLE.BIN")] == "system folder"
    assert reasons[str(root / "System Volume Information")] == "system folder"
    assert reasons[str(root / "train" / "__MACOSX")] == "system folder"
    out = capsys.readouterr().out
    assert f"{root}: ignored folders that hold no classes: " in out
    for name in (".git", "$RECYCLE.BIN", "System Volume Information", "__MACOSX (system folder)",
                 "train/__MACOSX"):
        assert name in out


def test_a_stray_folder_beside_the_splits_is_ignored_and_said(tmp_path: Path, capsys):
    root = kaggle_split(tmp_path / "kaggle")
    make_class_folder(root / "extra", {"a": 2})
    table = read(root)
    assert table.splits is not None and table.class_names == ("a", "b")
    assert (str(root / "extra"), "not a split folder") in table.skipped
    assert "extra (not a split folder)" in capsys.readouterr().out
    assert len(split_table(table, 0.2, 0.2, seed=0)["train"].paths) == 6


def test_a_class_named_train_beside_other_classes_is_a_class(tmp_path: Path):
    table = read(make_class_folder(tmp_path / "vehicles", {"train": 3, "bus": 3}))
    assert table.splits is None and table.class_names == ("bus", "train")


def test_macosx_is_never_a_class(tmp_path: Path):
    root = make_class_folder(tmp_path / "images", {"cat": 3, "dog": 3})
    write_png(root / "__MACOSX" / "cat" / "._0.png", 1)
    table = read(root)
    assert table.class_names == ("cat", "dog") and table.splits is None
    assert (str(root / "__MACOSX"), "system folder") in table.skipped


def test_hidden_folders_and_files_inside_a_class_are_skipped(tmp_path: Path):
    root = make_class_folder(tmp_path / "images", {"cat": 3, "dog": 3})
    write_png(root / "cat" / ".ipynb_checkpoints" / "0-checkpoint.png", 1)
    write_png(root / "cat" / "nested" / ".cache" / "x.png", 2)
    write_png(root / "cat" / "nested" / "kept.png", 3)
    (root / "dog" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "dog" / "._0.png").write_bytes(b"\0\5\26\7 AppleDouble")
    table = read(root)
    assert sorted(Path(p).name for p in table.paths) == ["0.png"] * 2 + ["1.png"] * 2 + [
        "2.png"] * 2 + ["kept.png"]
    reasons = dict(table.skipped)
    assert reasons[str(root / "cat" / ".ipynb_checkpoints")] == "hidden folder"
    assert reasons[str(root / "cat" / "nested" / ".cache")] == "hidden folder"
    assert reasons[str(root / "dog" / ".DS_Store")] == "hidden file"
    assert reasons[str(root / "dog" / "._0.png")] == "hidden file"


# ---------------------------------------------------------------------------------------------
# A class left without a usable image.

def test_a_class_whose_every_file_is_unusable_is_named(tmp_path: Path):
    root = make_class_folder(tmp_path / "images", {"cat": 3, "dog": 3})
    (root / "broken").mkdir()
    (root / "broken" / "zero.png").write_bytes(b"")
    (root / "broken" / "text.jpg").write_text("not a picture")
    with pytest.raises(DataError, match=r"images: class 'broken' has no usable image: its 2 "
                                        r"files were all skipped \(first: .*text\.jpg: "
                                        r"cannot decode"):
        read(root)


def test_a_class_of_files_that_are_not_images_is_named(tmp_path: Path):
    root = make_class_folder(tmp_path / "images", {"cat": 3, "dog": 3})
    (root / "heic").mkdir()
    (root / "heic" / "0.heic").write_bytes(b"ftypheic")
    with pytest.raises(DataError, match=r"class 'heic' has no usable image.*0\.heic: not an "
                                        r"image extension"):
        read(root)


def test_a_csv_class_whose_files_are_all_missing_is_named(tmp_path: Path):
    write_png(tmp_path / "a1.png", 1)
    write_png(tmp_path / "a2.png", 2)
    write_png(tmp_path / "b1.png", 3)
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\na1.png,a\na2.png,a\nb1.png,b\ngone.png,c\n")
    with pytest.raises(DataError, match=r"class 'c' has no usable image.*file not found "
                                        r"\(labels\.csv row 5\)"):
        read(csv)


def test_an_empty_class_folder_is_still_left_out(tmp_path: Path):
    root = make_class_folder(tmp_path / "images", {"cat": 3, "dog": 3})
    (root / "empty" / ".ipynb_checkpoints").mkdir(parents=True)
    table = read(root)
    assert table.class_names == ("cat", "dog")
    assert (str(root / "empty"), "empty class folder") in table.skipped


# ---------------------------------------------------------------------------------------------
# File names that are not valid UTF-8.

def test_a_file_name_that_is_not_utf8_is_skipped_and_every_record_is_written(tmp_path: Path):
    root = make_class_folder(tmp_path / "images", {"cat": 4, "dog": 4})
    png = (root / "cat" / "0.png").read_bytes()
    write_bytes_named(root / "cat", b"bad\xff.png", png)
    os.mkdir(os.path.join(os.fsencode(root), b"cl\xe9ss"))
    write_bytes_named(root / os.fsdecode(b"cl\xe9ss"), b"0.png", png)
    table = read(root)
    assert table.class_names == ("cat", "dog") and len(table.paths) == 8
    assert (str(root / "cat" / "bad\\xff.png"), "file name is not valid UTF-8") in table.skipped
    assert (str(root / "cl\\xe9ss"), "folder name is not valid UTF-8") in table.skipped

    run = RunDir(tmp_path / "run")
    run.write_split(split_table(table, 0.25, 0.25, seed=0), table.class_names)
    run.write_skipped(table.skipped)
    skipped = pd.read_csv(run.skipped_file)
    assert str(root / "cat" / "bad\\xff.png") in set(skipped["path"])
    assert len(run.read_split()) == 8


def test_a_csv_with_text_that_cannot_be_encoded_is_still_written(tmp_path: Path):
    name = os.fsdecode(b"bad\xff.png")  # "bad\udcff.png"
    atomic.write_csv(pd.DataFrame({"path": [name], "reason": ["x"]}), tmp_path / "s.csv")
    assert pd.read_csv(tmp_path / "s.csv")["path"].tolist() == ["bad\\udcff.png"]
