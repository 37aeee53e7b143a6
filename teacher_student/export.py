"""Deployable copies of a trained model, each checked against the Keras model it came from.

`export_model` writes, for a model named e.g. `student_distilled`:

    student_distilled.keras             Keras, float32; outputs logits
    student_distilled_savedmodel/       TensorFlow SavedModel; `serve` outputs probabilities
    student_distilled_float32.tflite    TFLite, float32; outputs probabilities
    student_distilled_float16.tflite    TFLite, float16 weights; outputs probabilities
    student_distilled_int8.tflite       TFLite, full-integer (int8 weights and activations)
    student_distilled_meta.json         class names, the input expected, each file's output

Every format takes what the Keras model takes: uint8 images [B, H, W, C], pixels 0..255,
normalised inside the model. The int8 model keeps that uint8 input: TFLite casts it to float and
quantises it as its first two ops, so callers feed the same pixels to every format. Its
probabilities come out of an int8 softmax (steps of 1/256), dequantised to float32.

Exports are made from a float32 copy of the model: a mixed-precision model's float16 ops are not
TFLite builtins (the converter refuses them), and CPUs run float32 faster anyway.

`verify_export` runs an export over the test images and reports its top-1 agreement with the
Keras model, the largest probability difference, accuracy, size and CPU latency (batch 1).
`export_run` does all of it for a run directory; `classify_files` serves the `predict` command.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from teacher_student import config as config_module
from teacher_student import data as data_module
from teacher_student import files, phases, reports

EXPORT_FOLDER = "export"
MODEL_FILES = {"teacher": phases.TEACHER_FILE, "student_distilled": phases.DISTILLED_FILE,
               "student_scratch": phases.SCRATCH_FILE}
DEFAULT_MODELS = ("student_distilled", "student_scratch")  # the first that exists is exported
REPRESENTATIVE_IMAGES = 200  # int8 calibration: enough to see each activation's range
PREDICT_CHUNK = 64  # images decoded and classified together by `predict`
Predictor = Callable[[np.ndarray], np.ndarray]  # uint8 images -> probabilities


@dataclass(frozen=True)
class ExportRecord:
    model_name: str  # "student_distilled"
    format: str  # "keras", "savedmodel", "tflite_float32", "tflite_float16" or "tflite_int8"
    path: Path
    output: str  # "logits" or "probabilities"

    @property
    def label(self) -> str:
        """The comparison table's name for it, e.g. `student_distilled (tflite int8)`."""
        return f"{self.model_name} ({self.format.replace('_', ' ')})"


# ---------------------------------------------------------------------------------------------
# Writing the exports.

def float32_copy(model: keras.Model) -> keras.Model:
    """The same functional model computing in float32 throughout; its `CastTo` layers become
    float32 no-ops. Variables are float32 under every policy, so the weights copy as they are."""
    def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        layer_config = layer.get_config()
        layer_config["dtype"] = "float32"
        if "target_dtype" in layer_config:
            layer_config["target_dtype"] = "float32"
        return layer.__class__.from_config(layer_config)

    copy = keras.models.clone_model(model, clone_function=clone_layer)
    copy.set_weights(model.get_weights())
    return copy


def with_probabilities(model: keras.Model) -> keras.Model:
    """`model` followed by a softmax: deployed models answer with probabilities."""
    images = keras.Input(model.input_shape[1:], dtype="uint8", name="image")
    probabilities = keras.layers.Softmax(name="probabilities")(model(images))
    return keras.Model(images, probabilities, name=f"{model.name}_probabilities")


def export_model(model: keras.Model, out_dir: Path, name: str, class_names: Sequence[str],
                 image_size: int, channels: int,
                 representative: np.ndarray) -> list[ExportRecord]:
    """Writes every format of `model` and its meta file into `out_dir`.

    `representative` holds real uint8 training images; the int8 conversion calibrates its
    activation ranges on them.
    """
    out_dir = Path(out_dir)
    deployable = float32_copy(model)
    keras_path = files.save_model(deployable, out_dir / f"{name}.keras")
    saved_model = _write_saved_model(with_probabilities(deployable),
                                     out_dir / f"{name}_savedmodel")
    records = [ExportRecord(name, "keras", keras_path, "logits"),
               ExportRecord(name, "savedmodel", saved_model, "probabilities")]
    for kind in ("float32", "float16", "int8"):
        path = out_dir / f"{name}_{kind}.tflite"
        tflite = convert_to_tflite(saved_model, kind, representative)
        files.replace_atomically(path, lambda tmp, content=tflite: Path(tmp).write_bytes(content))
        records.append(ExportRecord(name, f"tflite_{kind}", path, "probabilities"))
    write_meta(out_dir / f"{name}_meta.json", name, records, class_names, image_size, channels)
    return records


def _write_saved_model(model: keras.Model, path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return files.publish_directory(
        lambda tmp: model.export(str(tmp), format="tf_saved_model", verbose=False), path)


def convert_to_tflite(saved_model: Path, kind: str, representative: np.ndarray) -> bytes:
    """TFLite flatbuffer of the SavedModel: "float32", "float16" (weights) or "int8" (all)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if kind == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif kind == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in representative)
        # Only int8 kernels: the conversion fails rather than leaving float ops in silently.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif kind != "float32":
        raise ValueError(f"TFLite kind must be float32, float16 or int8, got {kind!r}")
    return converter.convert()


def write_meta(path: Path, name: str, records: Sequence[ExportRecord],
               class_names: Sequence[str], image_size: int, channels: int) -> Path:
    """What a user of any of the files needs: classes in output order and the input expected."""
    return files.write_json(path, {
        "model": name,
        "class_names": list(class_names),
        "image_size": image_size,
        "channels": channels,
        "input_dtype": "uint8",
        "input_shape": [None, image_size, image_size, channels],
        "normalisation": "inside the model (pixels 0..255)",
        "preprocessing": (f"decode, drop any alpha channel, convert to "
                          f"{'RGB' if channels == 3 else 'grayscale'}, resize to "
                          f"{image_size}x{image_size} (bilinear, antialiased), round to uint8 "
                          "(teacher_student.data.load_image)"),
        "formats": {record.format: {"file": record.path.name, "output": record.output}
                    for record in records},
    })


# ---------------------------------------------------------------------------------------------
# Running the exports.

def load_predictor(path: Path, output: str) -> Predictor:
    """A function from uint8 images to probabilities for any exported file or folder."""
    path = Path(path)
    if path.suffix == ".tflite":
        run = _tflite_runner(path)
    elif path.suffix == ".keras":
        model = keras.saving.load_model(path, safe_mode=True)
        # The compiled predict function: an eager call costs milliseconds of Python per batch.
        run = lambda images: keras.ops.convert_to_numpy(model.predict_on_batch(images))
    elif (path / "saved_model.pb").exists():
        loaded = tf.saved_model.load(str(path))  # kept: `serve` needs its variables alive
        run = lambda images: loaded.serve(tf.constant(images)).numpy()
    else:
        raise SystemExit(f"{path}: not a .keras file, a .tflite file or a SavedModel folder")
    if output == "logits":
        return lambda images: _softmax(run(images))
    return lambda images: np.asarray(run(images), dtype=np.float32)


def tflite_interpreter(path: Path):
    """LiteRT's interpreter where it is installed, else TensorFlow's (deprecated, still works)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite's deprecation notice, on every construction
        interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    return interpreter


def _tflite_runner(path: Path) -> Predictor:
    """Runs a TFLite model one image at a time (its input is [1, H, W, C])."""
    interpreter = tflite_interpreter(path)
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]

    def run(images: np.ndarray) -> np.ndarray:
        outputs = []
        for image in images:
            interpreter.set_tensor(source, image[None])
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(target)[0].copy())
        return np.stack(outputs)

    return run


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)


def predict_in_chunks(predictor: Predictor, images: np.ndarray,
                      chunk: int = reports.PREDICT_BATCH_SIZE) -> np.ndarray:
    parts = [predictor(images[start:start + chunk]) for start in range(0, len(images), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def latency_ms(predictor: Predictor, image: np.ndarray, repeats: int = 30,
               warmup: int = 3) -> float:
    """Median milliseconds for one image (batch 1); warm-up calls are not timed."""
    batch = image[None]
    for _ in range(warmup):
        predictor(batch)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor(batch)
        timings.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(timings))


def size_mb(path: Path) -> float:
    """Size on disk of a file, or of everything in a folder."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / reports.BYTES_PER_MB
    return path.stat().st_size / reports.BYTES_PER_MB


def verify_export(record: ExportRecord, keras_model: keras.Model, test_images: np.ndarray,
                  test_labels: np.ndarray) -> dict:
    """The export against the Keras model on the test images: a comparison-table row with
    agreement (fraction of equal top-1 classes) and max_prob_diff added."""
    from sklearn.metrics import f1_score

    logits = predict_in_chunks(
        lambda images: keras.ops.convert_to_numpy(keras_model(images, training=False)),
        test_images)
    expected = _softmax(logits)
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
        "size_mb": size_mb(record.path),
        "latency_ms": latency_ms(predictor, test_images[0]),
        "agreement": float(np.mean(predicted == expected.argmax(axis=-1))),
        "max_prob_diff": float(np.abs(got - expected).max()),
        "path": str(record.path),
    }


# ---------------------------------------------------------------------------------------------
# The `export` command: a run directory's models, exported, checked and compared.

def export_run(run_dir: Path, which: Sequence[str] | None = None,
               out_dir: Path | None = None) -> str:
    """Exports the chosen models of a run, writes exports.csv/.md and adds the rows to the
    run's comparison table; returns the Markdown table of the exports."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / EXPORT_FOLDER
    names = list(which or [_default_model(run_dir)])
    missing = [str(run_dir / MODEL_FILES[name]) for name in names
               if not (run_dir / MODEL_FILES[name]).exists()]
    if missing:  # before any work: exporting a teacher takes a while
        raise SystemExit(f"not found: {', '.join(missing)}")
    settings = config_module.load(run_dir / "config.yaml").data
    split = pd.read_csv(run_dir / "split.csv")
    class_names = _class_names(split)
    test_images, test_labels = load_split_images(split, "test", settings.image_size,
                                                 settings.channels)
    train = split[split["split"] == "train"]
    sample = train.sample(n=min(REPRESENTATIVE_IMAGES, len(train)), random_state=0)
    representative, _ = load_split_images(sample, "train", settings.image_size,
                                          settings.channels)
    rows = []
    for name in names:
        model = keras.saving.load_model(run_dir / MODEL_FILES[name], safe_mode=True)
        records = export_model(model, out_dir, name, class_names, settings.image_size,
                               settings.channels, representative)
        rows += [verify_export(record, model, test_images, test_labels) for record in records]
    table = exports_table(rows)
    files.replace_atomically(out_dir / "exports.csv",
                             lambda tmp: pd.DataFrame(rows).to_csv(tmp, index=False))
    files.write_text(out_dir / "exports.md", table + "\n")
    add_to_comparison(rows, run_dir / "reports")
    return table


def _class_names(split: pd.DataFrame) -> list[str]:
    by_label = split.drop_duplicates("label").sort_values("label")
    return [str(name) for name in by_label["class_name"]]


def load_split_images(split: pd.DataFrame, name: str, image_size: int,
                      channels: int) -> tuple[np.ndarray, np.ndarray]:
    """All uint8 images and int labels of one split of a split.csv table."""
    rows = split[split["split"] == name]
    dataset = data_module.make_dataset(
        tuple(rows["path"]), tuple(int(label) for label in rows["label"]),
        image_size=image_size, channels=channels, batch_size=reports.PREDICT_BATCH_SIZE,
        training=False, cache=False)
    images = np.zeros((0, image_size, image_size, channels), dtype=np.uint8)
    labels = np.zeros(0, dtype=np.int32)
    for batch_images, batch_labels in dataset:
        images = np.concatenate([images, batch_images.numpy()])
        labels = np.concatenate([labels, batch_labels.numpy()])
    return images, labels


def _default_model(run_dir: Path) -> str:
    for name in DEFAULT_MODELS:
        if (run_dir / MODEL_FILES[name]).exists():
            return name
    raise SystemExit(f"no student in {run_dir}: run distill with this --run-dir first")


def exports_table(rows: Sequence[dict]) -> str:
    """Markdown: format, size, agreement with Keras, max probability difference, accuracy,
    latency."""
    lines = ["| export | size (MB) | agreement | max prob diff | accuracy | latency (ms/img) |",
             "| :--- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {row['model']} | {row['size_mb']:.3f} | {100 * row['agreement']:.2f}% "
              f"| {row['max_prob_diff']:.2e} | {100 * row['accuracy']:.2f}% "
              f"| {row['latency_ms']:.3f} |" for row in rows]
    return "\n".join(lines)


def add_to_comparison(rows: Sequence[dict], reports_dir: Path) -> str:
    """The run's comparison table with `rows` added; earlier rows of the same names replaced."""
    path = Path(reports_dir) / "comparison.csv"
    earlier = pd.read_csv(path).to_dict("records") if path.exists() else []
    new_names = {row["model"] for row in rows}
    kept = [row for row in earlier if row["model"] not in new_names]
    return reports.write_comparison(kept + list(rows), reports_dir)


# ---------------------------------------------------------------------------------------------
# The `predict` command.

@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class name, probability), most likely first


def read_meta(model_path: Path) -> tuple[dict, str]:
    """The `*_meta.json` beside `model_path` that lists it, and that file's output kind."""
    model_path = Path(model_path)
    for meta_path in sorted(model_path.parent.glob("*_meta.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        for entry in meta.get("formats", {}).values():
            if entry["file"] == model_path.name:
                return meta, entry["output"]
    raise SystemExit(f"{model_path}: no *_meta.json beside it lists this file; "
                     "use a file written by the export command")


def image_files(input_path: Path) -> list[Path]:
    """`input_path` itself, or every image under the folder (recursively), sorted."""
    input_path = Path(input_path)
    if input_path.is_file():
        return [input_path]
    if input_path.is_dir():
        return sorted(p for p in input_path.rglob("*")
                      if p.is_file() and p.suffix.lower() in data_module.IMAGE_EXTENSIONS)
    raise SystemExit(f"{input_path}: no such file or folder")


def classify_files(model_path: Path, paths: Sequence[Path],
                   top: int = 1) -> Iterator[Prediction | tuple[str, str]]:
    """A `Prediction` per decodable file and a (path, reason) pair per file that is not."""
    if top < 1:
        raise SystemExit(f"--top must be at least 1, got {top}")
    meta, output = read_meta(model_path)
    predictor = load_predictor(Path(model_path), output)
    class_names = meta["class_names"]
    for start in range(0, len(paths), PREDICT_CHUNK):
        images, decoded = [], []
        for path in paths[start:start + PREDICT_CHUNK]:
            problem = data_module.decode_problem(str(path))
            if problem:
                yield str(path), problem
                continue
            images.append(data_module.load_image(tf.constant(str(path)), meta["image_size"],
                                                 meta["channels"]).numpy())
            decoded.append(str(path))
        if images:
            for path, probabilities in zip(decoded, predictor(np.stack(images))):
                best = np.argsort(probabilities)[::-1][:top]
                yield Prediction(path, [(class_names[i], float(probabilities[i])) for i in best])


def format_prediction(prediction: Prediction) -> str:
    """`path<TAB>class<TAB>probability`, then further class/probability pairs for --top."""
    cells = [prediction.path]
    for class_name, probability in prediction.top:
        cells += [class_name, f"{probability:.4f}"]
    return "\t".join(cells)

