"""Evaluation, figures and the comparison table, with a real tiny Keras classifier."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import TINY_TEACHER

from teacher_student.evaluation import averaged_with_mirror
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.teacher import build_teacher
from teacher_student.outputs import metrics, plots, reports

PNG_MAGIC = b"\x89PNG"
CLASS_NAMES = ["zero", "one", "two"]
IMAGE_SHAPE = (8, 8, 1)


def _tiny_classifier() -> keras.Model:
    inputs = keras.Input(IMAGE_SHAPE, dtype="uint8")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(len(CLASS_NAMES))(x)
    return keras.Model(inputs, logits, name="tiny")


@pytest.fixture(scope="module")
def arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, *IMAGE_SHAPE), dtype=np.uint8)
    labels = rng.integers(0, len(CLASS_NAMES), size=40).astype(np.int64)
    return images, labels


@pytest.fixture(scope="module")
def model(arrays: tuple[np.ndarray, np.ndarray]) -> keras.Model:
    keras.utils.set_random_seed(0)
    classifier = _tiny_classifier()
    classifier.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    classifier.fit(*arrays, epochs=1, batch_size=16, verbose=0)
    return classifier


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:4] == PNG_MAGIC


# --------------------------------------------------------------------------- figures


def test_plot_curves_handles_empty_phase_and_missing_metrics(tmp_path: Path) -> None:
    histories = {
        "warmup": pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.8], "accuracy": [0.4, 0.6],
                                "val_loss": [1.1, 0.9], "val_accuracy": [0.3, 0.5]}),
        "skipped": pd.DataFrame(),
        "distill": pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.7, 0.6, 0.5]}),
    }
    path = tmp_path / "curves.png"

    assert plots.plot_curves(histories, path) == path
    assert _is_png(path)


def test_plot_curves_with_only_empty_phases_still_writes_png(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "curves.png"

    plots.plot_curves({"only": pd.DataFrame()}, path)

    assert _is_png(path)


# --------------------------------------------------------------------------- predictions


def test_predict_labels_is_argmax_of_logits_for_every_input_form(
    model: keras.Model, arrays: tuple[np.ndarray, np.ndarray]
) -> None:
    import tensorflow as tf

    images, labels = arrays
    expected = np.asarray(model(images, training=False)).argmax(axis=-1)
    batch_list = [(images[i:i + 16], labels[i:i + 16]) for i in range(0, len(images), 16)]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)

    for data in ((images, labels), batch_list, dataset):
        y_true, y_pred = reports.predict_labels(model, data)
        np.testing.assert_array_equal(y_true, labels)
        np.testing.assert_array_equal(y_pred, expected)


def test_predict_labels_accepts_one_hot_labels(
    model: keras.Model, arrays: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = arrays
    one_hot = np.eye(len(CLASS_NAMES), dtype=np.float32)[labels]

    y_true, _ = reports.predict_labels(model, [(images, one_hot)])

    np.testing.assert_array_equal(y_true, labels)


# --------------------------------------------------------------------------- evaluation


def test_evaluate_classifier_writes_files_and_consistent_metrics(
    model: keras.Model, arrays: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    images, labels = arrays

    model.save(tmp_path / "student.keras")
    evaluation = reports.evaluate_classifier("student", model, (images, labels), CLASS_NAMES,
                                             tmp_path, tmp_path / "student.keras")
    row = evaluation.row

    confusion = tmp_path / "student_confusion.png"
    report = tmp_path / "student_classification_report.txt"
    assert _is_png(confusion)
    report_text = report.read_text()
    assert all(name in report_text for name in CLASS_NAMES)
    assert "macro avg" in report_text

    logits = np.asarray(model(images, training=False))
    predictions = logits.argmax(axis=-1)
    assert row["model"] == "student"
    assert row["accuracy"] == pytest.approx(float(np.mean(predictions == labels)))
    assert 0.0 <= row["accuracy"] <= 1.0
    assert 0.0 <= row["macro_f1"] <= 1.0
    assert row["params"] == model.count_params() == 8 * 8 * 3 + 3
    assert row["size_mb"] > 0
    np.testing.assert_array_equal(evaluation.labels, labels)
    np.testing.assert_allclose(evaluation.probabilities, metrics.softmax(logits), atol=1e-5)
    assert row["ece"] == pytest.approx(
        metrics.expected_calibration_error(evaluation.probabilities, labels))
    mistakes = pd.read_csv(tmp_path / "student_top_confusions.csv")
    assert mistakes["images"].sum() == np.sum(predictions != labels)
    assert (tmp_path / "student_top_confusions.md").read_text().startswith("| true class")


def test_evaluate_classifier_measures_size_of_given_model_file(
    model: keras.Model, arrays: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    model_path = tmp_path / "tiny.keras"
    model.save(model_path)

    row = reports.evaluate_classifier("tiny", model, arrays, CLASS_NAMES, tmp_path / "eval",
                                      model_path=model_path).row

    assert row["size_mb"] == pytest.approx(model_path.stat().st_size / (1024 * 1024))


# --------------------------------------------------------------------------- comparison


def test_write_comparison_markdown_and_csv_agree(tmp_path: Path) -> None:
    rows = [
        {"model": "teacher", "accuracy": 0.98765, "macro_f1": 0.9812, "params": 1234567,
         "size_mb": 14.25, "latency_ms": 3.5},
        {"model": "student", "accuracy": 0.95, "macro_f1": 0.9477, "params": 45678,
         "size_mb": 0.61, "latency_ms": 0.42},
    ]

    markdown = reports.write_comparison(rows, tmp_path)

    lines = [cells(line) for line in markdown.splitlines()]
    assert lines[0] == ["model", "accuracy", "balanced accuracy", "macro-F1", "ECE",
                        "agrees with teacher", "KL from teacher", "params", "size (MB)",
                        "CPU ms/img", "IQR", "TFLite CPU ms/img"]
    assert len(lines) == 2 + len(rows)  # header, separator, one line per model
    assert lines[2] == ["teacher", "98.77%", "-", "0.9812", "-", "-", "-", "1,234,567",
                        "14.25", "3.500", "-", "-"]
    assert lines[3][:2] == ["student", "95.00%"]
    assert (tmp_path / "comparison.md").read_text().strip() == markdown

    frame = pd.read_csv(tmp_path / "comparison.csv")
    assert frame["model"].tolist() == ["teacher", "student"]
    for column in ("accuracy", "macro_f1", "size_mb", "latency_ms"):
        assert frame[column].tolist() == pytest.approx([row[column] for row in rows])
    assert frame["params"].tolist() == [1234567, 45678]


def test_write_comparison_shows_missing_values_as_dash(tmp_path: Path) -> None:
    markdown = reports.write_comparison([{"model": "a|b", "accuracy": 0.5}], tmp_path)

    assert markdown.splitlines()[2].startswith("| a\\|b ")  # the "|" escaped, one cell
    assert cells(markdown.splitlines()[2])[1:] == ["50.00%"] + ["-"] * 10


def test_parameters_stay_whole_numbers_when_exports_join_the_comparison(tmp_path: Path):
    """The majority-class row has no parameters: read back from comparison.csv, the column was
    floats, and an export printed the teacher's as "16,859.0"."""
    reports.write_comparison([{"model": "teacher", "params": 16859},
                              {"model": "always the majority class", "accuracy": 0.3}], tmp_path)
    table = reports.add_to_comparison([{"model": "student (onnx)", "params": 2345}], tmp_path)
    assert [cells(line)[7] for line in table.splitlines()[2:5]] == ["16,859", "-", "2,345"]


def cells(line: str) -> list[str]:
    """The cells of a Markdown table line, padding stripped (an escaped `\\|` kept whole)."""
    return [cell.strip() for cell in line.strip("|").replace("\\|", "\0").split("|")]


def test_the_comparison_shows_what_chance_is_on_an_imbalanced_test_split():
    y_true = np.array([0] * 8 + [1] + [2])
    # A model that gets the rare classes right and some of the common one wrong: its accuracy
    # falls below always answering the majority class, its balanced accuracy rises far above.
    y_pred = np.array([0] * 5 + [1] * 3 + [1] + [2])
    model = reports.scores(y_true, y_pred, 3)
    chance = reports.chance_row(y_true, 3)
    assert chance["model"] == "always the majority class"
    assert chance["accuracy"] == pytest.approx(0.8)
    assert chance["balanced_accuracy"] == pytest.approx(1 / 3)
    assert model["accuracy"] == pytest.approx(0.7) and model["accuracy"] < chance["accuracy"]
    assert model["balanced_accuracy"] == pytest.approx((5 / 8 + 1 + 1) / 3)
    assert model["macro_f1"] > chance["macro_f1"]


def test_the_comparison_names_the_cpu_of_its_latency_columns(tmp_path: Path) -> None:
    rows = [{"model": "student", "accuracy": 0.9, "latency_ms": 0.4, "latency_iqr_ms": 0.02,
             "tflite_latency_ms": 0.05, "latency_device": "AMD EPYC, 2 cores"}]
    markdown = reports.write_comparison(rows, tmp_path)
    assert cells(markdown.splitlines()[2])[-3:] == ["0.400", "0.020", "0.050"]
    assert markdown.splitlines()[-1].startswith(
        "CPU ms/img: latency per image, batch 1, one thread, on the CPU (AMD EPYC, 2 cores), "
        "measured in a fresh process with no GPU visible")
    assert (tmp_path / "accuracy_vs_latency.png").exists()
    assert pd.read_csv(tmp_path / "comparison.csv")["latency_device"].tolist() == [
        "AMD EPYC, 2 cores"]


def test_test_time_augmentation_averages_each_image_with_its_mirror():
    model = build_teacher(TINY_TEACHER, PrecisionPolicy("float32"))
    images = np.random.default_rng(4).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    expected = (metrics.softmax(model.predict(images, verbose=0))
                + metrics.softmax(model.predict(images[:, :, ::-1], verbose=0))) / 2
    averaged = averaged_with_mirror(model).predict(images, verbose=0)
    np.testing.assert_allclose(metrics.softmax(averaged), expected, rtol=1e-4, atol=1e-6)
