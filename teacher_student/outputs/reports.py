"""Test-set evaluation and the model comparison table.

Models output logits; predictions are their argmax. Only numpy, pandas and keras are imported
at module level (no TensorFlow, so this also runs on the JAX backend); sklearn.metrics is
imported inside the function that needs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from teacher_student import atomic
from teacher_student.outputs.plots import plot_confusion
from teacher_student.tables import markdown_table
from teacher_student.timing import median_ms

COMPARISON_COLUMNS = [
    ("model", "model", ""),
    ("accuracy", "accuracy", lambda value: f"{100 * value:.2f}%"),
    ("balanced_accuracy", "balanced accuracy", lambda value: f"{100 * value:.2f}%"),
    ("macro_f1", "macro-F1", ".4f"),
    ("params", "params", ","),
    ("size_mb", "size (MB)", ".2f"),
    ("latency_ms", "latency (ms/img)", ".3f"),
]
PREDICT_BATCH_SIZE = 256  # chunk size when `data` is a pair of whole arrays
BYTES_PER_MB = 1024 * 1024


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


def measure_latency(model: keras.Model, input_shape: Sequence[int | None], batch_size: int = 1,
                    repeats: int = 20, warmup: int = 3) -> float:
    """Median milliseconds per image of `model.predict_on_batch` on a random uint8 batch.

    `input_shape` is one image's shape, e.g. `model.input_shape[1:]`; a leading None (batch
    axis) is dropped. The compiled predict function is what a deployment runs: an eager
    `model(x)` call adds tens of milliseconds of Python to a small model (`bench cpu`).
    """
    image_shape = tuple(input_shape)
    if image_shape and image_shape[0] is None:
        image_shape = image_shape[1:]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(batch_size, *image_shape), dtype=np.uint8)
    # Converting to numpy waits for asynchronous backends (JAX) to finish.
    run = lambda: keras.ops.convert_to_numpy(model.predict_on_batch(images))
    return median_ms(run, repeats, warmup) / batch_size


def size_mb(path: str | os.PathLike) -> float:
    """Size on disk of a file, or of everything in a folder (a SavedModel)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / BYTES_PER_MB
    return path.stat().st_size / BYTES_PER_MB


def evaluate_classifier(name: str, model: keras.Model, data: Any, class_names: Sequence[str],
                        out_dir: str | os.PathLike, model_path: str | os.PathLike) -> dict:
    """Evaluate `model` on `data`, write its confusion matrix and report, return a summary row.

    Writes `<name>_confusion.png` and `<name>_classification_report.txt` in `out_dir`. The row
    has model, accuracy, balanced_accuracy (the mean of the per-class recalls), macro_f1,
    params, size_mb (of `model_path`) and latency_ms (CPU, batch 1, per image).
    """
    from sklearn.metrics import classification_report

    out_dir = Path(out_dir)
    y_true, y_pred = predict_labels(model, data)
    # Listing every class keeps the report and matrix complete even if one class is absent.
    class_indices = list(range(len(class_names)))
    report = classification_report(y_true, y_pred, labels=class_indices,
                                   target_names=list(class_names), digits=4, zero_division=0)
    atomic.write_text(out_dir / f"{name}_classification_report.txt", report)
    plot_confusion(y_true, y_pred, class_names, f"{name} (test)",
                   out_dir / f"{name}_confusion.png")
    return {
        "model": name,
        **scores(y_true, y_pred, len(class_names)),
        "params": int(model.count_params()),
        "size_mb": size_mb(model_path),
        "latency_ms": measure_latency(model, model.input_shape[1:], batch_size=1),
    }


def scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy, balanced accuracy (mean recall over the classes present) and macro-F1."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    if not len(y_true):
        return {"accuracy": float("nan"), "balanced_accuracy": float("nan"),
                "macro_f1": float("nan")}
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(range(num_classes)),
                                   average="macro", zero_division=0)),
    }


def chance_row(y_true: np.ndarray, num_classes: int) -> dict:
    """What always answering the test split's most frequent class scores: on an imbalanced
    folder, accuracy alone can fall below it while balanced accuracy rises."""
    majority = np.bincount(y_true, minlength=num_classes).argmax()
    return {"model": "always the majority class",
            **scores(y_true, np.full_like(y_true, majority), num_classes)}


def comparison_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The comparison as a Markdown table."""
    return markdown_table(rows, COMPARISON_COLUMNS)


def write_comparison(rows: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike) -> str:
    """Write `comparison.csv` and `comparison.md` in `out_dir`; return the Markdown table."""
    out_dir = Path(out_dir)
    frame = pd.DataFrame(list(rows))
    known = [key for key, _, _ in COMPARISON_COLUMNS if key in frame.columns]
    frame = frame[known + [column for column in frame.columns if column not in known]]
    atomic.write_csv(frame, out_dir / "comparison.csv")
    table = comparison_table(rows)
    atomic.write_text(out_dir / "comparison.md", table + "\n")
    return table


def add_to_comparison(rows: Sequence[Mapping], reports_dir: str | os.PathLike) -> str:
    """The comparison table with `rows` added; earlier rows of the same names replaced."""
    path = Path(reports_dir) / "comparison.csv"
    earlier = pd.read_csv(path).to_dict("records") if path.exists() else []
    new_names = {row["model"] for row in rows}
    kept = [row for row in earlier if row["model"] not in new_names]
    return write_comparison(kept + list(rows), reports_dir)
