"""A Keras model turned into each deployable format: a TensorFlow SavedModel, a TFLite
flatbuffer (float32, float16 weights, or full-integer int8) and an ONNX file.

Every exported file answers probabilities (`with_probabilities`), its `.keras` too; the run's own
`.keras` models answer logits, which training and evaluation read. The SavedModel is what the
TFLite converter reads. `export.py` writes and checks every format of a
run's model; `latency.py` converts a `.keras` file to TFLite here to time it as deployed.
"""

from __future__ import annotations

import importlib.util
import shutil
import warnings
from pathlib import Path

import keras
import numpy as np

from teacher_student import atomic
from teacher_student.hardware import require_tensorflow
from teacher_student.quiet import native_stderr_silenced

ONNX_PACKAGES = {"tf2onnx": "tf2onnx", "onnx": "onnx", "onnxruntime": "onnxruntime"}


PROBABILITIES = "probabilities"  # the softmax layer's name: what marks a model that answers them


def with_probabilities(model: keras.Model) -> keras.Model:
    """`model` followed by a softmax: deployed models answer with probabilities. A model that
    answers them already is returned as it is (a second softmax would flatten them)."""
    if answers_probabilities(model):
        return model
    images = keras.Input(model.input_shape[1:], dtype="uint8", name="image")
    probabilities = keras.layers.Softmax(name=PROBABILITIES)(model(images))
    return keras.Model(images, probabilities, name=f"{model.name}_probabilities")


def answers_probabilities(model: keras.Model) -> bool:
    """Whether `model` ends in `with_probabilities`' softmax (an exported `.keras`), rather than
    in logits (a run's own models)."""
    last = model.layers[-1] if model.layers else None
    return isinstance(last, keras.layers.Softmax) and last.name == PROBABILITIES


def write_saved_model(model: keras.Model, path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return atomic.publish_directory(
        lambda tmp: model.export(str(tmp), format="tf_saved_model", verbose=False), path)


def convert_to_tflite(saved_model: Path, kind: str, representative: np.ndarray) -> bytes:
    """TFLite flatbuffer of the SavedModel: "float32", "float16" (weights) or "int8" (all)."""
    tf = require_tensorflow("TFLite conversion")
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
    with native_stderr_silenced():  # the quantizer's "fully_quantize: 0, ..." line
        return converter.convert()


def missing_onnx_packages() -> list[str]:
    """The packages an ONNX export and its check need that are not installed."""
    return [package for module, package in ONNX_PACKAGES.items()
            if importlib.util.find_spec(module) is None]


def write_onnx(model: keras.Model, path: Path) -> Path:
    """`model` as an ONNX file (float32, opset of tf2onnx's choice, a dynamic batch)."""
    model(np.zeros((1, *model.input_shape[1:]), dtype="uint8"))  # Keras exports called models
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx's own NumPy deprecation notices
        return atomic.replace_atomically(
            path, lambda tmp: model.export(tmp, format="onnx", verbose=False))
