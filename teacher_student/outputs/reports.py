"""Test-set evaluation and the model comparison table.

Models output logits; predictions are their argmax, probabilities their softmax. Each model's
row holds accuracy, balanced accuracy, macro-F1, calibration (ECE), its agreement with the
teacher and KL divergence from it (metrics.py), its size, and its CPU latency (latency.py,
measured in a fresh process). Only numpy, pandas and keras are imported at module level (no
TensorFlow, so this also runs on the JAX backend); sklearn.metrics is imported inside the
functions that need it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from teacher_student import atomic
from teacher_student.data.batches import PADDING
from teacher_student.outputs import metrics
from teacher_student.outputs.model_plots import plot_accuracy_latency, plot_confusion
from teacher_student.tables import markdown_table

PERCENT = lambda value: f"{100 * value:.2f}%"  # noqa: E731
COMPARISON_COLUMNS = [
    ("model", "model", ""),
    ("accuracy", "accuracy", PERCENT),
    ("balanced_accuracy", "balanced accuracy", PERCENT),
    ("macro_f1", "macro-F1", ".4f"),
    ("ece", "ECE", ".3f"),
    ("teacher_agreement", "agrees with teacher", PERCENT),
    ("teacher_kl", "KL from teacher", ".3f"),
    ("params", "params", ","),
    ("size_mb", "size (MB)", ".2f"),
    ("latency_ms", "CPU ms/img", ".3f"),
    ("latency_iqr_ms", "IQR", ".3f"),
    ("tflite_latency_ms", "TFLite CPU ms/img", ".3f"),
]
PREDICT_BATCH_SIZE = 256  # chunk size when `data` is a pair of whole arrays
BYTES_PER_MB = 1024 * 1024
TOP_CONFUSIONS = 20


@dataclass(frozen=True)
class Evaluation:
    """A model on the test split: its comparison row, the labels and its probabilities."""
    row: dict
    labels: np.ndarray
    probabilities: np.ndarray


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


def predict_probabilities(model: keras.Model, data: Any) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities [N, classes]) for `data`: a tuple (x, y) of numpy arrays or an
    iterable of (images, labels) batches such as a tf.data.Dataset or a list of array pairs."""
    true_parts: list[np.ndarray] = []
    parts: list[np.ndarray] = []
    for images, labels in _batches(data):
        logits = keras.ops.convert_to_numpy(model.predict_on_batch(images))
        labels = _as_class_indices(labels)
        real = labels != PADDING  # what only filled a batch for several replicas
        parts.append(metrics.softmax(np.asarray(logits, dtype=np.float32))[real])
        true_parts.append(labels[real])
    if not true_parts:
        classes = model.output_shape[-1]
        return np.zeros(0, dtype=np.int64), np.zeros((0, classes), dtype=np.float32)
    return np.concatenate(true_parts), np.concatenate(parts)


def predict_labels(model: keras.Model, data: Any) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) class indices for `data` (as `predict_probabilities` takes it)."""
    labels, probabilities = predict_probabilities(model, data)
    return labels, probabilities.argmax(axis=-1).astype(np.int64)


def size_mb(path: str | os.PathLike | Sequence[str | os.PathLike]) -> float:
    """Size on disk of a file, or of everything in a folder (a SavedModel); of several (an
    ensemble's), their sum."""
    if isinstance(path, (list, tuple)):
        return sum(size_mb(one) for one in path)
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / BYTES_PER_MB
    return path.stat().st_size / BYTES_PER_MB


def evaluate_classifier(name: str, model: keras.Model, data: Any, class_names: Sequence[str],
                        out_dir: str | os.PathLike,
                        model_path: str | os.PathLike | Sequence[str | os.PathLike]
                        ) -> Evaluation:
    """Evaluate `model` on `data`, write its confusion matrix and reports, return its row.

    Writes in `out_dir`: `<name>_confusion.png` (normalised), `<name>_classification_report.txt`
    and `<name>_top_confusions.csv`/`.md` (its most frequent mistakes). The row has model,
    accuracy, balanced_accuracy (the mean of the per-class recalls), macro_f1, ece (15 bins),
    params and size_mb (of `model_path`); latency is measured apart (latency.py).
    """
    from sklearn.metrics import classification_report

    out_dir = Path(out_dir)
    y_true, probabilities = predict_probabilities(model, data)
    y_pred = probabilities.argmax(axis=-1)
    # Listing every class keeps the report and matrix complete even if one class is absent.
    class_indices = list(range(len(class_names)))
    report = classification_report(y_true, y_pred, labels=class_indices,
                                   target_names=list(class_names), digits=4, zero_division=0)
    atomic.write_text(out_dir / f"{name}_classification_report.txt", report)
    plot_confusion(y_true, y_pred, class_names, f"{name} (test)",
                   out_dir / f"{name}_confusion.png")
    write_top_confusions(metrics.top_confusions(y_true, y_pred, class_names, TOP_CONFUSIONS),
                         out_dir / f"{name}_top_confusions")
    row = {
        "model": name,
        **scores(y_true, y_pred, len(class_names)),
        "ece": metrics.expected_calibration_error(probabilities, y_true),
        "params": int(model.count_params()),
        "size_mb": size_mb(model_path),
    }
    return Evaluation(row, y_true, probabilities)


def write_top_confusions(frame: pd.DataFrame, stem: Path) -> str:
    """`<stem>.csv` and `<stem>.md` of a `metrics.top_confusions` table; the Markdown."""
    atomic.write_csv(frame, stem.with_suffix(".csv"))
    table = markdown_table(frame.to_dict("records"), [
        ("true", "true class", ""), ("predicted", "answered", ""), ("images", "images", "d"),
        ("share_of_true_class", "share of the true class", PERCENT)]) if len(frame) else \
        "no mistakes on the test split"
    atomic.write_text(stem.with_suffix(".md"), table + "\n")
    return table


def with_teacher_agreement(evaluations: Mapping[str, Evaluation],
                           teacher: str = "teacher") -> list[dict]:
    """The rows of `evaluations`, each but the teacher's with its top-1 agreement with the
    teacher (`teacher_agreement`) and mean KL(teacher || model) (`teacher_kl`)."""
    reference = evaluations.get(teacher)
    rows = []
    for name, evaluation in evaluations.items():
        row = dict(evaluation.row)
        if reference is not None and name != teacher:
            row["teacher_agreement"] = metrics.agreement(reference.probabilities,
                                                         evaluation.probabilities)
            row["teacher_kl"] = metrics.mean_kl(reference.probabilities,
                                                evaluation.probabilities)
        rows.append(row)
    return rows


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
    """The comparison as a Markdown table, and a line under it naming the CPU of the latency
    columns when they were measured."""
    table = markdown_table(rows, COMPARISON_COLUMNS)
    device = next((row["latency_device"] for row in rows
                   if isinstance(row.get("latency_device"), str)), None)
    if device:
        table += (f"\n\nCPU ms/img: latency per image, batch 1, one thread, on the CPU "
                  f"({device}), measured in a fresh process with no GPU visible (median; IQR: "
                  "the interquartile range of the calls). TFLite: the model converted to "
                  "float32 TFLite.")
    return table


def write_comparison(rows: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike,
                     notes: Sequence[str] = ()) -> str:
    """Write `comparison.csv`, `comparison.md` (with `notes` below the table) and
    `accuracy_vs_latency.png` in `out_dir`; return the Markdown table."""
    out_dir = Path(out_dir)
    frame = pd.DataFrame(list(rows))
    known = [key for key, _, _ in COMPARISON_COLUMNS if key in frame.columns]
    frame = frame[known + [column for column in frame.columns if column not in known]]
    atomic.write_csv(frame, out_dir / "comparison.csv")
    table = "\n\n".join([comparison_table(rows), *notes])
    atomic.write_text(out_dir / "comparison.md", table + "\n")
    device = next((row["latency_device"] for row in rows
                   if isinstance(row.get("latency_device"), str)), None)
    plot_accuracy_latency(rows, device, out_dir / "accuracy_vs_latency.png")
    return table


def add_to_comparison(rows: Sequence[Mapping], reports_dir: str | os.PathLike) -> str:
    """The comparison table with `rows` added; earlier rows of the same names replaced."""
    path = Path(reports_dir) / "comparison.csv"
    earlier = pd.read_csv(path).to_dict("records") if path.exists() else []
    for row in earlier:  # a column with a gap ("-") reads back as floats: 16859 as 16,859.0
        if isinstance(row.get("params"), float) and row["params"].is_integer():
            row["params"] = int(row["params"])
    new_names = {row["model"] for row in rows}
    kept = [row for row in earlier if row["model"] not in new_names]
    return write_comparison(kept + list(rows), reports_dir)
