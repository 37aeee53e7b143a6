"""The images `predict` is shown: a folder, a CSV of paths or one file, listed by the same rules
as the training data (hidden files, `__MACOSX`, macOS's `._x.png` left out and counted), and
decoded by the same routine; and the submission CSV made of the answers (ids, column names,
top-k, probabilities, the summary line, test-time augmentation). Real files; the model is a
plain function of the pixels."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import write_png

from teacher_student.errors import UserError
from teacher_student.outputs.classifier import Classifier, averaged_with_mirror
from teacher_student.outputs.predictions import (
    CsvShape,
    Naming,
    Prediction,
    classify,
    images_in,
    write_predictions,
)


def brightness(images: np.ndarray) -> np.ndarray:
    """A model of two classes: how bright the image is."""
    bright = images.reshape(len(images), -1).mean(axis=1) / 255.0
    return np.stack([1.0 - bright, bright], axis=1)


def left_brighter(images: np.ndarray) -> np.ndarray:
    """A model of two classes that a mirror swaps: is the left half brighter than the right?"""
    half = images.shape[2] // 2
    left = images[:, :, :half].reshape(len(images), -1).mean(axis=1) + 1.0
    right = images[:, :, -half:].reshape(len(images), -1).mean(axis=1) + 1.0
    return np.stack([left, right], axis=1) / (left + right)[:, None]


CLASSIFIER = Classifier(Path("brightness"), brightness, ["dark", "bright"], 8, 3, "brightness")


def answers(source: Path, ids: str = "path") -> tuple[list[str], dict[str, str]]:
    """(the ids classified, in order; {file: reason} of those left out)."""
    predicted, skipped = [], {}
    for result in classify(CLASSIFIER, images_in(source), Naming.of(source, ids)):
        if isinstance(result, Prediction):
            predicted.append(result.id)
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
    assert predicted == ["a.png", "b.png", "deeper/c.png"]  # relative to the folder
    assert skipped == {"__MACOSX": "system folder", ".thumbnails": "hidden folder",
                       "._a.png": "hidden file", ".DS_Store": "hidden file",
                       "notes.txt": "not an image extension"}
    assert answers(macos_folder, "stem")[0] == ["a", "b", "c"]


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
    assert answers(macos_folder / "a.png") == (["a.png"], {})
    broken = macos_folder / "broken.png"
    broken.write_bytes(b"not a png")
    predicted, skipped = answers(broken)
    assert predicted == [] and skipped["broken.png"].startswith("cannot decode: ")


def test_more_images_than_a_chunk_keep_their_order_and_answers(tmp_path: Path):
    folder = tmp_path / "many"
    for index in range(70):  # more than PREDICT_CHUNK: two chunks
        write_png(folder / f"{index:02d}.png", seed=index)
    (folder / "30.png").write_bytes(b"")
    results = list(classify(CLASSIFIER, images_in(folder), Naming.of(folder)))
    assert ("30.png", "cannot decode: empty file") in results
    predictions = [result for result in results if isinstance(result, Prediction)]
    assert [p.id for p in predictions] == [f"{i:02d}" for i in range(70) if i != 30]
    for prediction in predictions:
        assert prediction.probabilities.sum() == pytest.approx(1.0)
        assert prediction.ranked(2) == list(np.argsort(-prediction.probabilities))


def test_the_submission_has_kaggles_two_columns_and_one_summary_line(macos_folder: Path):
    out = macos_folder.parent / "submission.csv"
    written = write_predictions(CLASSIFIER, macos_folder, out)
    table = pd.read_csv(out, dtype=str)
    assert list(table.columns) == ["id", "label"]
    assert table["id"].tolist() == ["a", "b", "c"]
    assert set(table["label"]) <= {"dark", "bright"}
    summary = written.summary()
    assert summary.startswith(f"3 predictions written to {out} (id: the file name without its "
                              "extension); 5 skipped: ")
    named = re.findall(r"(\S+) \(([^)]*)\)", summary.split("skipped: ")[1])
    assert len(named) == 3 and summary.endswith(", and 2 more")  # the first few named
    assert set(named) <= {("__MACOSX", "system folder"), (".thumbnails", "hidden folder"),
                          ("._a.png", "hidden file"), (".DS_Store", "hidden file"),
                          ("notes.txt", "not an image extension")}


def test_columns_top_k_and_probabilities_as_asked(macos_folder: Path):
    out = macos_folder.parent / "submission.csv"
    shape = CsvShape(ids="path", columns=("image", "class"), top=2, probabilities=True)
    write_predictions(CLASSIFIER, macos_folder / "deeper" / "c.png", out, shape)
    table = pd.read_csv(out)
    assert list(table.columns) == ["image", "class", "dark", "bright"]
    ((image, classes, dark, bright),) = table.values.tolist()
    assert image == "c.png" and dark + bright == pytest.approx(1.0, abs=1e-5)
    assert classes == ("dark bright" if dark >= bright else "bright dark")


def test_one_prediction_one_skipped_in_the_singular(macos_folder: Path):
    (macos_folder / "deeper" / "broken.png").write_bytes(b"")
    written = write_predictions(CLASSIFIER, macos_folder / "deeper",
                                macos_folder.parent / "one.csv")
    assert written.summary().endswith("1 prediction written to "
                                      f"{macos_folder.parent / 'one.csv'} (id: the file name "
                                      "without its extension); 1 skipped: broken.png (cannot "
                                      "decode: empty file)")


def test_ids_that_several_images_would_share_are_refused_before_anything_runs(tmp_path):
    for name in ("cats/1.png", "dogs/1.jpg", "dogs/2.png"):
        write_png(tmp_path / "test" / name, seed=len(name))
    out = tmp_path / "submission.csv"
    with pytest.raises(UserError, match=r"^1 id would name several images \(first: '1', for "
                                        r"cats/1.png, dogs/1.jpg\): --ids path names each"):
        write_predictions(CLASSIFIER, tmp_path / "test", out)
    assert not out.exists()
    write_predictions(CLASSIFIER, tmp_path / "test", out, CsvShape(ids="path"))
    assert pd.read_csv(out)["id"].tolist() == ["cats/1.png", "dogs/1.jpg", "dogs/2.png"]


@pytest.mark.parametrize(("shape", "message"), [
    (CsvShape(columns=("id", "id")), "--columns: the id and the label need two names"),
    (CsvShape(probabilities=True, columns=("id", "dark")), "--probabilities: the class 'dark' "
                                                           "would be a second column 'dark'"),
    (CsvShape(top=0), "--top must be at least 1, got 0"),
])
def test_a_csv_that_could_not_be_read_back_is_refused(macos_folder: Path, shape, message):
    with pytest.raises(UserError, match=message):
        write_predictions(CLASSIFIER, macos_folder, macos_folder.parent / "x.csv", shape)


def test_top_k_refuses_a_class_name_with_a_space(macos_folder: Path):
    spaced = Classifier(Path("b"), brightness, ["very dark", "bright"], 8, 3, "b")
    with pytest.raises(UserError, match="--top 2: .* the class 'very dark' holds one"):
        write_predictions(spaced, macos_folder, macos_folder.parent / "x.csv", CsvShape(top=2))


def test_nothing_classified_is_an_error_naming_what_was_skipped(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(UserError, match=r"no image could be classified in .*: 1 skipped: a.jpg "
                                        r"\(cannot decode: empty file\)"):
        write_predictions(CLASSIFIER, tmp_path, tmp_path / "x.csv")


def test_tta_averages_each_image_with_its_left_right_mirror(tmp_path: Path):
    for index in range(4):
        write_png(tmp_path / "photos" / f"{index}.png", seed=index, size=(8, 8))
    plain = Classifier(Path("m"), left_brighter, ["left", "right"], 8, 3, "m", flips=False)
    images = images_in(tmp_path / "photos")
    naming = Naming.of(tmp_path / "photos")
    once = [p.probabilities for p in classify(plain, images, naming)]
    assert not np.allclose(once, 0.5)  # the images are not symmetric
    mirrored = averaged_with_mirror(plain)
    # left and right swap in the mirror: their average is one half, each image
    assert np.allclose([p.probabilities for p in classify(mirrored, images, naming)], 0.5)
    assert mirrored.description == (
        "m; each image averaged with its left-right mirror (TTA), although the run trained on "
        "no mirrored image (data.flip: false): right for photos, wrong for digits and text")


def test_an_input_that_is_none_of_these_names_what_is_read(tmp_path: Path):
    with pytest.raises(UserError, match="nowhere: not an existing folder, a .csv or an image "
                                        "file"):
        images_in(tmp_path / "nowhere")
