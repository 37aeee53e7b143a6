""".npz sources, real files written with numpy.savez: what they may hold is read as meant, and
anything else is a DataError naming the file, the key and what was found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from teacher_student.data.decoding import Decoding
from teacher_student.data.labeled import read_source
from teacher_student.errors import DataError

RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (6, 8, 8), dtype=np.uint8)
LABELS = np.array([0, 1, 2, 0, 1, 2])


def write_npz(folder: Path, name: str = "set.npz", **arrays) -> Path:
    path = folder / name
    np.savez(path, **arrays)
    return path


def read(path: Path, channels: int = 1):
    return read_source(str(path), Decoding(8, channels, embedded_dir=path.parent / "folders"))


def pixels_in_order(table) -> np.ndarray:
    """The decoded images in the .npz's order (files are named by their index)."""
    order = np.argsort([int(Path(p).stem) for p in table.paths])
    return table.pixels[list(table.rows)][order]


@pytest.mark.parametrize("images", [GRAY, GRAY[..., None]], ids=["NHW", "NHW1"])
def test_grayscale_images_with_or_without_a_channel_axis(tmp_path: Path, images):
    table = read(write_npz(tmp_path, images=images, labels=LABELS))
    assert table.class_names == ("0", "1", "2")
    assert np.array_equal(pixels_in_order(table)[..., 0], GRAY)


def test_colour_images_and_keras_shaped_labels(tmp_path: Path):
    colour = RNG.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    table = read(write_npz(tmp_path, images=colour, labels=LABELS[:, None]), channels=3)
    assert np.array_equal(pixels_in_order(table), colour)


def test_floats_in_0_1_are_scaled_and_said(tmp_path: Path, capsys):
    path = write_npz(tmp_path, images=GRAY / 255.0, labels=LABELS)
    table = read(path)
    assert np.array_equal(pixels_in_order(table)[..., 0], GRAY)
    assert f"{path}: images are floats in [0, 1]; scaled to 0..255" in capsys.readouterr().out


def test_floats_in_0_255_are_taken_as_they_are(tmp_path: Path, capsys):
    table = read(write_npz(tmp_path, images=GRAY.astype(np.float32), labels=LABELS))
    assert np.array_equal(pixels_in_order(table)[..., 0], GRAY)
    assert "scaled" not in capsys.readouterr().out


def test_string_labels_name_the_classes(tmp_path: Path):
    names = np.array(["cat", "dog", "fox"])[LABELS]
    table = read(write_npz(tmp_path, images=GRAY, labels=names))
    assert table.class_names == ("cat", "dog", "fox")
    order = np.argsort([int(Path(p).stem) for p in table.paths])
    assert [table.class_names[table.labels[i]] for i in order] == names.tolist()


def test_the_npz_is_checked_on_every_read(tmp_path: Path, capsys):
    path = write_npz(tmp_path, images=GRAY / 255.0, labels=LABELS)
    first = read(path)
    second = read(path)  # the folder is written once, the arrays checked again
    assert first.paths == second.paths
    assert capsys.readouterr().out.count("scaled to 0..255") == 2


@pytest.mark.parametrize("arrays, message", [
    (dict(images=RNG.integers(0, 256, (40, 10), dtype=np.uint8), labels=np.arange(40) % 2),
     r"'images' has shape \[40, 10\], dtype uint8; need \[N, H, W\] or \[N, H, W, 1 or 3\]"),
    (dict(images=RNG.integers(0, 256, (40, 8, 8), dtype=np.uint8), labels=np.arange(10)),
     r"'labels' has shape \[10\], dtype int64 for 40 images; need one label per image"),
    (dict(images=GRAY[:1], labels=LABELS[:2]),
     r"'labels' has shape \[2\], dtype int64 for 1 image; need one label per image"),
    (dict(images=RNG.integers(0, 256, (6, 8, 8, 5), dtype=np.uint8), labels=LABELS),
     r"'images' has shape \[6, 8, 8, 5\], dtype uint8; need"),
    (dict(images=np.zeros((0, 8, 8), dtype=np.uint8), labels=LABELS[:0]),
     r"'images' has shape \[0, 8, 8\].*N, H and W at least 1"),
    (dict(images=GRAY, labels=np.eye(3)[LABELS]),
     r"'labels' has shape \[6, 3\], dtype float64 for 6 images; need one label per image"),
    (dict(images=GRAY * 2.0 - 1.0, labels=LABELS),
     r"'images' has shape \[6, 8, 8\], dtype float64, with values from -1 to \d+; floats "
     r"must lie in \[0, 1\] or \[0, 255\]"),
    (dict(images=np.where(GRAY > 100, np.nan, GRAY / 255.0), labels=LABELS),
     r"'images' has shape \[6, 8, 8\], dtype float64, with NaN or infinite values"),
    (dict(images=GRAY.astype(np.int64), labels=LABELS),
     r"'images' has shape \[6, 8, 8\], dtype int64; need uint8, or floats"),
    (dict(images=GRAY, labels=LABELS.astype(np.float32)),
     r"'labels' has shape \[6\], dtype float32; need integer labels, or strings"),
    (dict(images=GRAY, labels=np.array(["a", "b", ".c"])[LABELS]),
     r"'labels' holds '.c', which cannot name a class \(hidden folder\)"),
    (dict(images=GRAY, labels=np.array(["a", "b", "x/y"])[LABELS]),
     r"'labels' holds 'x/y', which cannot name a class"),
    (dict(images=GRAY, labels=np.array(["a", "b", " "])[LABELS]),
     r"'labels' holds ' ', which cannot name a class \(it is empty\)"),
    (dict(images=GRAY, labels=np.array(["a", "b", "__MACOSX"])[LABELS]),
     r"'labels' holds '__MACOSX', which cannot name a class \(system folder\)"),
    (dict(images=GRAY, labels=np.array(["a", "b", None], dtype=object)[LABELS]),
     r"'labels' cannot be read \(Object arrays cannot be loaded"),
    (dict(pictures=GRAY, labels=LABELS), r"needs arrays 'images' and 'labels', has "
                                          r"\['labels', 'pictures'\]"),
], ids=["2d-images", "40-images-10-labels", "1-image-2-labels", "5-channels", "no-images",
        "one-hot-labels", "floats-below-0", "nan", "int64-images", "float-labels",
        "hidden-label", "slash-label", "blank-label", "macosx-label", "object-labels",
        "missing-key"])
def test_arrays_that_would_train_on_something_else_name_file_key_and_shape(tmp_path: Path,
                                                                         arrays, message):
    path = write_npz(tmp_path, "bad.npz", **arrays)
    with pytest.raises(DataError, match=rf"^{tmp_path}/bad\.npz: {message}"):
        read(path)
    assert not (tmp_path / "folders").exists() or not any((tmp_path / "folders").iterdir())


@pytest.mark.parametrize("content", [b"images,labels\n1,2\n", b""], ids=["text", "empty"])
def test_a_file_that_is_not_an_npz_is_named(tmp_path: Path, content: bytes):
    (tmp_path / "fake.npz").write_bytes(content)
    with pytest.raises(DataError, match=rf"^{tmp_path}/fake\.npz: not a \.npz file"):
        read(tmp_path / "fake.npz")


def test_a_single_npy_array_named_npz_is_named(tmp_path: Path):
    np.save(tmp_path / "one.npy", GRAY)
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    with pytest.raises(DataError, match=r"one\.npz: not a \.npz file"):
        read(tmp_path / "one.npz")


def test_floats_above_255_are_refused(tmp_path: Path):
    path = write_npz(tmp_path, images=GRAY * 2.0, labels=LABELS)
    with pytest.raises(DataError, match=r"'images' .* with values from 0 to 510"):
        read(path)
