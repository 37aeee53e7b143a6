"""Training histories, learning curves, test-set evaluation and the model comparison table.

Models output logits; predictions are their argmax. Only numpy, pandas and keras are imported
at module level (no TensorFlow, so this also runs on the JAX backend); matplotlib and
sklearn.metrics are imported inside the functions that need them.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from teacher_student.files import replace_atomically, write_text

PathLike = str | os.PathLike

# Panels of the learning-curve figure: title -> history column (its "val_" twin is added).
CURVE_PANELS = {"loss": "loss", "accuracy": "accuracy"}
TRAIN_COLOR = "tab:blue"
VAL_COLOR = "tab:orange"

# Markdown table: header -> (row key, formatter).
COMPARISON_COLUMNS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "model": ("model", str),
    "accuracy": ("accuracy", lambda value: f"{100 * value:.2f}%"),
    "macro-F1": ("macro_f1", lambda value: f"{value:.4f}"),
    "params": ("params", lambda value: f"{int(value):,}"),
    "size (MB)": ("size_mb", lambda value: f"{value:.2f}"),
    "latency (ms/img)": ("latency_ms", lambda value: f"{value:.3f}"),
}
PREDICT_BATCH_SIZE = 256  # chunk size when `data` is a pair of whole arrays
BYTES_PER_MB = 1024 * 1024


# --------------------------------------------------------------------------- files


def _save_figure(figure: Any, path: PathLike) -> Path:
    # The temporary name ends in ".tmp", so the format must be given explicitly.
    return replace_atomically(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))


def _pyplot() -> Any:
    """pyplot on the non-interactive Agg backend (works without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------- histories


def write_history(history: Mapping[str, Sequence[float]], path: PathLike) -> Path:
    """Write one phase's Keras history (`History.history`) as CSV with a 1-based `epoch` column."""
    frame = pd.DataFrame({name: list(values) for name, values in history.items()})
    if "epoch" not in frame.columns:
        frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    return replace_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))


def read_history(path: PathLike) -> pd.DataFrame:
    """Read a history CSV written by `write_history`."""
    return pd.read_csv(path)


def plot_curves(histories: Mapping[str, pd.DataFrame], path: PathLike) -> Path:
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


# --------------------------------------------------------------------------- predictions


def _batches(data: Any) -> Iterable[tuple[Any, Any]]:
    """Yield (images, labels) batches from a pair of arrays or an iterable of batches."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        images, labels = data
        for start in range(0, len(images), PREDICT_BATCH_SIZE):
            stop = start + PREDICT_BATCH_SIZE
            yield images[start:stop], labels[start:stop]
        return
    for batch in data:
        # Host arrays work on every backend (JAX cannot take tf.data's tensors). Datasets may
        # carry sample weights as a third element; they do not matter here.
        yield np.asarray(batch[0]), np.asarray(batch[1])


def _as_class_indices(labels: Any) -> np.ndarray:
    """Integer labels; one-hot labels are turned back into indices."""
    labels = np.asarray(labels)
    if labels.ndim > 1 and labels.shape[-1] > 1:
        labels = labels.argmax(axis=-1)
    return labels.reshape(-1).astype(np.int64)


def predict_labels(model: keras.Model, data: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (y_true, y_pred) class indices for `data`.

    `data` is a tuple (x, y) of numpy arrays or an iterable of (images, labels) batches
    such as a tf.data.Dataset or a list of array pairs.
    """
    true_parts: list[np.ndarray] = []
    pred_parts: list[np.ndarray] = []
    for images, labels in _batches(data):
        logits = keras.ops.convert_to_numpy(model.predict_on_batch(images))
        pred_parts.append(np.asarray(logits).argmax(axis=-1).astype(np.int64))
        true_parts.append(_as_class_indices(labels))
    if not true_parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(true_parts), np.concatenate(pred_parts)


def measure_latency(
    model: keras.Model,
    input_shape: Sequence[int | None],
    batch_size: int = 1,
    repeats: int = 20,
    warmup: int = 3,
) -> float:
    """Median milliseconds per image of `model.predict_on_batch` on a random uint8 batch.

    `input_shape` is one image's shape, e.g. `model.input_shape[1:]`; a leading None (batch
    axis) is dropped. Warm-up calls are not timed (they include compiling and allocation).
    The compiled predict function is what a deployment runs: an eager `model(x)` call adds
    tens of milliseconds of Python to a small model (`bench cpu` shows both).
    """
    image_shape = tuple(input_shape)
    if image_shape and image_shape[0] is None:
        image_shape = image_shape[1:]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(batch_size, *image_shape), dtype=np.uint8)

    def run_once() -> None:
        # Converting to numpy waits for asynchronous backends (JAX) to finish.
        keras.ops.convert_to_numpy(model.predict_on_batch(images))

    for _ in range(warmup):
        run_once()
    timings_ms = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        run_once()
        timings_ms.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(timings_ms)) / batch_size


def model_size_mb(model: keras.Model, model_path: PathLike | None = None) -> float:
    """Size in MiB of the saved `.keras` file; saves to a temporary file when no path is given."""
    if model_path is not None:
        return os.path.getsize(model_path) / BYTES_PER_MB
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp_path = os.path.join(tmp_dir, "model.keras")
        model.save(tmp_path)
        return os.path.getsize(tmp_path) / BYTES_PER_MB


# --------------------------------------------------------------------------- evaluation


def evaluate_classifier(
    name: str,
    model: keras.Model,
    data: Any,
    class_names: Sequence[str],
    out_dir: PathLike,
    model_path: PathLike | None = None,
) -> dict[str, Any]:
    """Evaluate `model` on `data`, write its confusion matrix and report, return a summary row.

    Writes `<name>_confusion.png` and `<name>_classification_report.txt` in `out_dir`. The row
    has model, accuracy, macro_f1, params, size_mb and latency_ms (CPU, batch 1, per image).
    """
    from sklearn.metrics import classification_report, f1_score

    out_dir = Path(out_dir)
    y_true, y_pred = predict_labels(model, data)
    # Listing every class keeps the report and matrix complete even if one class is absent.
    class_indices = list(range(len(class_names)))
    report = classification_report(y_true, y_pred, labels=class_indices,
                                   target_names=list(class_names), digits=4, zero_division=0)
    write_text(out_dir / f"{name}_classification_report.txt", report)
    _plot_confusion(y_true, y_pred, class_names, f"{name} (test)",
                    out_dir / f"{name}_confusion.png")
    return {
        "model": name,
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, labels=class_indices, average="macro",
                                   zero_division=0)),
        "params": int(model.count_params()),
        "size_mb": model_size_mb(model, model_path),
        "latency_ms": measure_latency(model, model.input_shape[1:], batch_size=1),
    }


def _plot_confusion(
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


# --------------------------------------------------------------------------- comparison


def write_comparison(rows: Sequence[Mapping[str, Any]], out_dir: PathLike) -> str:
    """Write `comparison.csv` and `comparison.md` in `out_dir`; return the Markdown table."""
    out_dir = Path(out_dir)
    frame = pd.DataFrame(list(rows))
    known = [key for key, _ in COMPARISON_COLUMNS.values() if key in frame.columns]
    frame = frame[known + [column for column in frame.columns if column not in known]]
    replace_atomically(out_dir / "comparison.csv", lambda tmp: frame.to_csv(tmp, index=False))
    markdown = markdown_table(rows)
    write_text(out_dir / "comparison.md", markdown + "\n")
    return markdown


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The comparison rows as a Markdown table (numbers right-aligned, missing values as '-')."""
    headers = list(COMPARISON_COLUMNS)
    alignment = [":---" if header == "model" else "---:" for header in headers]
    lines = [_markdown_row(headers), _markdown_row(alignment)]
    for row in rows:
        cells = [_format_cell(row.get(key), formatter)
                 for key, formatter in COMPARISON_COLUMNS.values()]
        lines.append(_markdown_row(cells))
    return "\n".join(lines)


def _markdown_row(cells: Sequence[str]) -> str:
    # A "|" inside a cell would split it into two columns.
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _format_cell(value: Any, formatter: Callable[[Any], str]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return formatter(value)
