"""Figures of a run: learning curves of all phases end to end, and confusion matrices.

matplotlib is imported inside the functions, on its non-interactive Agg backend (no display).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from teacher_student.atomic import replace_atomically

# Panels of the learning-curve figure: title -> history column (its "val_" twin is added).
CURVE_PANELS = {"loss": "loss", "accuracy": "accuracy"}
TRAIN_COLOR = "tab:blue"
VAL_COLOR = "tab:orange"


def _save_figure(figure: Any, path: str | os.PathLike) -> Path:
    # The temporary name ends with the file's own name; the format is given explicitly anyway.
    return replace_atomically(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))


def _pyplot() -> Any:
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
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(6 * len(CURVE_PANELS), 4.5))
    for axis, (title, metric) in zip(np.atleast_1d(axes), CURVE_PANELS.items()):
        _plot_metric(axis, histories, metric)
        axis.set_title(title)
        axis.set_xlabel("epoch (all phases)")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    try:
        return _save_figure(figure, path)
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


def plot_confusion(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str], title: str, path: Path
) -> Path:
    """Confusion matrix of counts (rows: true class, columns: predicted class) as a PNG."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    size = max(4.0, 0.6 * len(class_names) + 2.0)  # keep cells readable with many classes
    figure, axis = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=list(range(len(class_names))), display_labels=list(class_names),
        values_format="d", cmap="Blues", colorbar=False, ax=axis,
    )
    axis.set_title(title)
    plt.setp(axis.get_xticklabels(), rotation=45, ha="right")
    figure.tight_layout()
    try:
        return _save_figure(figure, path)
    finally:
        plt.close(figure)
