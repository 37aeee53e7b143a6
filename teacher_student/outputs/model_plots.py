"""Figures of the run's models on the test split: normalised confusion matrices, reliability
diagrams and accuracy against CPU latency. (Training curves are in plots.py.)

A confusion matrix is normalised by row (the share of each true class answered as each class),
so a rare class reads like a common one. Up to `ANNOTATED_CLASSES` classes every cell carries
its percentage; beyond, the matrix is drawn as a heat map without cell text or class names
(the most frequent confusions go to a table instead, `metrics.top_confusions`). The figure is
never larger than `MAX_INCHES` on a side (1,440 px at 120 dpi), at 100 classes as at 10.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from teacher_student.outputs.metrics import Reliability, normalized_confusion
from teacher_student.outputs.plots import pyplot, save_figure

ANNOTATED_CLASSES = 30
MAX_INCHES = 12.0
MIN_INCHES = 4.0
INCHES_PER_CLASS = 0.45


def confusion_inches(num_classes: int) -> float:
    """The side of a confusion matrix figure: grows with the classes up to MAX_INCHES."""
    return min(max(MIN_INCHES, INCHES_PER_CLASS * num_classes + 2.0), MAX_INCHES)


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str],
                   title: str, path: str | os.PathLike) -> Path:
    """The normalised confusion matrix (rows: true class, columns: predicted) as a PNG."""
    plt = pyplot()
    count = len(class_names)
    _, shares = normalized_confusion(y_true, y_pred, count)
    side = confusion_inches(count)
    figure, axis = plt.subplots(figsize=(side, side))
    image = axis.imshow(100 * shares, cmap="Blues", vmin=0, vmax=100, interpolation="nearest")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="% of the true class")
    if count <= ANNOTATED_CLASSES:
        font = 9 if count <= 12 else 6
        for i, j in np.ndindex(count, count):
            if shares[i, j] > 0:
                axis.text(j, i, f"{100 * shares[i, j]:.0f}", ha="center", va="center",
                          fontsize=font, color="white" if shares[i, j] > 0.5 else "black")
        axis.set_xticks(range(count), class_names, rotation=45, ha="right",
                        fontsize=font + 1)
        axis.set_yticks(range(count), class_names, fontsize=font + 1)
    else:  # class indices every few classes; names and cells would not be legible
        step = max(1, math.ceil(count / 20))
        axis.set_xticks(range(0, count, step))
        axis.set_yticks(range(0, count, step))
        title += f": {count} classes by index (top confusions: see the table)"
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(f"{title}, % of each true class")
    figure.tight_layout()
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


def plot_reliability(reliabilities: Mapping[str, Reliability],
                     path: str | os.PathLike) -> Path:
    """One reliability diagram for all models: accuracy against confidence per bin (bins
    without images left out), the diagonal of perfect calibration, each model's ECE in the
    legend; below, how many test images fall in each bin."""
    plt = pyplot()
    figure, (axis, counts) = plt.subplots(2, 1, figsize=(6.5, 7.5), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 1]})
    axis.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1,
              label="perfectly calibrated")
    width = 1.0 / max(len(reliabilities), 1)
    for index, (name, found) in enumerate(reliabilities.items()):
        filled = found.counts > 0
        axis.plot(found.confidence[filled], found.accuracy[filled], marker="o",
                  label=f"{name} (ECE {found.ece:.3f})")
        bin_width = found.edges[1] - found.edges[0]
        counts.bar(found.edges[:-1] + bin_width * (index + 0.5) * width, found.counts,
                   width=bin_width * width, label=name)
    axis.set_xlim(0, 1)
    axis.set_ylim(-0.03, 1.03)  # a bin all right or all wrong stays in sight
    axis.set_ylabel("accuracy in the bin")
    axis.set_title("Reliability on the test split (15 confidence bins)")
    axis.grid(alpha=0.3)
    axis.legend(loc="best", fontsize=8)
    counts.set_xlabel("confidence (top-1 probability)")
    counts.set_ylabel("test images")
    counts.grid(alpha=0.3)
    figure.tight_layout()
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


# One marker per format; the run's own rows are its Keras model ("") and that model as float32
# TFLite ("tflite"), the same formats as an export's "keras" and "tflite float32".
FORMATS = {"": "keras", "tflite": "tflite float32"}
MARKERS = {"keras": "o", "savedmodel": "P", "tflite float32": "s", "tflite float16": "^",
           "tflite int8": "v", "onnx": "D"}
RING_AREAS = (90.0, 320.0)  # the last model's marker, the first's: a point hides none under it


def plot_accuracy_latency(rows: Sequence[Mapping], device: str | None,
                          path: str | os.PathLike) -> Path | None:
    """Test accuracy against CPU latency per image: one colour per model, one marker per
    format (a circle for the Keras model, a square for float32 TFLite; an export's row,
    `<model> (<format>)`, in its model's colour), hollow and each model's a size of its own,
    so that two models at one point (a student distilled and from scratch) are two rings; one
    point per model and format (an export's replaces the run's own measurement). The legend
    names each model and each format once. `device` names the CPU. None, and no file, when
    no row has a latency."""
    found = {}  # (model, format) -> point: an export's measurement replaces the run's own
    for row in rows:
        model, _, form = str(row["model"]).partition(" (")
        form = form.rstrip(")")
        for key, kind in (("latency_ms", form), ("tflite_latency_ms", "tflite")):
            value, accuracy = row.get(key), row.get("accuracy")
            if _number(value) and _number(accuracy):
                kind = FORMATS.get(kind, kind)
                found[model, kind] = (float(value), float(accuracy), model, kind)
    if not found:
        return None
    points = list(found.values())
    plt = pyplot()
    from matplotlib.lines import Line2D

    models = list(dict.fromkeys(p[2] for p in points))
    low, high = RING_AREAS
    areas = {model: high - (high - low) * i / max(len(models) - 1, 1)
             for i, model in enumerate(models)}
    colors = {model: f"C{i}" for i, model in enumerate(models)}
    figure, axis = plt.subplots(figsize=(9, 5))
    for latency, accuracy, model, kind in points:
        axis.scatter(latency, 100 * accuracy, marker=MARKERS.get(kind, "X"), s=areas[model],
                     facecolors="none", edgecolors=colors[model], linewidths=1.0)
    latencies = [p[0] for p in points]
    if max(latencies) > 10 * min(latencies):
        axis.set_xscale("log")
    axis.ticklabel_format(axis="y", useOffset=False)
    axis.set_xlabel("CPU latency, ms per image (batch 1, one thread"
                    + (f"; {device})" if device else ")"))
    axis.set_ylabel("test accuracy (%)")
    axis.set_title("Accuracy against CPU latency: up and to the left is better")
    axis.grid(alpha=0.3, which="both")
    axis.margins(x=0.15, y=0.15)
    ring = dict(linestyle="none", markerfacecolor="none", markeredgewidth=1.0)
    kinds = list(dict.fromkeys(p[3] for p in points))
    heading = Line2D([], [], linestyle="none")
    handles = [heading, *(Line2D([], [], marker="o", markeredgecolor=colors[m],
                                 markersize=math.sqrt(areas[m]), **ring) for m in models),
               heading, *(Line2D([], [], marker=MARKERS.get(k, "X"), markeredgecolor="dimgray",
                                 markersize=7, **ring) for k in kinds)]
    legend = axis.legend(handles, ["model", *models, "format", *kinds], loc="upper left",
                         bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    for text in (legend.get_texts()[0], legend.get_texts()[len(models) + 1]):
        text.set_fontweight("bold")
    figure.tight_layout()
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)
