"""Latency per image on this machine's CPU: batch 1, in a fresh process that sees no accelerator.

`measure_on_cpu(paths)` starts `python -m teacher_student.outputs.latency` with
`CUDA_VISIBLE_DEVICES=""` and `JAX_PLATFORMS=cpu`, so that on a GPU machine (a Kaggle T4) the CPU
is what is timed, and so that nothing of the parent's state (a GPU context, the input pipeline's
threads, other models' compiled functions) runs beside the calls. The child times each model:

- a `.keras` file rebuilt in float32 (what `export` deploys: a mixed-precision model's float16
  ops are emulated on a CPU), through the compiled `predict_on_batch`; and, with `tflite` on
  the TensorFlow backend, the same model converted to a float32 TFLite file;
- an exported `.tflite` file, SavedModel folder or `.onnx` file as it is.

Each is called with one random uint8 image on one thread, warmed up, then called for about
`seconds` (at least `MIN_REPEATS` times); the result is the median and the interquartile range,
in ms. Measured this way, on a shared two-core machine, the same student of a tiny run timed
0.32-0.33 ms in four evaluations of five (0.38 in one, the machine busy), where the earlier
in-process median of 20 calls, on all threads, gave 0.67-1.30 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import teacher_student
from teacher_student import atomic
from teacher_student.hardware import cpu_model
from teacher_student.quiet import TENSORFLOW_ENVIRONMENT

MIN_REPEATS = 50
MAX_REPEATS = 5000
WARMUP_CALLS = 10
SECONDS_PER_MODEL = 1.0
# Hides every accelerator from the child (what it times is the CPU), and gives each model one
# thread: batch-1 calls of small models do not gain from more, and on a shared machine a
# second thread waits for other work (the teacher of a tiny run varied 18% between runs with
# two threads, 4% with one).
CPU_ONLY = {"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu", "TF_NUM_INTRAOP_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1", **TENSORFLOW_ENVIRONMENT}
JAX_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
THREADS = 1


@dataclass(frozen=True)
class Latency:
    """Milliseconds per image, batch 1: median and interquartile range over `calls` calls."""
    median_ms: float
    iqr_ms: float
    calls: int


@dataclass(frozen=True)
class CpuLatencies:
    device: str  # the CPU's model and cores: `AMD EPYC, 2 cores` (hardware.cpu_model)
    keras: dict[str, Latency] = field(default_factory=dict)  # by path, as given
    tflite: dict[str, Latency] = field(default_factory=dict)  # .keras paths converted
    problem: str | None = None  # why nothing was measured

    def columns(self, path: Path | str) -> dict:
        """The comparison row's latency values for the model at `path`."""
        values = {"latency_device": self.device}
        for prefix, found in (("latency", self.keras), ("tflite_latency", self.tflite)):
            if str(path) in found:
                values[f"{prefix}_ms"] = found[str(path)].median_ms
                values[f"{prefix}_iqr_ms"] = found[str(path)].iqr_ms
        return values


def measure_once(paths: Sequence[Path], record: Path, tflite: bool = False) -> CpuLatencies:
    """`measure_on_cpu`, for the models of `paths` not measured before on this CPU: `record`
    (a JSON file) keeps each measurement by the model file's content digest, so an unchanged
    model is measured once per machine (evaluating a run again costs no second timing)."""
    from teacher_student.outputs.predict import content_digest

    device = cpu_model()
    digests = {str(path): content_digest(path) for path in paths}
    kept = _read_record(record, device)
    wanted = {"keras", "tflite"} if tflite else {"keras"}
    missing = [Path(path) for path, digest in digests.items()
               if not wanted <= set(kept.get(digest, {}))]
    if missing:
        fresh = measure_on_cpu(missing, tflite)
        if fresh.problem:
            print(f"CPU latency not measured: {fresh.problem}")
        for kind in ("keras", "tflite"):
            for path, latency in getattr(fresh, kind).items():
                kept.setdefault(digests[path], {})[kind] = latency.__dict__
        atomic.write_json(record, {"device": device, "models": kept})
    found = CpuLatencies(device)
    for path, digest in digests.items():
        for kind, value in kept.get(digest, {}).items():
            getattr(found, kind)[path] = Latency(**value)
    return found


def _read_record(record: Path, device: str) -> dict:
    try:
        saved = json.loads(Path(record).read_text())
    except (OSError, ValueError):  # none yet, or damaged: measured again
        return {}
    return saved.get("models", {}) if saved.get("device") == device else {}


def measure_on_cpu(paths: Sequence[Path], tflite: bool = False,
                   seconds: float = SECONDS_PER_MODEL) -> CpuLatencies:
    """Every model of `paths` timed on the CPU in one fresh process (see the module's doc).
    A child that fails leaves the latencies out, and says why in `problem`."""
    device = cpu_model()
    if not paths:
        return CpuLatencies(device)
    package_root = str(Path(teacher_student.__file__).resolve().parent.parent)
    env = {**os.environ, **CPU_ONLY,
           "XLA_FLAGS": " ".join(filter(None, [os.environ.get("XLA_FLAGS"), JAX_ONE_THREAD])),
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root,
                                                        os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "latency.json"
        command = [sys.executable, "-m", "teacher_student.outputs.latency", "--out", str(out),
                   "--seconds", str(seconds), *(["--tflite"] if tflite else []),
                   *map(str, paths)]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0 or not out.exists():
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            return CpuLatencies(device, problem=f"the timing process failed ({last})")
        found = json.loads(out.read_text())
    return CpuLatencies(device, *({path: Latency(**value) for path, value in found[kind].items()}
                                  for kind in ("keras", "tflite")))


# ---------------------------------------------------------------------------------------------
# The child process. What loads Keras is imported inside the functions, here and in
# `measure_once`: run as `__main__`, this module quiets TensorFlow's logs before Keras loads.

def time_model(call: Callable[[], object], seconds: float) -> Latency:
    """`call` warmed up, then timed for about `seconds` (MIN_REPEATS to MAX_REPEATS calls)."""
    call()  # compiles, allocates
    started = time.perf_counter()
    for _ in range(WARMUP_CALLS):
        call()
    per_call = (time.perf_counter() - started) / WARMUP_CALLS
    repeats = int(min(max(seconds / max(per_call, 1e-6), MIN_REPEATS), MAX_REPEATS))
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        durations.append(time.perf_counter() - start)
    low, median, high = np.percentile(np.asarray(durations) * 1000.0, [25, 50, 75])
    return Latency(round(float(median), 4), round(float(high - low), 4), repeats)


def _keras_call(path: Path):
    import keras

    from teacher_student.models.precision import PrecisionPolicy

    model = PrecisionPolicy("float32").rebuild(keras.saving.load_model(path, safe_mode=True))
    image = _image(model.input_shape)
    # Converting to numpy waits for asynchronous backends (JAX) to finish.
    return model, lambda: keras.ops.convert_to_numpy(model.predict_on_batch(image))


def _image(input_shape) -> np.ndarray:
    shape = tuple(input_shape[1:])
    return np.random.default_rng(0).integers(0, 256, (1, *shape), dtype=np.uint8)


def _tflite_call(model, folder: Path):
    """`model` converted as `export` converts it (float32, answering probabilities)."""
    from teacher_student.outputs.convert import (
        convert_to_tflite,
        with_probabilities,
        write_saved_model,
    )

    saved = write_saved_model(with_probabilities(model), folder / f"{model.name}_savedmodel")
    path = folder / f"{model.name}.tflite"
    path.write_bytes(convert_to_tflite(saved, "float32", np.zeros((0,), np.uint8)))
    return _file_call(path, model.input_shape)


def _file_call(path: Path, input_shape):
    """An exported file run on one image, as `predict` runs it."""
    from teacher_student.outputs.predict import load_predictor

    run = load_predictor(path, "probabilities", threads=THREADS)
    image = _image(input_shape)
    return lambda: run(image)


def _exported_input_shape(path: Path) -> tuple:
    """(None, H, W, C) from the `*_meta.json` that export wrote beside `path`."""
    from teacher_student.outputs.predict import read_meta

    meta, _ = read_meta(path)
    return None, meta["image_size"], meta["image_size"], meta["channels"]


def measure_here(paths: Sequence[str], tflite: bool, seconds: float) -> dict:
    """The child's work: {"keras": {path: Latency}, "tflite": {path: Latency}} as dicts."""
    import keras

    found: dict[str, dict] = {"keras": {}, "tflite": {}}
    convert = tflite and keras.backend.backend() == "tensorflow"
    with tempfile.TemporaryDirectory() as folder:
        for text in paths:
            path = Path(text)
            if path.suffix == ".keras":
                model, call = _keras_call(path)
                found["keras"][text] = time_model(call, seconds).__dict__
                if convert:
                    found["tflite"][text] = time_model(_tflite_call(model, Path(folder)),
                                                       seconds).__dict__
            else:
                call = _file_call(path, _exported_input_shape(path))
                found["keras"][text] = time_model(call, seconds).__dict__
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="time models on the CPU (run by "
                                     "measure_on_cpu, in a process that sees no GPU)")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--tflite", action="store_true")
    parser.add_argument("--seconds", type=float, default=SECONDS_PER_MODEL)
    args = parser.parse_args(argv)
    Path(args.out).write_text(json.dumps(measure_here(args.paths, args.tflite, args.seconds)))
    return 0


if __name__ == "__main__":
    from teacher_student.quiet import quiet_logs

    quiet_logs()
    raise SystemExit(main())
