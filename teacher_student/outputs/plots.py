"""Training curves of a run: the teacher's phases end to end, and the two students against
each other with the teacher's test accuracy for scale. (Figures of the models on the test split
are in model_plots.py.)

matplotlib is imported inside the functions, on its non-interactive Agg backend (no display).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from teacher_student.atomic import replace_atomically

# Panels of the learning-curve figure: title -> history column (its "val_" twin is added).
CURVE_PANELS = {"loss": "loss", "accuracy": "accuracy"}
TRAIN_COLOR = "tab:blue"
VAL_COLOR = "tab:orange"


def save_figure(figure: Any, path: str | os.PathLike) -> Path:
    """`figure` as a PNG at `path`, written whole or not at all."""
    # The temporary name ends with the file's own name; the format is given explicitly anyway.
    return replace_atomically(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))


def pyplot() -> Any:
    """pyplot on the non-interactive Agg backend (works without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(histories: Mapping[str, pd.DataFrame], path: str | os.PathLike) -> Path:
    """Plot loss and accuracy of all phases end to end in one PNG.

    `histories` maps phase name -> history frame, in training order. The x axis is the global
    epoch; dashed lines mark where each phase starts. Phases with no epochs and missing
    metrics are skipped.
    """
    plt = pyplot()
    figure, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(6 * len(CURVE_PANELS), 4.5))
    for axis, (title, metric) in zip(np.atleast_1d(axes), CURVE_PANELS.items()):
        _plot_metric(axis, histories, metric)
        axis.set_title(title)
        axis.set_xlabel("epoch (all phases)")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)


def _plot_metric(axis: Any, histories: Mapping[str, pd.DataFrame], metric: str) -> None:
    """Draw `metric` and `val_<metric>` of every phase on `axis`, offset by earlier phases."""
    first_epoch = 0
    drew_anything = False
    for phase, frame in histories.items():
        num_epochs = len(frame)
        if num_epochs == 0:
            continue
        global_epochs = np.arange(first_epoch + 1, first_epoch + num_epochs + 1)
        if first_epoch > 0:
            axis.axvline(first_epoch + 0.5, color="gray", linestyle="--", linewidth=1)
        # Blended transform: x in epochs, y as a fraction of the axis height.
        axis.text(first_epoch + 0.55, 0.98, phase, transform=axis.get_xaxis_transform(),
                  va="top", fontsize=8, color="gray")
        for column, color, label in ((metric, TRAIN_COLOR, "train"),
                                     (f"val_{metric}", VAL_COLOR, "val")):
            if column in frame.columns:
                # Label each series once so the legend has one entry per series.
                axis.plot(global_epochs, frame[column].to_numpy(dtype=float), color=color,
                          marker=".", label=None if drew_anything else label)
        drew_anything = drew_anything or any(c in frame.columns for c in (metric, f"val_{metric}"))
        first_epoch += num_epochs
    if first_epoch > 0:
        # Half an epoch of margin keeps the first phase label inside the axes.
        axis.set_xlim(0.5, first_epoch + 0.5)
        axis.xaxis.get_major_locator().set_params(integer=True)
    if drew_anything:
        axis.legend(loc="best")
    else:
        axis.text(0.5, 0.5, f"no '{metric}' recorded", transform=axis.transAxes, ha="center")


STUDENT_STYLES = {"distilled": ("tab:green", "distilled"), "scratch": ("tab:red", "from scratch")}
# Filled small for the distilled student, hollow and larger from scratch: equal values show both.
STUDENT_MARKERS = {"distilled": {"markersize": 4},
                   "scratch": {"markersize": 8, "markerfacecolor": "none"}}
TEACHER_COLOR = "tab:purple"


def plot_student_curves(histories: Mapping[str, pd.DataFrame], teacher_accuracy: float | None,
                        path: str | os.PathLike) -> Path:
    """What distillation bought, epoch by epoch: validation accuracy (solid; training accuracy
    dashed) and validation loss (cross-entropy with the labels: the teacher plays no part in
    evaluation) of the distilled student and the one trained from scratch on the same axes,
    with the teacher's test accuracy as a horizontal line. Every epoch is a marker (a circle,
    a triangle for training accuracy), hollow and larger from scratch, so that a single epoch
    shows and equal values hide neither student. `histories` maps "distilled" and "scratch"
    to their history frames (a missing or empty one is left out)."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, (accuracy, loss) = plt.subplots(1, 2, figsize=(12, 4.5))
    last_epoch = 1
    for key, frame in histories.items():
        if frame is None or frame.empty:
            continue
        color, label = STUDENT_STYLES.get(key, (None, key))
        epochs = frame["epoch"] if "epoch" in frame else np.arange(1, len(frame) + 1)
        last_epoch = max(last_epoch, int(np.max(epochs)))
        markers = STUDENT_MARKERS.get(key, {})
        for axis, column, style, text in ((accuracy, "val_accuracy", "-o", f"{label} (val)"),
                                          (accuracy, "accuracy", "--^", f"{label} (train)"),
                                          (loss, "val_loss", "-o", f"{label} (val)")):
            if column in frame:
                values = frame[column].to_numpy(dtype=float)
                axis.plot(epochs, 100 * values if axis is accuracy else values, style,
                          color=color, label=text, **markers)
    if teacher_accuracy is not None and np.isfinite(teacher_accuracy):
        accuracy.axhline(100 * teacher_accuracy, color=TEACHER_COLOR, linestyle=":",
                         label=f"teacher (test) {100 * teacher_accuracy:.1f}%")
    accuracy.set_ylabel("accuracy (%)")
    accuracy.set_title("Students: distilled against from scratch")
    loss.set_ylabel("validation loss (cross-entropy)")
    loss.set_title("Validation loss")
    for axis in (accuracy, loss):
        axis.ticklabel_format(axis="y", useOffset=False)
        axis.set_xlim(0.5, last_epoch + 0.5)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="best", fontsize=8)
    figure.tight_layout()
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)
