"""Running any exported file: a predictor from uint8 images to probabilities for a `.keras`,
`.tflite`, `.onnx` or SavedModel export, and the meta file that says what it takes and answers.
(The `predict` command that classifies image files with one: commands.py, the model it asks
classifier.py, the CSV it writes predictions.py.)

Every format `export` writes answers probabilities. A `.keras` file says itself what it answers
(convert.answers_probabilities): an export, probabilities; a run's own model, or an export of an
earlier version, logits, turned into probabilities here. A `.keras` file runs on every backend;
`.tflite` and SavedModel files need TensorFlow, `.onnx` files onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from teacher_student.errors import UserError
from teacher_student.hardware import require_tensorflow

# Our `.keras` files hold our registered layers (models/layers.py, models/structure.py), which
# `load_model` must find: importing the precision policy registers them all.
from teacher_student.models import precision  # noqa: F401
from teacher_student.outputs.convert import answers_probabilities
from teacher_student.outputs.metrics import softmax
from teacher_student.outputs.reports import PREDICT_BATCH_SIZE
from teacher_student.quiet import native_stderr_silenced

Predictor = Callable[[np.ndarray], np.ndarray]  # uint8 images -> probabilities


def load_predictor(path: Path, output: str, threads: int | None = None) -> Predictor:
    """A function from uint8 images to probabilities for any exported file or folder, or a
    run's `.keras`. `output` is what the file answers, "logits" or "probabilities" (its meta
    file says); a `.keras` file says it itself. A file that cannot be read (cut short,
    damaged) is an error naming it. `threads` sets a TFLite or ONNX model's threads (None: the
    runtime's default)."""
    path = Path(path)
    try:
        run, answers = _runner(path, threads)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever the format's loader raises
        raise UserError(f"{path} cannot be read ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}): export it "
                        "again") from err
    if (answers or output) == "logits":
        return lambda images: softmax(run(images))
    return lambda images: np.asarray(run(images), dtype=np.float32)


def with_mirror(predictor: Predictor) -> Predictor:
    """Test-time augmentation: each image's probabilities averaged with its left-right
    mirror's. Only for what a mirror leaves the same class (photos; not digits or text)."""
    def averaged(images: np.ndarray) -> np.ndarray:
        mirrored = np.ascontiguousarray(images[:, :, ::-1])  # [B, H, W, C]: W reversed
        return (predictor(images) + predictor(mirrored)) / 2
    return averaged


def _runner(path: Path, threads: int | None = None) -> tuple[Predictor, str | None]:
    """The file's raw answers, and what they are when the file says it (a `.keras`)."""
    if path.suffix == ".keras":
        model = keras.saving.load_model(path, safe_mode=True)
        # The compiled predict function: an eager call costs milliseconds of Python per batch.
        return (lambda images: keras.ops.convert_to_numpy(model.predict_on_batch(images)),
                "probabilities" if answers_probabilities(model) else "logits")
    if path.suffix == ".tflite":
        run = _tflite_runner(path, threads)
    elif path.suffix == ".onnx":
        run = _onnx_runner(path, threads)
    elif (path / "saved_model.pb").exists():
        tf = require_tensorflow("a SavedModel")
        loaded = tf.saved_model.load(str(path))  # kept: `serve` needs its variables alive
        run = lambda images: loaded.serve(tf.constant(images)).numpy()
    else:
        raise UserError(f"{path}: not a .keras, .tflite or .onnx file, or a SavedModel folder")
    return run, None


def tflite_interpreter(path: Path, threads: int | None = None):
    """LiteRT's interpreter where it is installed, else TensorFlow's (deprecated, still works)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = require_tensorflow("a .tflite file").lite.Interpreter
    # tf.lite's deprecation notice, on every construction, and the XNNPACK delegate's line
    with warnings.catch_warnings(), native_stderr_silenced():
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    return interpreter


def _onnx_runner(path: Path, threads: int | None = None) -> Predictor:
    """Runs an ONNX model with onnxruntime on the CPU."""
    try:
        import onnxruntime
    except ImportError as err:
        raise UserError(f"{path}: running an ONNX file needs onnxruntime: pip install "
                        "onnxruntime") from err
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda images: session.run(None, {name: np.asarray(images, dtype=np.uint8)})[0]


def _tflite_runner(path: Path, threads: int | None = None) -> Predictor:
    """Runs a TFLite model one image at a time (its input is [1, H, W, C])."""
    interpreter = tflite_interpreter(path, threads)
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


def predict_in_chunks(predictor: Predictor, images: np.ndarray,
                      chunk: int = PREDICT_BATCH_SIZE) -> np.ndarray:
    parts = [predictor(images[start:start + chunk]) for start in range(0, len(images), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def read_meta(model_path: Path) -> tuple[dict, str]:
    """The `*_meta.json` beside `model_path` that lists it, and that file's output kind; a
    file whose content is not what was exported is an error naming it."""
    found = find_meta(model_path)
    if found is None:
        raise UserError(f"{model_path}: no *_meta.json beside it lists this file; "
                        "use a file written by the export command")
    return found


def find_meta(model_path: Path) -> tuple[dict, str] | None:
    """`read_meta`, or None when no `*_meta.json` beside `model_path` lists it."""
    model_path = Path(model_path)
    for meta_path in sorted(model_path.parent.glob("*_meta.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        for entry in meta.get("formats", {}).values():
            if entry["file"] == model_path.name:
                if entry.get("sha256") not in (None, content_digest(model_path)):
                    raise UserError(f"{model_path} cannot be read: it is not the file that was "
                                    f"exported (damaged or cut short since; {meta_path.name} "
                                    "holds its digest): export it again")
                return meta, entry["output"]
    return None


def content_digest(path: Path) -> str:
    """SHA-256 of a file, or of every file of a folder (a SavedModel) with its name."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() \
        else [Path(path)]
    for file in files:
        digest.update(str(file.relative_to(path) if file != Path(path) else "").encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()
