"""Where does Keras' `fit` lose time against its own compiled step on JAX? (issue: the fit gap)

    KERAS_BACKEND=jax python scripts/fit_gap.py [--model teacher] [--precisions P ...]
        [--image-size 224] [--batch-size 64] [--steps 100] [--trace DIR]

For one model under each precision, the same compiled training step (Keras' own
`train_function`, XLA on) is run five ways, each for `--steps` steps after a warm-up:

- `step loop`: `train_function` called in a plain Python loop on one batch already on the
  device; no data, no callbacks. What the device can do.
- `fit, device batch`: `model.fit` on a PyDataset returning that same device batch: Keras' loop
  and callbacks, no data work.
- `fit, device batch, no logs`: the same with Keras' callback dispatch emptied of batch hooks,
  as if no callback wanted per-step logs.
- `fit, host batch`: `fit` on a PyDataset returning one host (NumPy) batch, which Keras puts
  on the device one step ahead.
- `fit, arrays`: `fit` on NumPy arrays (Keras' array adapter, shuffling), the common case.

`--trainer` measures the trainer's way instead: a `Trainee` (augmentation inside the step) fed
by `Batches`, against the Trainee's own step loop, without and with `augment: light`.

Each `fit` row also gives the host's own period: the median time between two `on_train_batch_begin`
calls, measured where the Python loop is. When the period equals the step, the device sets the
pace; when it is longer, the host does. `--trace DIR` writes a `jax.profiler` trace (Perfetto
JSON) of 10 steps of `fit, device batch` under the last precision.

Keras' side of the reproduction needs only keras, numpy and jax; this project gives it the model
(and, with `--trainer`, the Trainee and Batches).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from teacher_student import config as config_module  # noqa: E402
from teacher_student.data.batches import Batches  # noqa: E402
from teacher_student.models.precision import PrecisionPolicy  # noqa: E402
from teacher_student.models.student import build_student  # noqa: E402
from teacher_student.models.teacher import build_teacher  # noqa: E402
from teacher_student.timing import EpochTimer, Repeated  # noqa: E402
from teacher_student.training.trainee import Trainee, compile_trainee  # noqa: E402


class HostPeriod(EpochTimer):
    """Epoch seconds, and seconds between batch starts as the Python loop sees them. A begin
    hook only: Keras still dispatches batch ends asynchronously."""

    def __init__(self):
        super().__init__()
        self.starts: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        self.starts.append(time.perf_counter())

    def period(self) -> float:
        return float(np.median(np.diff(self.starts[-len(self.starts) // 2:])))


def build(model_name: str, precision: str, image_size: int) -> keras.Model:
    policy = PrecisionPolicy(precision)
    config = config_module.load(None, [])
    shape = (image_size, image_size, 3)
    section = config.teacher if model_name == "teacher" else config.student
    section = dataclasses.replace(section, input_shape=shape, num_classes=100)
    model = (build_teacher if model_name == "teacher" else build_student)(section, policy)
    model.compile(optimizer=policy.wrap_optimizer(keras.optimizers.Adam()),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=True)
    return model


def step_loop(model: keras.Model, batch, steps: int) -> float:
    """Seconds per step of Keras' compiled step in a plain loop, batch on the device."""
    model.make_train_function()
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True,
                                 purge_model_variables=False)
    state = jax.tree.map(lambda value: value.copy(), state)  # the step donates its state

    def repeated():
        while True:
            yield batch

    iterator = repeated()
    for _ in range(5):
        logs, state = model.train_function(state, iterator)
    jax.block_until_ready(state)
    start = time.perf_counter()
    for _ in range(steps):
        logs, state = model.train_function(state, iterator)
    jax.block_until_ready((logs, state))
    return (time.perf_counter() - start) / steps


def fit_seconds(model: keras.Model, data, steps: int, batch_size: int | None = None,
                no_batch_logs: bool = False, **fit_options) -> dict:
    """Seconds per step of the second of two epochs of `steps` steps, and the host's period."""
    period = HostPeriod()
    callbacks = [period]
    if no_batch_logs:
        callbacks = keras.callbacks.CallbackList(callbacks, model=model, add_history=False,
                                                 add_progbar=False)
        callbacks.on_train_batch_end = lambda *args, **kwargs: None
    model.fit(data, epochs=2, verbose=0, callbacks=callbacks, batch_size=batch_size,
              shuffle=False, **fit_options)
    return {"step_ms": 1e3 * period.durations[-1] / steps,
            "host_period_ms": 1e3 * period.period()}


def trainer_rows(model_name: str, precision: str, image_size: int, batch_size: int,
                 steps: int) -> dict:
    """The trainer's way: a `Trainee` (augmentation in the step), fed by `Batches` (rows
    gathered and put on the device by threads), without and with `augment: light`."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch_size * steps, image_size, image_size, 3), np.uint8)
    labels = rng.integers(0, 100, batch_size * steps).astype(np.int32)
    device_batch = jax.device_put((images[:batch_size], labels[:batch_size]))
    row = {"model": model_name, "precision": precision}
    for augment in ("none", "light"):
        trainee = Trainee(build(model_name, precision, image_size), augment, seed=0)
        compile_trainee(trainee, keras.optimizers.Adam(), PrecisionPolicy(precision), True)
        fit_seconds(trainee, Repeated(device_batch, 10), 10)  # compiles
        row[f"trainee {augment}: step loop"] = {
            "step_ms": 1e3 * step_loop(trainee, device_batch, steps)}
        batches = Batches(images, range(len(images)), labels, batch_size, shuffle=True,
                          to_device=True)
        row[f"trainee {augment}: fit on Batches"] = fit_seconds(trainee, batches, steps)
    return row


def measure(model_name: str, precision: str, image_size: int, batch_size: int,
            steps: int, trace_folder: str | None = None) -> dict:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch_size * steps, image_size, image_size, 3), np.uint8)
    labels = rng.integers(0, 100, batch_size * steps).astype(np.int32)
    host_batch = (images[:batch_size], labels[:batch_size])
    device_batch = jax.device_put(host_batch)
    model = build(model_name, precision, image_size)
    row = {"model": model_name, "precision": precision}
    fit_seconds(model, Repeated(device_batch, 10), 10)  # compiles
    row["step loop"] = {"step_ms": 1e3 * step_loop(model, device_batch, steps)}
    row["fit, device batch"] = fit_seconds(model, Repeated(device_batch, steps), steps)
    row["fit, device batch, no logs"] = fit_seconds(model, Repeated(device_batch, steps), steps,
                                                    no_batch_logs=True)
    row["fit, host batch"] = fit_seconds(model, Repeated(host_batch, steps), steps)
    row["fit, arrays"] = fit_seconds(model, images, steps, batch_size=batch_size, y=labels)
    if trace_folder:
        with jax.profiler.trace(trace_folder, create_perfetto_trace=True):
            model.fit(Repeated(device_batch, 10), epochs=1, verbose=0)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="teacher", choices=["teacher", "student"])
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_float16"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--trainer", action="store_true",
                        help="the trainer's rows instead: Trainee and Batches")
    parser.add_argument("--trace", help="folder for a profiler trace of `fit, device batch`")
    args = parser.parse_args()
    print(f"{jax.devices()[0].device_kind}, JAX {jax.__version__}, Keras {keras.__version__}")
    for precision in args.precisions:
        if args.trainer:
            row = trainer_rows(args.model, precision, args.image_size, args.batch_size,
                               args.steps)
        else:
            row = measure(args.model, precision, args.image_size, args.batch_size, args.steps,
                          args.trace if precision == args.precisions[-1] else None)
        print(json.dumps(row), flush=True)
        loop = None
        for name, figures in row.items():
            if isinstance(figures, dict):
                if name.endswith("step loop"):
                    loop = figures["step_ms"]
                period = figures.get("host_period_ms")
                print(f"  {precision:15} {name:28} {figures['step_ms']:7.2f} ms/step "
                      f"({loop / figures['step_ms']:.2f} of the step loop)"
                      + (f", host period {period:6.2f} ms" if period else ""), flush=True)


if __name__ == "__main__":
    main()
