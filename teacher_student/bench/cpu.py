"""CPU benchmarks, each a ratio measured in one run (TensorFlow backend):

- input path (`pipeline.py`): images/s from a folder of real-sized JPEGs to augmented 224 px
  batches, ours against `keras.utils.image_dataset_from_directory`;
- inference latency per image at batch 1 and 32, teacher against student, through Keras'
  compiled `predict_on_batch` (with and without XLA) and TFLite;
- a training step with and without XLA (`jit_compile=True/False`).

    python -m teacher_student bench cpu [--json FILE]      (or `make bench`)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import itertools
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from teacher_student import config as config_module
from teacher_student.bench import common, pipeline
from teacher_student.errors import UserError
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher
from teacher_student.tables import markdown_table
from teacher_student.timing import rate, time_calls


@dataclass(frozen=True)
class CpuBench:
    image_size: int = 224
    num_classes: int = 100
    images: int = 300  # JPEG files written for the pipeline benchmark
    classes: int = 10
    source_size: tuple[int, int] = (500, 375)  # width, height: a typical photo dataset's size
    batch_size: int = 32
    epochs: int = 3  # the first reads the files; the later ones come from the cache
    repeats: int = 3  # each pipeline is timed this many times, built afresh; medians reported
    latency_batches: tuple[int, ...] = (1, 32)
    latency_images: int = 64  # images timed per (model, runtime, batch), in at least 3 calls
    train_batch_size: int = 16
    train_steps: int = 5
    config: str | None = None  # architectures: a config file or packaged name
    overrides: tuple[str, ...] = ()


def run(spec: CpuBench, folder: Path | None = None) -> dict:
    """Every CPU table; JPEGs go to `folder` (default: a temporary folder, removed after)."""
    if keras.backend.backend() != "tensorflow":
        raise UserError("bench cpu needs KERAS_BACKEND=tensorflow (tf.data and TFLite)")
    report = {"environment": common.environment(), "spec": dataclasses.asdict(spec)}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(folder or scratch)
        pipeline.write_jpegs(root, spec.images, spec.classes, spec.source_size)
        report["pipeline"] = pipeline.pipeline_rows(root, spec)
    models = _models(spec)
    report["latency"] = [row for name, model in models.items()
                         for row in latency_rows(name, model, spec)]
    report["training"] = [row for name in models for row in train_rows(name, spec)]
    return report


def _models(spec: CpuBench) -> dict[str, keras.Model]:
    config = config_module.load(spec.config, list(spec.overrides))
    shape = (spec.image_size, spec.image_size, 3)
    policy = PrecisionPolicy("float32")  # CPUs have no fast float16
    return {
        "teacher": build_teacher(dataclasses.replace(
            config.teacher, input_shape=shape, num_classes=spec.num_classes), policy),
        "student": build_student(dataclasses.replace(
            config.student, input_shape=shape, num_classes=spec.num_classes), policy),
    }


# ---------------------------------------------------------------------------------------------
# Inference latency.

Runner = Callable[[np.ndarray], np.ndarray]


def latency_rows(name: str, model: keras.Model, spec: CpuBench) -> list[dict]:
    rng = np.random.default_rng(0)
    inputs = {b: rng.integers(0, 256, (b, *model.input_shape[1:]), dtype=np.uint8)
              for b in spec.latency_batches}
    references = {b: model.predict_on_batch(x) for b, x in inputs.items()}
    tflite = _tflite_content(model)
    runtimes: dict[str, Callable[[int], Runner]] = {
        "Keras predict_on_batch, XLA": lambda batch: _keras_runner(model, True),
        "Keras predict_on_batch, no XLA": lambda batch: _keras_runner(model, False),
        # An eager call, its Python overhead included: what the compiled predict function saves.
        "Keras model(x), eager": lambda batch: _eager_runner(model),
        "TFLite, 1 thread": lambda batch: _tflite_runner(tflite, batch, 1),
        # One core: the same runtime as above, under the same name (measured once).
        f"TFLite, {os.cpu_count()} thread{'' if os.cpu_count() == 1 else 's'}":
            lambda batch: _tflite_runner(tflite, batch, os.cpu_count()),
    }
    rows = []
    for runtime, make in runtimes.items():
        for batch, images in inputs.items():
            run = make(batch)
            outputs = run(images)  # compiles or allocates; not timed
            run(images)
            calls = max(3, math.ceil(spec.latency_images / batch))
            seconds = float(np.median(time_calls(functools.partial(run, images), calls)))
            rows.append({"model": name, "runtime": runtime, "batch": batch,
                         "ms_per_image": 1000 * seconds / batch,
                         "max_abs_diff": float(np.abs(outputs - references[batch]).max())})
    return rows


def _keras_runner(model: keras.Model, xla: bool) -> Runner:
    # compile() only picks the predict function's compiler here: no loss, no training.
    model.compile(jit_compile=xla)
    return lambda images: np.asarray(model.predict_on_batch(images))


def _eager_runner(model: keras.Model) -> Runner:
    return lambda images: keras.ops.convert_to_numpy(model(images, training=False))


def _tflite_content(model: keras.Model) -> bytes:
    import tensorflow as tf

    # The converter exports a SavedModel first, and Keras prints every captured variable.
    with contextlib.redirect_stdout(io.StringIO()):
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _tflite_runner(content: bytes, batch: int, threads: int) -> Runner:
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite's deprecation notice
        interpreter = tf.lite.Interpreter(model_content=content, num_threads=threads)
    source = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(source["index"], [batch, *source["shape"][1:]])
    interpreter.allocate_tensors()
    target = interpreter.get_output_details()[0]["index"]

    def run(images: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(target)

    return run


# ---------------------------------------------------------------------------------------------
# Training step with and without XLA.

def train_rows(name: str, spec: CpuBench) -> list[dict]:
    return [_train_row(name, xla, spec) for xla in (True, False)]


def _train_row(name: str, xla: bool, spec: CpuBench) -> dict:
    model = _models(spec)[name]  # fresh weights and optimizer for each setting
    model.compile(optimizer=keras.optimizers.Adam(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=xla)
    rng = np.random.default_rng(0)
    shape = (spec.train_batch_size, spec.image_size, spec.image_size, 3)
    batches = itertools.cycle([
        (rng.integers(0, 256, shape, dtype=np.uint8),
         rng.integers(0, spec.num_classes, spec.train_batch_size, dtype=np.int32))
        for _ in range(2)])
    start = time.perf_counter()
    model.train_on_batch(*next(batches))  # compiles
    first = time.perf_counter() - start
    seconds = time_calls(lambda: model.train_on_batch(*next(batches)), spec.train_steps)
    return {"model": name, "xla": xla, "ms_per_step": 1000 * float(np.median(seconds)),
            "images_per_s": rate(spec.train_batch_size, seconds), "first_step_s": first}


# ---------------------------------------------------------------------------------------------
# Tables.

def _ratios(report: dict) -> list[dict]:
    """The headline ratios, each between two figures of this run."""
    rates = {(r["pipeline"], r["epoch"]): r["images_per_s"] for r in report["pipeline"]}
    keras_rate = rates[(pipeline.KERAS_PIPELINE, "first")]
    rows = [(f"pipeline: {name.removeprefix('ours: ')}, {epoch} epoch / Keras",
             rates[(name, epoch)] / keras_rate)
            for name in (pipeline.OURS_LIGHT, pipeline.OURS_PLAIN)
            for epoch in ("first", "cached")]
    rows += [(f"pipeline, augmented alike: ours light, {epoch} epoch / Keras' loader and layers",
              rates[(pipeline.OURS_LIGHT, epoch)] / rates[(pipeline.KERAS_LIGHT, epoch)])
             for epoch in ("first", "cached")]
    latency = {(r["model"], r["runtime"], r["batch"]): r["ms_per_image"]
               for r in report["latency"]}
    for (model, runtime, batch), ms in latency.items():
        if model == "teacher" and ("student", runtime, batch) in latency:
            rows.append((f"latency: teacher / student, {runtime}, batch {batch}",
                         ms / latency[("student", runtime, batch)]))
    train = {(r["model"], r["xla"]): r["ms_per_step"] for r in report["training"]}
    for model in dict.fromkeys(r["model"] for r in report["training"]):
        rows.append((f"training step time: {model}, no XLA / XLA",
                     train[(model, False)] / train[(model, True)]))
    return [{"ratio": name, "value": value} for name, value in rows]


def format_report(report: dict) -> str:
    spec = report["spec"]
    width, height = spec["source_size"]
    return "\n".join([
        common.format_environment(report["environment"]), "",
        f"Input path: {spec['images']} JPEG{'' if spec['images'] == 1 else 's'} of "
        f"{width}x{height} in {spec['classes']} folder{'' if spec['classes'] == 1 else 's'} "
        f"-> {spec['image_size']} px batches of {spec['batch_size']}", "",
        markdown_table(report["pipeline"], [
            ("pipeline", "pipeline", ""), ("epoch", "epoch", ""), ("images", "images", "d"),
            ("images_per_s", "images/s", ".0f")]), "",
        f"Inference latency, float32, {spec['image_size']} px, {spec['num_classes']} classes", "",
        markdown_table(report["latency"], [
            ("model", "model", ""), ("runtime", "runtime", ""), ("batch", "batch", "d"),
            ("ms_per_image", "ms/image", ".2f"), ("max_abs_diff", "max abs diff vs Keras", ".1e")]),
        "",
        f"Training step, float32, batch {spec['train_batch_size']}, {spec['image_size']} px", "",
        markdown_table(report["training"], [
            ("model", "model", ""), ("xla", "XLA", ""), ("ms_per_step", "ms/step", ".0f"),
            ("images_per_s", "images/s", ".1f"), ("first_step_s", "first step s", ".1f")]),
        "", "Ratios", "", markdown_table(_ratios(report), [
            ("ratio", "ratio", ""), ("value", "value", ".2f")]),
    ])
