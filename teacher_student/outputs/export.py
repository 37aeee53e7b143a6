"""Deployable copies of a trained model, each checked against the Keras model it came from.

`export_model` writes, for a model named e.g. `student_distilled`:

    student_distilled.keras             Keras, float32; outputs probabilities
    student_distilled_savedmodel/       TensorFlow SavedModel; `serve` outputs probabilities
    student_distilled_float32.tflite    TFLite, float32; outputs probabilities
    student_distilled_float16.tflite    TFLite, float16 weights; outputs probabilities
    student_distilled_int8.tflite       TFLite, full-integer (int8 weights and activations)
    student_distilled.onnx              ONNX, float32, where tf2onnx and onnxruntime are
                                        installed (else one line says what to install)
    student_distilled_meta.json         class names, the input expected, each file's output

Every format takes what the Keras model takes: uint8 images [B, H, W, C], pixels 0..255,
normalised inside the model, and answers what a user wants from any of them: probabilities (the
run's own `.keras` models, which training and evaluation read, keep their logits). The int8
model keeps that uint8 input: TFLite casts it to float and quantises it as its first two ops, so
callers feed the same pixels to every format. Its probabilities come out of an int8 softmax
(steps of 1/256), dequantised to float32.

Exports are made from a float32 copy of the model: a mixed-precision model's float16 ops are not
TFLite builtins (the converter refuses them), and CPUs run float32 faster anyway. Each format's
conversion is convert.py's.

`verify_export` runs an export over the test images and reports its top-1 agreement with the
Keras model, the largest probability difference, accuracy, calibration and size; `export_run`
does all of it for a run directory, and times every file on the CPU, batch 1, in a fresh
process (latency.py). The meta file keeps the digest of the model exported: exporting the same
model again (a resumed session) checks the files it wrote and keeps them, so their latencies,
kept by digest, are not measured twice. Running the files is `predict.py`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from teacher_student import atomic
from teacher_student import config as config_module
from teacher_student.data.images import decode_all
from teacher_student.errors import RunDirError
from teacher_student.hardware import require_tensorflow
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.outputs import latency, reports
from teacher_student.outputs.convert import (
    convert_to_tflite,
    missing_onnx_packages,
    with_probabilities,
    write_onnx,
    write_saved_model,
)
from teacher_student.outputs.metrics import expected_calibration_error, softmax
from teacher_student.outputs.predict import (
    content_digest,
    load_predictor,
    predict_in_chunks,
)
from teacher_student.run import lock
from teacher_student.run.checkpoints import unreadable_model
from teacher_student.run.directory import DEFAULT_MODELS, RunDir
from teacher_student.tables import markdown_table

TFLITE_KINDS = ("float32", "float16", "int8")
REPRESENTATIVE_IMAGES = 200  # int8 calibration: enough to see each activation's range
EXPORT_COLUMNS = [
    ("model", "export", ""),
    ("size_mb", "size (MB)", ".3f"),
    ("agreement", "agreement", lambda value: f"{100 * value:.2f}%"),
    ("max_prob_diff", "max prob diff", ".2e"),
    ("accuracy", "accuracy", lambda value: f"{100 * value:.2f}%"),
    ("ece", "ECE", ".3f"),
    ("latency_ms", "CPU ms/img", ".3f"),
    ("latency_iqr_ms", "IQR", ".3f"),
]


@dataclass(frozen=True)
class ExportRecord:
    model_name: str  # one of run.directory.MODEL_NAMES
    # "keras", "savedmodel", "tflite_float32", "tflite_float16", "tflite_int8" or "onnx"
    format: str
    path: Path
    output: str  # what the file answers, for its meta file: "probabilities"

    @property
    def label(self) -> str:
        """The comparison table's name for it, e.g. `student_distilled (tflite int8)`."""
        return f"{self.model_name} ({self.format.replace('_', ' ')})"


# ---------------------------------------------------------------------------------------------
# Writing the exports.

def export_model(model: keras.Model, out_dir: Path, name: str, class_names: Sequence[str],
                 image_size: int, channels: int, representative: np.ndarray,
                 source: str | None = None) -> list[ExportRecord]:
    """Writes every format of `model` and its meta file into `out_dir`.

    `representative` holds real uint8 training images; the int8 conversion calibrates its
    activation ranges on them.
    """
    out_dir = Path(out_dir)
    # float32 throughout: its CastTo layers become no-ops; variables are float32 already. Every
    # file answers probabilities, the .keras too.
    deployable = with_probabilities(PrecisionPolicy("float32").rebuild(model))
    keras_path = atomic.save_model(deployable, out_dir / f"{name}.keras")
    saved_model = write_saved_model(deployable, out_dir / f"{name}_savedmodel")
    records = [ExportRecord(name, "keras", keras_path, "probabilities"),
               ExportRecord(name, "savedmodel", saved_model, "probabilities")]
    for kind in TFLITE_KINDS:
        path = out_dir / f"{name}_{kind}.tflite"
        tflite = convert_to_tflite(saved_model, kind, representative)
        atomic.write_bytes(path, tflite)
        records.append(ExportRecord(name, f"tflite_{kind}", path, "probabilities"))
    missing = missing_onnx_packages()
    if missing:
        print(f"ONNX: not written, {' and '.join(missing)} not installed here: pip install "
              f"{' '.join(missing)} (Keras writes ONNX through tf2onnx on TensorFlow; "
              "onnxruntime checks it)")
    else:
        onnx = write_onnx(deployable, out_dir / f"{name}.onnx")
        records.append(ExportRecord(name, "onnx", onnx, "probabilities"))
    write_meta(out_dir / f"{name}_meta.json", name, records, class_names, image_size, channels,
               source)
    return records


def kept_exports(out_dir: Path, name: str, source: str) -> list[ExportRecord] | None:
    """The exports of `name` already in `out_dir`, when its meta file says they were made from
    the model of digest `source`, every file is as written, and every format is there (ONNX
    where its packages are installed); else None."""
    try:
        meta = json.loads((Path(out_dir) / f"{name}_meta.json").read_text())
    except (OSError, ValueError):
        return None
    formats = meta.get("formats", {})
    order = ["keras", "savedmodel", *(f"tflite_{kind}" for kind in TFLITE_KINDS), "onnx"]
    wanted = set(order[:-1] if missing_onnx_packages() else order)
    if meta.get("source_sha256") != source or not wanted <= set(formats):
        return None
    records = [ExportRecord(name, kind, Path(out_dir) / formats[kind]["file"],
                            formats[kind]["output"]) for kind in order if kind in formats]
    if any(not record.path.exists() or content_digest(record.path) != formats[record.format]
           ["sha256"] for record in records):
        return None
    return records


def write_meta(path: Path, name: str, records: Sequence[ExportRecord],
               class_names: Sequence[str], image_size: int, channels: int,
               source: str | None = None) -> Path:
    """What a user of any of the files needs: classes in output order and the input expected."""
    return atomic.write_json(path, {
        "model": name,
        "source_sha256": source,  # the digest of the model file exported
        "class_names": list(class_names),
        "image_size": image_size,
        "channels": channels,
        "input_dtype": "uint8",
        "input_shape": [None, image_size, image_size, channels],
        "normalisation": "inside the model (pixels 0..255)",
        "preprocessing": (f"decode, drop any alpha channel, convert to "
                          f"{'RGB' if channels == 3 else 'grayscale'}, resize to "
                          f"{image_size}x{image_size} (area when shrinking, bilinear when "
                          "enlarging), round to uint8 (teacher_student.data.decode)"),
        # The digest lets `predict` refuse a file damaged since (a cut-short copy would crash
        # TFLite's interpreter, not fail).
        "formats": {record.format: {"file": record.path.name, "output": record.output,
                                    "sha256": content_digest(record.path)}
                    for record in records},
    })


# ---------------------------------------------------------------------------------------------
# Running the exports.

def verify_export(record: ExportRecord, keras_model: keras.Model, test_images: np.ndarray,
                  test_labels: np.ndarray) -> dict:
    """The export against the Keras model on the test images: a comparison-table row with
    agreement (fraction of equal top-1 classes) and max_prob_diff added."""
    from sklearn.metrics import f1_score

    logits = predict_in_chunks(
        lambda images: keras.ops.convert_to_numpy(keras_model(images, training=False)),
        test_images)
    expected = softmax(logits)
    predictor = load_predictor(record.path, record.output)
    got = predict_in_chunks(predictor, test_images)
    predicted = got.argmax(axis=-1)
    labels = np.asarray(test_labels)
    return {
        "model": record.label,
        "format": record.format,
        "accuracy": float(np.mean(predicted == labels)),
        "macro_f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
        "params": int(keras_model.count_params()),
        "size_mb": reports.size_mb(record.path),
        "ece": expected_calibration_error(got, labels),
        "agreement": float(np.mean(predicted == expected.argmax(axis=-1))),
        "max_prob_diff": float(np.abs(got - expected).max()),
        "path": str(record.path),
    }


# ---------------------------------------------------------------------------------------------
# The `export` command: a run directory's models, exported, checked and compared.

def export_run(run_dir: RunDir, which: Sequence[str] | None = None,
               out_dir: Path | None = None) -> str:
    """Exports the chosen models of a run, writes exports.csv/.md and adds the rows to the
    run's comparison table, under the run's lock; returns the Markdown table of the exports."""
    require_tensorflow("export (SavedModel and TFLite files)")
    with lock.hold(run_dir.path):
        return _export_run(run_dir, which, Path(out_dir) if out_dir else run_dir.export_dir)


def _export_run(run_dir: RunDir, which: Sequence[str] | None, out_dir: Path) -> str:
    names = list(which or [_default_model(run_dir)])
    missing = [str(run_dir.model_file(name)) for name in names
               if not run_dir.model_file(name).exists()]
    if missing:  # before any work: exporting a teacher takes a while
        raise RunDirError(f"not found: {', '.join(missing)}")
    for name in names:
        if why := unreadable_model(run_dir.model_file(name)):
            raise RunDirError(f"{run_dir.model_file(name)} cannot be read ({why}): `evaluate` "
                              "with this --run-dir rebuilds it from its checkpoints")
    settings = config_module.load(run_dir.config_file).data
    split = run_dir.read_split()
    class_names = run_dir.class_names()
    test_images, test_labels = load_split_images(split, "test", settings.image_size,
                                                 settings.channels)
    train = split[split["split"] == "train"]
    sample = train.sample(n=min(REPRESENTATIVE_IMAGES, len(train)), random_state=0)
    representative, _ = load_split_images(sample, "train", settings.image_size,
                                          settings.channels)
    rows, paths = [], []
    for name in names:
        model = keras.saving.load_model(run_dir.model_file(name), safe_mode=True)
        source = content_digest(run_dir.model_file(name))
        records = kept_exports(out_dir, name, source)
        if records is not None:
            print(f"{name}: exported before from the same model, the files kept")
        else:
            records = export_model(model, out_dir, name, class_names, settings.image_size,
                                   settings.channels, representative, source)
        rows += [verify_export(record, model, test_images, test_labels) for record in records]
        paths += [record.path for record in records]
    # Batch 1 on the CPU, in a fresh process: what a deployment runs per image (latency.py).
    cpu = latency.measure_once(paths, out_dir / "latency.json")
    rows = [{**row, **cpu.columns(row["path"])} for row in rows]
    table = markdown_table(rows, EXPORT_COLUMNS)
    atomic.write_csv(pd.DataFrame(rows), out_dir / "exports.csv")
    atomic.write_text(out_dir / "exports.md", table + "\n")
    reports.add_to_comparison(rows, run_dir.reports)
    return table


def load_split_images(split: pd.DataFrame, name: str, image_size: int,
                      channels: int) -> tuple[np.ndarray, np.ndarray]:
    """All uint8 images and int labels of one split of a split.csv table."""
    rows = split[split["split"] == name]
    decoded = decode_all(list(rows["path"]), image_size, channels, cache="memory")
    return decoded.pixels, rows["label"].to_numpy(dtype=np.int32)


def _default_model(run_dir: RunDir) -> str:
    for name in DEFAULT_MODELS:
        if run_dir.model_file(name).exists():
            return name
    raise RunDirError(f"no student in {run_dir.path}: run distill with this --run-dir first")
