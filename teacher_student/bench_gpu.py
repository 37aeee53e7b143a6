"""Training-step benchmark on an accelerator: images/s per precision, FLOPs, peak memory.

    KERAS_BACKEND=jax python -m teacher_student bench train [--batch-size 64] [--json FILE]

Measures the configured teacher, student and distillation step (default architectures, 224 px,
100 classes) under four precisions: `float32` as the backend runs it by default (TF32 tensor
cores on Ampere and Hopper), `float32-highest` (full float32 matmuls and convolutions, what a
T4 does, having no TF32), `mixed_float16` and `mixed_bfloat16`. Each (model, precision) runs in
a fresh subprocess, so its peak memory is its own.

- On JAX: a stateless jitted step (Keras' documented pattern: `stateless_call` inside
  `jax.value_and_grad`, the optimizer's `stateless_apply`), timed with `block_until_ready`,
  fed from batches already on the device, from host uint8 batches passed to each call, and from
  host batches that a thread puts on the device ahead. FLOPs come from XLA's cost analysis of
  the step's HLO (the GPU's compiled count, also kept, leaves out the cuDNN convolutions). The
  distillation step computes the `Distiller`'s loss; the teacher's forward pass is timed too.
- On every backend: Keras' own `fit` on host uint8 arrays, the way the trainer runs.

Imports only keras and numpy at module level: the GPU machine has no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import keras
import numpy as np

from teacher_student import bench
from teacher_student import config as config_module
from teacher_student.distiller import Distiller
from teacher_student.losses import classification_loss, distillation_loss
from teacher_student.precision import FLOAT32, PrecisionPolicy
from teacher_student.student import build_student
from teacher_student.teacher import build_teacher

FULL_FLOAT32 = "float32-highest"
PRECISIONS = (FLOAT32, FULL_FLOAT32, "mixed_float16", "mixed_bfloat16")
MODELS = ("teacher", "student", "distill")
HOST_BATCHES = 4  # distinct batches, cycled, so no step reuses the previous step's input
MARKER = "BENCH_RESULT "
# Dense peak TFLOP/s of the H100 SXM by NVIDIA's datasheet (the H200 has the same rates, see the
# device notes' H200.md): TF32 for default float32, plain FP32, and FP16/BF16 tensor cores.
PEAK_TFLOPS = {FLOAT32: 495.0, FULL_FLOAT32: 67.0, "mixed_float16": 989.0,
               "mixed_bfloat16": 989.0}


@dataclass(frozen=True)
class TrainBench:
    image_size: int = 224
    num_classes: int = 100
    batch_size: int = 64
    warmup: int = 5  # steps after compiling, not timed
    steps: int = 20  # steps per timed window
    windows: int = 5  # timed windows; rates use their median
    keras_fit: tuple[str, ...] = MODELS  # models also timed through Keras' own `fit`
    config: str | None = None  # architectures: a config file or packaged name
    overrides: tuple[str, ...] = ()
    flops_only: bool = False  # count each step's FLOPs, nothing else: needs no accelerator


# ---------------------------------------------------------------------------------------------
# One (model, precision) in this process.

def measure(spec: TrainBench, model_name: str, precision: str) -> dict:
    """Every figure for one model under one precision; call it in a fresh process."""
    if precision == FULL_FLOAT32:
        use_full_float32()
    policy = PrecisionPolicy(FLOAT32 if precision == FULL_FLOAT32 else precision)
    config = config_module.load(spec.config, list(spec.overrides))
    shape = (spec.image_size, spec.image_size, 3)
    teacher_config = dataclasses.replace(config.teacher, input_shape=shape,
                                         num_classes=spec.num_classes)
    student_config = dataclasses.replace(config.student, input_shape=shape,
                                         num_classes=spec.num_classes)
    batches = _host_batches(spec)
    result = {"model": model_name, "precision": precision, "device": bench.accelerator_name(),
              "backend": keras.backend.backend()}
    if model_name == "distill":
        teacher = build_teacher(teacher_config, policy)
        student = build_student(student_config, policy)
        result["parameters"] = student.count_params()
        result["teacher_parameters"] = teacher.count_params()
        if keras.backend.backend() == "jax":
            result.update(_jax_rates(_distill_step(teacher, student, policy, config.distill),
                                     batches, spec))
            forward = _jax_rates(_forward_step(teacher), batches, spec)
            result["teacher_forward_ms"] = forward.get("step_ms")
            result["teacher_forward_hlo_flops"] = forward["hlo_flops_per_step"]
        fit_model = Distiller(teacher, student, config.distill.alpha, config.distill.temperature)
    else:
        build = build_teacher if model_name == "teacher" else build_student
        fit_model = build(teacher_config if model_name == "teacher" else student_config, policy)
        result["parameters"] = fit_model.count_params()
        if keras.backend.backend() == "jax":
            result.update(_jax_rates(_classifier_step(fit_model, policy), batches, spec))
    result["peak_bytes"] = _peak_bytes()  # before Keras' fit adds its own copy of the state
    if model_name in spec.keras_fit and not spec.flops_only:
        result["keras_fit_images_per_s"] = _keras_fit_rate(fit_model, policy, batches, spec)
        result["keras_fit_epoch_images_per_s"] = _keras_fit_epoch_rate(fit_model, batches, spec)
    return result


def _host_batches(spec: TrainBench) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random uint8 images and int32 labels, as the pipeline feeds them (never zeros)."""
    rng = np.random.default_rng(0)
    shape = (spec.batch_size, spec.image_size, spec.image_size, 3)
    return [(rng.integers(0, 256, shape, dtype=np.uint8),
             rng.integers(0, spec.num_classes, spec.batch_size, dtype=np.int32))
            for _ in range(HOST_BATCHES)]


def use_full_float32() -> None:
    """Full float32 matmuls and convolutions (no TF32), as on a GPU without TF32."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(False)
    elif backend == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def _peak_bytes() -> int | None:
    """Peak accelerator memory of this process so far, or None on a CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use")
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return tf.config.experimental.get_memory_info("GPU:0")["peak"]
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated()
    return None


# ---------------------------------------------------------------------------------------------
# Stateless JAX steps: (state, images, labels) -> (output, state).

def _variables(variables) -> list:
    # Copies: the step donates its state, which must not delete the Keras variables' buffers.
    return [v.value.copy() for v in variables]


def _scaled(optimizer, optimizer_values, loss):
    """The loss times the current loss scale (LossScaleOptimizer only), as Keras' JAX trainer
    does: `stateless_apply` then divides the gradients by the same scale."""
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return loss
    with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, optimizer_values))):
        return optimizer.scale_loss(loss)


def _training_step(student: keras.Model, policy: PrecisionPolicy, frozen: list, loss_of):
    """A step training `student` on `loss_of(logits, frozen values, images, labels)`."""
    import jax

    optimizer = policy.wrap_optimizer(keras.optimizers.Adam())
    optimizer.build(student.trainable_variables)

    def loss_and_updates(trainable, non_trainable, optimizer_values, frozen, images, labels):
        logits, non_trainable = student.stateless_call(trainable, non_trainable, images,
                                                       training=True)
        loss = loss_of(logits, frozen, images, labels)
        return _scaled(optimizer, optimizer_values, loss), (loss, non_trainable)

    gradient = jax.value_and_grad(loss_and_updates, has_aux=True)

    def step(state, images, labels):
        trainable, non_trainable, optimizer_values, frozen = state
        (_, (loss, non_trainable)), grads = gradient(trainable, non_trainable, optimizer_values,
                                                     frozen, images, labels)
        trainable, optimizer_values = optimizer.stateless_apply(optimizer_values, grads,
                                                                trainable)
        return loss, (trainable, non_trainable, optimizer_values, frozen)

    state = (_variables(student.trainable_variables),
             _variables(student.non_trainable_variables), _variables(optimizer.variables), frozen)
    return step, state


def classifier_rates(model: keras.Model, policy: PrecisionPolicy, spec: TrainBench) -> dict:
    """`_jax_rates` of a training step of any classifier (logits out), e.g. a stock network."""
    return _jax_rates(_classifier_step(model, policy), _host_batches(spec), spec)


def _classifier_step(model: keras.Model, policy: PrecisionPolicy):
    return _training_step(model, policy, [],
                          lambda logits, _, images, labels: classification_loss(labels, logits))


def _distill_step(teacher: keras.Model, student: keras.Model, policy: PrecisionPolicy,
                  settings: config_module.DistillConfig):
    """The `Distiller`'s loss: the frozen teacher in inference mode, its gradient stopped."""
    import jax

    def loss_of(logits, frozen, images, labels):
        teacher_logits, _ = teacher.stateless_call(frozen[0], frozen[1], images, training=False)
        teacher_logits = jax.lax.stop_gradient(teacher_logits)
        return (settings.alpha * classification_loss(labels, logits) + (1 - settings.alpha)
                * distillation_loss(teacher_logits, logits, settings.temperature))

    frozen = [_variables(teacher.trainable_variables), _variables(teacher.non_trainable_variables)]
    return _training_step(student, policy, frozen, loss_of)


def _forward_step(model: keras.Model):
    """Inference logits; the state passes through unchanged."""
    def step(state, images, labels):
        logits, _ = model.stateless_call(state[0], state[1], images, training=False)
        return logits, state

    return step, (_variables(model.trainable_variables), _variables(model.non_trainable_variables))


def _jax_rates(step_and_state, batches: list, spec: TrainBench) -> dict:
    """Compiles the step once, then times it fed from batches already on the device, from host
    batches passed to each call, and from host batches put on the device by a thread ahead."""
    import jax

    step, state = step_and_state
    device_batches = jax.device_put(batches)
    lowered = jax.jit(step, donate_argnums=0).lower(state, *device_batches[0])
    info = {"hlo_flops_per_step": _hlo_flops(lowered)}
    if spec.flops_only:
        return info
    start = time.perf_counter()
    compiled = lowered.compile()
    info.update({"compile_s": time.perf_counter() - start, "flops_per_step": _flops(compiled),
                 "xla_memory_bytes": _xla_bytes(compiled),
                 "full_float32_in_hlo": "precision HIGHEST" in lowered.as_text()})
    holder = {"state": state}

    def run(feed) -> None:
        for images, labels in feed:
            out, holder["state"] = compiled(holder["state"], images, labels)
        holder["out"] = np.asarray(jax.block_until_ready(out))  # waits for every step

    def cycle(source: list):
        return (source[i % len(source)] for i in range(spec.steps))

    run(device_batches[i % HOST_BATCHES] for i in range(spec.warmup))
    on_device = bench.time_windows(lambda: run(cycle(device_batches)), spec.windows)
    from_host = bench.time_windows(lambda: run(cycle(batches)), spec.windows)
    prefetched = bench.time_windows(lambda: run(_prefetch_to_device(cycle(batches))),
                                    spec.windows)
    items = spec.steps * spec.batch_size
    return {**info, "device_fed_images_per_s": bench.rate(items, on_device),
            "host_fed_images_per_s": bench.rate(items, from_host),
            "prefetched_images_per_s": bench.rate(items, prefetched),
            "step_ms": 1000 * float(np.median(on_device)) / spec.steps,
            "finite": bool(np.isfinite(holder["out"]).all())}


def _prefetch_to_device(batches, depth: int = 2):
    """`batches` put on the device by a background thread, up to `depth` ahead of the step, so
    the host-to-device copy overlaps the step instead of preceding it."""
    import jax

    ready: queue.Queue = queue.Queue(maxsize=depth)

    def fill() -> None:
        for batch in batches:
            ready.put(jax.device_put(batch))
        ready.put(None)

    threading.Thread(target=fill, daemon=True).start()
    while (batch := ready.get()) is not None:
        yield batch


def _flops(stage) -> float | None:
    """FLOPs counted by XLA's cost analysis of a lowered or compiled step, if it offers one."""
    try:
        analysis = stage.cost_analysis()
    except NotImplementedError:
        return None
    if isinstance(analysis, list):  # older JAX: one dict per computation
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def _hlo_flops(lowered) -> float | None:
    """FLOPs of the step as written, before XLA's rewrites. The GPU's compiled count leaves out
    the convolutions, which run as cuDNN calls, and JAX offers the lowered count only on the
    CPU, so off the CPU XLA's CPU client counts the same HLO module."""
    flops = _flops(lowered)
    if flops is not None:
        return flops
    try:
        import jax
        from jax._src.lib import _jax  # no public way to count a module for another platform

        module = lowered.compiler_ir("hlo").as_hlo_module()
        flops = _jax.hlo_module_cost_analysis(jax.devices("cpu")[0].client, module).get("flops")
        return float(flops) if flops else None
    except (ImportError, AttributeError, RuntimeError):
        return None


def _xla_bytes(compiled) -> int | None:
    """XLA's own count of what the step holds at once: arguments, outputs, temporaries."""
    try:
        stats = compiled.memory_analysis()
        return (stats.argument_size_in_bytes + stats.output_size_in_bytes
                - stats.alias_size_in_bytes + stats.temp_size_in_bytes)
    except (AttributeError, NotImplementedError):
        return None


# ---------------------------------------------------------------------------------------------
# Keras' own fit, on every backend.

def _keras_fit_rate(model: keras.Model, policy: PrecisionPolicy, batches: list,
                    spec: TrainBench) -> float:
    """Images/s of `model.fit` on host uint8 arrays of `spec.steps` batches (compiled, XLA)."""
    images, labels = _fit_arrays(batches, spec.steps)
    loss = None if isinstance(model, Distiller) else \
        keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=policy.wrap_optimizer(keras.optimizers.Adam()), loss=loss,
                  jit_compile=True)

    def fit(count: int) -> None:
        model.fit(images[:count], labels[:count], batch_size=spec.batch_size, epochs=1,
                  verbose=0)
        keras.ops.convert_to_numpy(model.trainable_variables[0])  # waits for the last step

    fit(spec.batch_size * max(spec.warmup, 1))  # compiles
    return bench.rate(len(images), bench.time_windows(lambda: fit(len(images)), spec.windows))


def _fit_arrays(batches: list, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """`steps` batches, cycled, as one array of images and one of labels for `fit`."""
    chosen = [batches[i % len(batches)] for i in range(steps)]
    return (np.concatenate([images for images, _ in chosen]),
            np.concatenate([labels for _, labels in chosen]))


class _EpochTimer(keras.callbacks.Callback):
    """Seconds per epoch. Keras syncs the state and reads the metrics before `on_epoch_end`,
    so each duration includes the device work of its epoch."""

    def __init__(self):
        super().__init__()
        self.durations: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.durations.append(time.perf_counter() - self._start)


def _keras_fit_epoch_rate(model: keras.Model, batches: list, spec: TrainBench) -> float:
    """Images/s of one long `model.fit` call (already compiled by `_keras_fit_rate`): epochs of
    `spec.steps` batches, median epoch. Unlike a `fit` call per window, this leaves out what
    each call of `fit` costs before its first step (iterator, callbacks, state sync)."""
    images, labels = _fit_arrays(batches, spec.steps)
    timer = _EpochTimer()
    model.fit(images, labels, batch_size=spec.batch_size, epochs=1 + spec.windows, verbose=0,
              shuffle=False, callbacks=[timer])
    return bench.rate(len(images), timer.durations[1:])  # the first epoch builds the iterator


# ---------------------------------------------------------------------------------------------
# Every (model, precision), each in its own process, and the tables.

def run(spec: TrainBench, models=MODELS, precisions=PRECISIONS, json_path: str | None = None,
        budget_s: float = 3600.0) -> dict:
    """Measures each (model, precision) in a fresh subprocess; stops starting new ones after
    `budget_s` seconds. Writes the JSON after each, so an interrupted run keeps what it has."""
    environment = bench.environment(detect_device=False)  # the parent leaves the GPU alone
    report = {"environment": environment, "spec": dataclasses.asdict(spec), "results": []}
    deadline = time.monotonic() + budget_s
    for model_name in models:
        for precision in precisions:
            left = deadline - time.monotonic()
            result = (_run_child(spec, model_name, precision, left) if left > 0 else
                      {"model": model_name, "precision": precision, "error": "time budget spent"})
            report["results"].append(result)
            environment["device"] = environment["device"] or result.get("device") or \
                (bench.cpu_name() if "error" not in result else None)
            print(f"{model_name} {precision}: {json.dumps(result)}", file=sys.stderr, flush=True)
            if json_path:
                bench.write_json(json_path, report)
    return report


def _run_child(spec: TrainBench, model_name: str, precision: str, timeout: float) -> dict:
    failed = {"model": model_name, "precision": precision}
    argument = json.dumps({"spec": dataclasses.asdict(spec), "model": model_name,
                           "precision": precision})
    try:
        done = subprocess.run([sys.executable, "-m", "teacher_student.bench_gpu", argument],
                              stdout=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**failed, "error": "time budget spent while running"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    return {**failed, "error": f"exit code {done.returncode}"}


def summarize(results: list[dict]) -> list[dict]:
    """Rows with the derived figures: ratios between precisions, feeding, FLOP/s, peak share."""
    by_key = {(r["model"], r["precision"]): r for r in results if "error" not in r}
    rows = []
    for (model_name, precision), r in by_key.items():
        # The HLO count includes the convolutions, which the GPU's compiled count leaves out.
        flops = r.get("hlo_flops_per_step") or r.get("flops_per_step")
        rate = r.get("device_fed_images_per_s") or r.get("keras_fit_images_per_s")
        row = {**r, "images_per_s": rate,
               "vs_float32": bench.ratio(rate, _rate(by_key.get((model_name, FLOAT32)))),
               "vs_full_float32": bench.ratio(rate, _rate(by_key.get((model_name, FULL_FLOAT32)))),
               "host_vs_device": bench.ratio(r.get("host_fed_images_per_s"),
                                             r.get("device_fed_images_per_s")),
               "peak_gib": r["peak_bytes"] / 2**30 if r.get("peak_bytes") else None,
               "gflop_per_step": flops / 1e9 if flops else None}
        if flops and r.get("step_ms"):
            row["tflop_per_s"] = flops / r["step_ms"] / 1e9
            peak = _peak_tflops(r.get("device"), precision)
            row["share_of_peak"] = row["tflop_per_s"] / peak if peak else None
        student = by_key.get(("student", precision))
        if model_name == "distill" and student and student.get("step_ms") and \
                r.get("teacher_forward_ms"):
            row["student_plus_forward_ms"] = student["step_ms"] + r["teacher_forward_ms"]
            row["distill_vs_sum"] = r["step_ms"] / row["student_plus_forward_ms"]
        rows.append(row)
    return rows


def _rate(result: dict | None) -> float | None:
    if not result:
        return None
    return result.get("device_fed_images_per_s") or result.get("keras_fit_images_per_s")


def _peak_tflops(device: str | None, precision: str) -> float | None:
    known = device and ("H100" in device or "H200" in device) and "PCIe" not in device
    return PEAK_TFLOPS[precision] if known else None


TRAIN_COLUMNS = [("model", "model", ""), ("precision", "precision", ""),
                 ("parameters", "params", ","),
                 ("device_fed_images_per_s", "img/s on device", ".0f"),
                 ("host_fed_images_per_s", "img/s from host", ".0f"),
                 ("host_vs_device", "host/device", ".2f"),
                 ("prefetched_images_per_s", "img/s host, prefetched", ".0f"),
                 ("keras_fit_images_per_s", "img/s Keras fit", ".0f"),
                 ("keras_fit_epoch_images_per_s", "img/s one long fit", ".0f"),
                 ("vs_float32", "x float32", ".2f"), ("vs_full_float32", "x full fp32", ".2f"),
                 ("step_ms", "ms/step", ".1f"), ("gflop_per_step", "GFLOP/step", ".1f"),
                 ("tflop_per_s", "TFLOP/s", ".1f"), ("share_of_peak", "of peak", ".1%"),
                 ("peak_gib", "peak GiB", ".2f"), ("compile_s", "compile s", ".0f")]
DISTILL_COLUMNS = [("precision", "precision", ""), ("step_ms", "distill ms/step", ".1f"),
                   ("teacher_forward_ms", "teacher forward ms", ".1f"),
                   ("student_plus_forward_ms", "student step + forward ms", ".1f"),
                   ("distill_vs_sum", "distill / sum", ".2f")]


def format_report(report: dict) -> str:
    rows = summarize(report["results"])
    spec = report["spec"]
    parts = [bench.format_environment(report["environment"]),
             f"batch {spec['batch_size']}, {spec['image_size']} px, {spec['num_classes']} "
             "classes; " + ("FLOPs only" if spec["flops_only"] else
                            f"median of {spec['windows']} windows of {spec['steps']} steps"),
             "", bench.markdown_table(rows, TRAIN_COLUMNS)]
    distill_rows = [r for r in rows if r["model"] == "distill" and r.get("step_ms")]
    if distill_rows:
        parts += ["", bench.markdown_table(distill_rows, DISTILL_COLUMNS)]
    errors = [f"{r['model']} {r['precision']}: {r['error']}" for r in report["results"]
              if "error" in r]
    return "\n".join(parts + (["", "not measured:", *errors] if errors else []))


def merge_reports(reports: list[dict]) -> dict:
    """One report from several runs of the same spec (runs split to fit a time limit); the
    environment is the first run's. Results measured twice keep the later one."""
    first = reports[0]
    for other in reports[1:]:
        differ = [key for key in ("image_size", "batch_size", "num_classes", "steps", "windows")
                  if other["spec"][key] != first["spec"][key]]
        if differ:
            raise ValueError(f"cannot merge runs whose {differ[0]} differs: "
                             f"{first['spec'][differ[0]]} and {other['spec'][differ[0]]}")
    results = {}
    for report in reports:
        for result in report["results"]:
            key = (result["model"], result["precision"])
            if "error" not in result or key not in results:
                results[key] = result
    return {**first, "results": list(results.values())}


def main(argv: list[str] | None = None) -> None:
    """The child process: one (model, precision), printed as one JSON line."""
    task = json.loads((argv or sys.argv[1:])[0])
    spec = task["spec"]
    spec = TrainBench(**{**spec, "keras_fit": tuple(spec["keras_fit"]),
                         "overrides": tuple(spec["overrides"])})
    result = measure(spec, task["model"], task["precision"])
    print(MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
