"""The figures of a run, drawn from small made-up numbers: each is a PNG of a bounded size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import figures_saved
from PIL import Image

from teacher_student.outputs import metrics, model_plots, plots


def size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


@pytest.mark.parametrize("classes", [3, 30, 100])
def test_confusion_matrices_stay_within_1440_pixels_at_100_classes(tmp_path, classes):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, classes, 600)
    y_pred = np.where(rng.random(600) < 0.7, y_true, rng.integers(0, classes, 600))
    path = model_plots.plot_confusion(y_true, y_pred, [f"class {i}" for i in range(classes)],
                                      "student (test)", tmp_path / "confusion.png")
    width, height = size(path)
    assert width == height <= 1440
    assert width == 120 * model_plots.confusion_inches(classes)
    if classes == 3:
        assert width == 480


def test_student_curves_draw_both_students_and_the_teachers_line(tmp_path):
    epochs = np.arange(1, 6)
    history = lambda shift: pd.DataFrame({  # noqa: E731
        "epoch": epochs, "accuracy": 0.5 + 0.05 * epochs - shift,
        "val_accuracy": 0.55 + 0.05 * epochs - shift, "val_loss": 1.0 / epochs + shift})
    path = plots.plot_student_curves({"distilled": history(0.0), "scratch": history(0.1)},
                                     0.9, tmp_path / "students.png")
    assert size(path) == (1440, 540)
    # a run without a baseline (distill.baseline false) still gets its figure
    plots.plot_student_curves({"distilled": history(0.0), "scratch": pd.DataFrame()}, None,
                              tmp_path / "one.png")
    assert (tmp_path / "one.png").exists()


def test_student_curves_show_every_epoch_of_both_students_even_when_equal(tmp_path,
                                                                          monkeypatch):
    """One epoch each, equal values (a tiny run): every series is a marker, the one from
    scratch a larger hollow one around the distilled student's."""
    figures = figures_saved(monkeypatch, plots)
    history = pd.DataFrame({"epoch": [1], "accuracy": [0.5], "val_accuracy": [0.2],
                            "val_loss": [1.1]})
    plots.plot_student_curves({"distilled": history, "scratch": history}, 0.4,
                              tmp_path / "students.png")
    lines = [line for axis in figures[0].axes for line in axis.get_lines()
             if not line.get_label().startswith("teacher")]
    assert len(lines) == 6
    for line in lines:
        assert line.get_marker() not in (None, "None", "", " ", ","), line.get_label()
    distilled = [line for line in lines if line.get_label().startswith("distilled")]
    scratch = [line for line in lines if line.get_label().startswith("from scratch")]
    for ours, theirs in zip(distilled, scratch):
        assert theirs.get_markerfacecolor() == "none"
        assert theirs.get_markersize() > ours.get_markersize() + 2


def test_accuracy_against_latency_shows_each_model_and_names_it_once(tmp_path, monkeypatch):
    """A student distilled and from scratch at one point are two rings; the legend names each
    model and each format once (the run's own TFLite row and an export's tflite float32 are
    one format)."""
    figures = figures_saved(monkeypatch, model_plots)
    rows = [{"model": "teacher", "accuracy": 0.4, "latency_ms": 1.3, "tflite_latency_ms": 0.2},
            {"model": "student_scratch", "accuracy": 0.4, "latency_ms": 0.55,
             "tflite_latency_ms": 0.03},
            {"model": "student_distilled", "accuracy": 0.4, "latency_ms": 0.55,
             "tflite_latency_ms": 0.03},
            {"model": "student_distilled (keras)", "accuracy": 0.4, "latency_ms": 0.55},
            {"model": "student_distilled (tflite float32)", "accuracy": 0.4, "latency_ms": 0.03},
            {"model": "student_distilled (tflite int8)", "accuracy": 0.39, "latency_ms": 0.03}]
    model_plots.plot_accuracy_latency(rows, "AMD EPYC, 2 cores", tmp_path / "a.png")
    (axis,) = figures[0].axes
    assert [text.get_text() for text in axis.get_legend().get_texts()] == [
        "model", "teacher", "student_scratch", "student_distilled",
        "format", "keras", "tflite float32", "tflite int8"]
    at_point: dict = {}
    for points in axis.collections:
        for offset in points.get_offsets():
            at_point.setdefault(tuple(np.round(offset, 6)), []).append(points)
    assert len(at_point) == 5  # one point per model and format
    for drawn_there in at_point.values():
        assert all(len(points.get_facecolor()) == 0
                   for points in drawn_there)  # hollow: nothing under them is covered
        sizes = [points.get_sizes()[0] for points in drawn_there]
        assert len(set(sizes)) == len(sizes)  # each model a ring of its own size


def test_reliability_diagram_of_every_model(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    found = {name: metrics.reliability(rng.dirichlet(np.ones(4) * alpha, 200), labels)
             for name, alpha in (("teacher", 0.3), ("student", 1.0))}
    path = model_plots.plot_reliability(found, tmp_path / "reliability.png")
    assert size(path) == (780, 900)


def test_accuracy_against_latency_needs_a_latency(tmp_path):
    rows = [{"model": "teacher", "accuracy": 0.9, "latency_ms": 3.0, "tflite_latency_ms": 1.0},
            {"model": "student_distilled", "accuracy": 0.85, "latency_ms": 0.4},
            {"model": "student_distilled (tflite int8)", "accuracy": 0.84, "latency_ms": 0.05},
            {"model": "always the majority class", "accuracy": 0.1}]
    path = model_plots.plot_accuracy_latency(rows, "AMD EPYC, 2 cores", tmp_path / "a.png")
    assert size(path) == (1080, 600)
    assert model_plots.plot_accuracy_latency(rows[-1:], None, tmp_path / "b.png") is None
    assert not (tmp_path / "b.png").exists()
