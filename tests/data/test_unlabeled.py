"""Unlabeled images (distill.unlabeled): read from a folder of any layout, a CSV of paths or a
.npz of images; what cannot be used is skipped with its reason, and a source with nothing usable
is a config error naming the key."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_png

from teacher_student.data.batches import UNLABELED, Batches, StackedPixels
from teacher_student.data.decode import decode_image
from teacher_student.data.decoding import Decoding
from teacher_student.data.labeled import ImageTable
from teacher_student.data.unlabeled import read_unlabeled
from teacher_student.errors import ConfigError


@pytest.fixture
def decoding(tmp_path):
    return Decoding(image_size=16, channels=3, embedded_dir=tmp_path / "folders")


def labeled_table(paths, decoding: Decoding) -> ImageTable:
    """The run's labeled images, as its source gives them: files and their decoded pixels."""
    pixels = np.stack([decode_image(path, decoding.image_size, decoding.channels)
                       for path in paths])
    return ImageTable(tuple(map(str, paths)), tuple(i % 2 for i in range(len(paths))),
                      ("a", "b"), pixels, tuple(range(len(paths))))


def test_a_folder_of_any_layout_gives_every_usable_image(tmp_path, decoding):
    folder = tmp_path / "test_images"
    write_png(folder / "a.png", 1)
    write_png(folder / "deeper" / "b.jpg", 2)
    write_png(folder / "deeper" / "still" / "c.png", 3)
    write_png(folder / "labeled.png", 4)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"not a png")
    write_png(folder / ".hidden.png", 5)

    found = read_unlabeled(str(folder), decoding,
                           labeled_table([folder / "labeled.png"], decoding))

    assert len(found) == 3 and found.pixels.shape[1:] == (16, 16, 3)
    reasons = {path.rsplit("/", 1)[-1]: reason for path, reason in found.skipped}
    assert reasons.keys() == {"labeled.png", "notes.txt", "broken.png", ".hidden.png"}
    assert reasons["labeled.png"] == "one of the run's labeled images"
    assert reasons["notes.txt"] == "not an image extension"


def test_copies_of_labeled_images_are_left_out_wherever_they_come_from(tmp_path, decoding):
    """The same pixels under another name, in a CSV or in a .npz: each would leak a test
    image's answer into the student."""
    test_image = write_png(tmp_path / "data" / "test" / "cat" / "1.png", 1)
    labeled = labeled_table([write_png(tmp_path / "data" / "train" / "cat" / "0.png", 0),
                             test_image], decoding)
    folder = tmp_path / "unlabeled"
    (folder / "copy").mkdir(parents=True)
    (folder / "copy" / "renamed.png").write_bytes(test_image.read_bytes())
    write_png(folder / "new.png", 2)
    found = read_unlabeled(str(folder), decoding, labeled)
    assert [path.rsplit("/", 1)[-1] for path in found.paths] == ["new.png"]
    assert found.skipped == ((str(folder / "copy" / "renamed.png"),
                              f"the same image as the labeled {test_image}"),)

    listed = tmp_path / "unlabeled.csv"
    listed.write_text(f"path\n{folder / 'copy' / 'renamed.png'}\n{folder / 'new.png'}\n")
    assert len(read_unlabeled(str(listed), decoding, labeled)) == 1

    npz = tmp_path / "unlabeled.npz"
    np.savez(npz, images=np.stack([labeled.pixels[1], labeled.pixels[1][::-1]]))
    found = read_unlabeled(str(npz), decoding, labeled)
    assert len(found) == 1 and "the same image as the labeled" in found.skipped[0][1]


def test_a_csv_of_paths_and_a_npz_of_images(tmp_path, decoding):
    write_png(tmp_path / "x.png", 1)
    write_png(tmp_path / "y.png", 2)
    listed = tmp_path / "unlabeled.csv"
    listed.write_text("path,label\nx.png,\ny.png,cat\nmissing.png,\n")
    found = read_unlabeled(str(listed), decoding)
    assert len(found) == 2
    assert [reason for _, reason in found.skipped] == [
        "cannot read: file not found (unlabeled.csv row 4)"]

    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16), dtype=np.uint8)
    np.savez(tmp_path / "test.npz", images=images)  # no labels: none are needed
    found = read_unlabeled(str(tmp_path / "test.npz"), decoding)
    assert len(found) == 5
    assert np.array_equal(found.pixels[list(found.rows)][..., 0], images)


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "nowhere", "not an existing folder, a .csv or a .npz file"),
    (lambda root: (root / "e").mkdir() or root / "e", "no usable image; 0 entries skipped"),
    (lambda root: (root / "b.png").write_bytes(b"x") and root / "b.png",
     "not an existing folder, a .csv or a .npz file"),
    (lambda root: (root / "p.csv").write_text("file\na.png\n") and root / "p.csv",
     "needs a column 'path'"),
    (lambda root: np.savez(root / "n.npz", pixels=np.zeros((2, 4, 4))) or root / "n.npz",
     "needs arrays 'images', has ['pixels']"),
])
def test_a_source_with_nothing_usable_is_a_config_error_naming_the_key(tmp_path, decoding,
                                                                      make, message):
    source = make(tmp_path)
    with pytest.raises(ConfigError, match="^distill.unlabeled: ") as raised:
        read_unlabeled(str(source), decoding)
    assert message in str(raised.value)


def test_training_batches_mix_labeled_and_unlabeled_images_without_copying_either():
    labeled = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1) * np.ones((1, 2, 2, 3), np.uint8)
    unlabeled = labeled[:4] + 100
    stacked = StackedPixels(labeled, unlabeled)
    rows = [1, 3, 5, *(6 + r for r in range(4))]
    labels = [0, 1, 2, *[UNLABELED] * 4]
    batches = Batches(stacked, rows, labels, batch_size=7, shuffle=True, seed=3,
                      class_weights={0: 1.0, 1: 2.0, 2: 0.5}, ahead=0)
    images, got_labels, weights = batches[0]
    pairs = sorted(zip(images[:, 0, 0, 0].tolist(), got_labels.tolist(), weights.tolist()))
    assert pairs == [(1, 0, 1.0), (3, 1, 2.0), (5, 2, 0.5), (100, -1, 1.0), (101, -1, 1.0),
                     (102, -1, 1.0), (103, -1, 1.0)]
