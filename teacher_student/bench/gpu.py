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
- On every backend: Keras' own `fit` of the model alone on host uint8 arrays (the reference),
  and `fit` the way the trainer runs it: a `Trainee` (augmentation inside the step) or the
  `Distiller`, fed by `Batches`.
- With `--devices N` (JAX): the trainer's `fit` alone, under `keras.distribution.DataParallel`
  over N devices as a job on N GPUs runs it, the batch size being each device's: its images/s
  against a run with `--devices 1` is the scaling.

Imports only keras and numpy at module level: the GPU machine has no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass

import keras
import numpy as np

from teacher_student import config as config_module
from teacher_student.bench import FULL_FLOAT32, MODELS, jax_steps
from teacher_student.data.batches import Batches
from teacher_student.hardware import accelerator_name, peak_memory_bytes
from teacher_student.models.precision import FLOAT32, PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher
from teacher_student.timing import EpochTimer, rate
from teacher_student.training.distiller import Distiller, method_terms
from teacher_student.training.trainee import Trainee, compile_trainee

HOST_BATCHES = 4  # distinct batches, cycled, so no step reuses the previous step's input
MARKER = "BENCH_RESULT "


@dataclass(frozen=True)
class TrainBench:
    image_size: int = 224
    num_classes: int = 100
    batch_size: int = 64
    warmup: int = 5  # steps after compiling, not timed
    steps: int = 20  # steps per timed window
    windows: int = 5  # timed windows; rates use their median
    keras_fit: tuple[str, ...] = MODELS  # models also timed through `fit` (plain, trainer)
    config: str | None = None  # architectures: a config file or packaged name
    overrides: tuple[str, ...] = ()
    flops_only: bool = False  # count each step's FLOPs, nothing else: needs no accelerator
    steps_per_execution: int = 1  # of the trainer's fit
    devices: int = 1  # data parallel over this many devices (JAX): the trainer's fit alone



# ---------------------------------------------------------------------------------------------
# One (model, precision) in this process.

def measure(spec: TrainBench, model_name: str, precision: str) -> dict:
    """Every figure for one model under one precision; call it in a fresh process."""
    if precision == FULL_FLOAT32:
        use_full_float32()
    if spec.devices > 1:
        data_parallel(spec.devices)
    policy = PrecisionPolicy(FLOAT32 if precision == FULL_FLOAT32 else precision)
    config, teacher_config, student_config = shaped_configs(spec)
    batches = _host_batches(spec)
    result = {"model": model_name, "precision": precision, "device": accelerator_name(),
              "backend": keras.backend.backend(), "devices": spec.devices}
    # The stateless steps and the plain fit run on one device: with several, the trainer alone.
    single = spec.devices == 1
    if model_name == "distill":
        teacher = build_teacher(teacher_config, policy)
        student = build_student(student_config, policy)
        result["parameters"] = student.count_params()
        result["teacher_parameters"] = teacher.count_params()
        if keras.backend.backend() == "jax" and single:
            step = jax_steps.distill_step(teacher, student, policy, config.distill, spec.steps)
            result.update(jax_steps.rates(step, batches, spec))
            forward = jax_steps.rates(jax_steps.forward_step(teacher), batches, spec)
            result["teacher_forward_ms"] = forward.get("step_ms")
            result["teacher_forward_hlo_flops"] = forward["hlo_flops_per_step"]
        plain = None
        trainee = _distiller(teacher, student, config, spec, policy)
    else:
        build = build_teacher if model_name == "teacher" else build_student
        plain = build(teacher_config if model_name == "teacher" else student_config, policy)
        result["parameters"] = plain.count_params()
        if keras.backend.backend() == "jax" and single:
            step = jax_steps.classifier_step(plain, policy)
            result.update(jax_steps.rates(step, batches, spec))
        trainee = _trainee(plain, config)
    result["peak_bytes"] = peak_memory_bytes()  # before Keras' fit adds its own copy of the state
    if model_name in spec.keras_fit and not spec.flops_only:
        if plain is not None and single:
            result["keras_fit_images_per_s"] = _plain_fit_rate(plain, policy, batches, spec)
        result["trainer_images_per_s"] = _trainer_fit_rate(trainee, policy, spec)
        if plain is not None and single:  # what the augmentation in the step costs
            result["trainer_unaugmented_images_per_s"] = _trainer_fit_rate(
                Trainee(plain, "none"), policy, spec)
    return result


def build_trainee(model_name: str, spec: TrainBench, policy: PrecisionPolicy) -> keras.Model:
    """What the trainer fits for `model_name` at the bench's shape: a `Trainee` of the teacher
    or the student, or the `Distiller` of the student from the teacher."""
    config, teacher_config, student_config = shaped_configs(spec)
    if model_name == "distill":
        return _distiller(build_teacher(teacher_config, policy),
                          build_student(student_config, policy), config, spec, policy)
    if model_name == "teacher":
        return _trainee(build_teacher(teacher_config, policy), config)
    return _trainee(build_student(student_config, policy), config)


def shaped_configs(spec: TrainBench):
    """The config, and its teacher's and student's sections at the bench's shape."""
    config = config_module.load(spec.config, list(spec.overrides))
    shape = (spec.image_size, spec.image_size, 3)
    return (config,
            dataclasses.replace(config.teacher, input_shape=shape, num_classes=spec.num_classes),
            dataclasses.replace(config.student, input_shape=shape, num_classes=spec.num_classes))


def _trainee(model: keras.Model, config) -> Trainee:
    """The model as the teacher's last phase trains it: its augmentation inside the step."""
    return Trainee(model, config.phases[-1].augment, seed=0)


def _distiller(teacher, student, config, spec: TrainBench, policy: PrecisionPolicy) -> Distiller:
    return Distiller(teacher, student, method_terms(config.distill, spec.steps),
                     config.distill.alpha, config.distill.augment, seed=0, policy=policy)


def data_parallel(count: int) -> None:
    """`keras.distribution.DataParallel` over the first `count` devices, as
    training/distribute.py sets it for a job (JAX)."""
    if keras.backend.backend() != "jax":
        raise SystemExit("--devices needs KERAS_BACKEND=jax (keras.distribution)")
    import jax

    devices = jax.devices()
    if len(devices) < count:
        raise SystemExit(f"--devices {count}: this machine has {len(devices)}")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices[:count]))


def _host_batches(spec: TrainBench) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random uint8 images and int32 labels, as the pipeline feeds them (never zeros)."""
    rng = np.random.default_rng(0)
    shape = (spec.batch_size, spec.image_size, spec.image_size, 3)
    return [(rng.integers(0, 256, shape, dtype=np.uint8),
             rng.integers(0, spec.num_classes, spec.batch_size, dtype=np.int32))
            for _ in range(HOST_BATCHES)]


def classifier_rates(model: keras.Model, policy: PrecisionPolicy, spec: TrainBench) -> dict:
    """`jax_steps.rates` of a training step of any classifier (logits out), e.g. a stock
    network."""
    return jax_steps.rates(jax_steps.classifier_step(model, policy), _host_batches(spec), spec)


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




# ---------------------------------------------------------------------------------------------
# Keras' fit, on every backend: plain, and the way the trainer runs it.

def _fit_rate(model: keras.Model, data, spec: TrainBench, **fit_options) -> float:
    """Images/s of `model.fit`'s second epoch of `_fit_steps(spec)` batches (the first compiles
    and builds the iterator). Long epochs: `fit`'s work at each epoch's end (syncing the state,
    reading the metrics) would weigh on short ones, and a real epoch is hundreds of steps."""
    timer = EpochTimer()
    model.fit(data, epochs=2, verbose=0, callbacks=[timer], **fit_options)
    return rate(_fit_steps(spec) * spec.batch_size * spec.devices, timer.durations[1:])


def _fit_steps(spec: TrainBench) -> int:
    return spec.steps * spec.windows


def _plain_fit_rate(model: keras.Model, policy: PrecisionPolicy, batches: list,
                    spec: TrainBench) -> float:
    """The model alone, Keras' own loss, `fit` on host uint8 arrays: the reference."""
    chosen = [batches[i % len(batches)] for i in range(_fit_steps(spec))]
    images = np.concatenate([images for images, _ in chosen])
    labels = np.concatenate([labels for _, labels in chosen])
    model.compile(optimizer=policy.wrap_optimizer(keras.optimizers.Adam()),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    return _fit_rate(model, images, spec, y=labels, batch_size=spec.batch_size, shuffle=False)


def _trainer_fit_rate(trainee: keras.Model, policy: PrecisionPolicy, spec: TrainBench) -> float:
    """What the trainer runs: a Trainee (augmentation in the step) or Distiller, fed by
    `Batches` (gathered, and put on the device on JAX, by background threads)."""
    compile_trainee(trainee, keras.optimizers.Adam(), policy, jit_compile=True,
                    steps_per_execution=spec.steps_per_execution)
    return _fit_rate(trainee, trainer_batches(spec), spec)


def trainer_batches(spec: TrainBench) -> Batches:
    """`_fit_steps(spec)` random batches as the trainer's input gives them, of the batch size
    times the devices (DataParallel shards each)."""
    rng = np.random.default_rng(0)
    global_batch = spec.batch_size * spec.devices
    pixels = rng.integers(0, 256, (_fit_steps(spec) * global_batch, spec.image_size,
                                   spec.image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, spec.num_classes, len(pixels))
    # On one accelerator the batches go to it in the input threads; DataParallel shards them.
    return Batches(pixels, range(len(pixels)), labels, global_batch, shuffle=True,
                   to_device=keras.backend.backend() == "jax" and spec.devices == 1
                   and accelerator_name() is not None)


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
