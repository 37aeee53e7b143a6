"""The images `predict` is shown: a folder, a CSV of paths or one file, listed by the same rules
as the training data (hidden files, `__MACOSX`, macOS's `._x.png` left out and said), and
decoded by the same routine. Real files; the model is a plain function of the pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import write_png

from teacher_student.errors import UserError
from teacher_student.outputs.predictions import Classifier, Prediction, classify, images_in


def brightness(images: np.ndarray) -> np.ndarray:
    """A model of two classes: how bright the image is."""
    bright = images.reshape(len(images), -1).mean(axis=1) / 255.0
    return np.stack([1.0 - bright, bright], axis=1)


CLASSIFIER = Classifier(Path("brightness"), brightness, ["dark", "bright"], 8, 3, "brightness")


def answers(source: Path) -> tuple[list[str], dict[str, str]]:
    """(the paths classified, in order; {path: reason} of those left out)."""
    predicted, skipped = [], {}
    for result in classify(CLASSIFIER, images_in(source)):
        if isinstance(result, Prediction):
            predicted.append(result.path)
        else:
            skipped[result[0]] = result[1]
    return predicted, skipped


@pytest.fixture
def macos_folder(tmp_path: Path) -> Path:
    """A folder unzipped on macOS: real PNGs, and what the Finder and the zip add."""
    folder = tmp_path / "test_images"
    for name in ("a.png", "b.png", "deeper/c.png"):
        write_png(folder / name, seed=len(name))
    write_png(folder / "__MACOSX" / "._a.png", 1)  # what a macOS zip carries
    (folder / "._a.png").write_bytes(b"\0\5\26\7 AppleDouble")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    write_png(folder / ".thumbnails" / "a.png", 2)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_a_folder_skips_hidden_system_and_appledouble_files(macos_folder: Path):
    predicted, skipped = answers(macos_folder)
    assert predicted == [str(macos_folder / name) for name in ("a.png", "b.png",
                                                                "deeper/c.png")]
    assert skipped == {str(macos_folder / "__MACOSX"): "system folder",
                       str(macos_folder / ".thumbnails"): "hidden folder",
                       str(macos_folder / "._a.png"): "hidden file",
                       str(macos_folder / ".DS_Store"): "hidden file",
                       str(macos_folder / "notes.txt"): "not an image extension"}


def test_a_csv_names_each_image_as_written_and_each_bad_row(macos_folder: Path):
    listed = macos_folder.parent / "test.csv"
    listed.write_text("id,path\n1,test_images/b.png\n2,test_images/gone.png\n"
                      "3,test_images/._a.png\n4,test_images/a.png\n5,\n")
    predicted, skipped = answers(listed)
    assert predicted == ["test_images/b.png", "test_images/a.png"]  # the CSV's order
    assert skipped == {"test_images/gone.png": "cannot read: file not found (test.csv row 3)",
                       "test_images/._a.png": "hidden file",
                       "": "test.csv row 6: empty path"}


def test_one_file_and_a_broken_one(macos_folder: Path):
    assert answers(macos_folder / "a.png") == ([str(macos_folder / "a.png")], {})
    broken = macos_folder / "broken.png"
    broken.write_bytes(b"not a png")
    predicted, skipped = answers(broken)
    assert predicted == [] and skipped[str(broken)].startswith("cannot decode: ")


def test_more_images_than_a_chunk_keep_their_order_and_answers(tmp_path: Path):
    folder = tmp_path / "many"
    for index in range(70):  # more than PREDICT_CHUNK: two chunks
        write_png(folder / f"{index:02d}.png", seed=index)
    (folder / "30.png").write_bytes(b"")
    results = list(classify(CLASSIFIER, images_in(folder), top=2))
    assert (str(folder / "30.png"), "cannot decode: empty file") in results
    predictions = [result for result in results if isinstance(result, Prediction)]
    assert [Path(p.path).name for p in predictions] == [f"{i:02d}.png" for i in range(70)
                                                        if i != 30]
    for prediction in predictions:
        (_, p1), (_, p2) = prediction.top
        assert p1 >= p2 and p1 + p2 == pytest.approx(1.0)


def test_an_input_that_is_none_of_these_names_what_is_read(tmp_path: Path):
    with pytest.raises(UserError, match="nowhere: not an existing folder, a .csv or an image "
                                        "file"):
        images_in(tmp_path / "nowhere")
