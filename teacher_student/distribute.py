"""Which existing distribution engine runs a job: the machine decides.

    one device                      the default strategy
    several GPUs (Kaggle's 2xT4)    tf.distribute.MirroredStrategy
    several hosts (TF_CONFIG set)   tf.distribute.MultiWorkerMirroredStrategy
    JAX backend, several devices    keras.distribution.DataParallel

The batch size in the config is per replica; the global batch is that times the replicas, and
the learning rate is scaled with it (the linear scaling rule) unless the config says not to.

XLA and tf.distribute: a compiled (`jit_compile=True`) Keras step under MirroredStrategy fails
here with "Trying to access resource ... located in device ... from device ..." (XLA's
"tf.Variable on a different device" limitation), and with loss scaling it has crashed in Keras 3
(keras-team/keras#21366, #20763). So under a multi-replica TensorFlow strategy the step runs
without XLA; mixed precision still works there (the dtype error is an XLA compile error). The
tests train the teacher phases and distillation under MirroredStrategy in float32 and
mixed_float16, and check that XLA still fails, so the choice is revisited when it stops failing.

`TEACHER_STUDENT_CPU_REPLICAS=N` splits the CPU into N logical devices under MirroredStrategy:
the multi-GPU code path, testable on any machine.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass

import keras

CPU_REPLICAS_VARIABLE = "TEACHER_STUDENT_CPU_REPLICAS"


@dataclass(frozen=True)
class Distribution:
    name: str
    replicas: int
    is_chief: bool = True
    worker_index: int = 0
    engine: object = None  # the tf.distribute strategy or keras.distribution object

    @property
    def allows_xla(self) -> bool:
        return self.replicas == 1 or keras.backend.backend() == "jax"

    def scope(self):
        return self.engine.scope() if self.engine is not None else contextlib.nullcontext()

    def describe(self) -> str:
        where = "" if self.is_chief else f", worker {self.worker_index} (not chief)"
        return f"distribution {self.name}: {self.replicas} replica(s){where}"


def choose_jit_compile(setting: bool | str, distribution: Distribution) -> tuple[bool, str]:
    """Whether training steps compile with XLA, and why.

    `auto` turns XLA on where there is a GPU: there mixed precision pays, and XLA fuses CBAM's
    many small ops. On a CPU it stays off: XLA's CPU depthwise convolutions make the student's
    training step about 4x slower (`bench cpu`, BENCHMARKS.md). Under a multi-replica
    tf.distribute strategy it is off whatever the setting (see above).
    """
    if not distribution.allows_xla:
        return False, "XLA off: it fails under this tf.distribute strategy (see distribute.py)"
    if setting != "auto":
        return bool(setting), f"XLA {'on' if setting else 'off'} (as configured)"
    from teacher_student.precision import gpu_compute_capability

    if gpu_compute_capability() is not None:
        return True, "XLA on (auto: a GPU)"
    return False, ("XLA off (auto: no GPU; on a CPU it slows depthwise convolutions; "
                   "--set jit_compile=true turns it on)")


def choose() -> Distribution:
    if keras.backend.backend() == "jax":
        return _jax_distribution()
    if keras.backend.backend() == "tensorflow":
        return _tensorflow_distribution()
    return Distribution("default", 1)


def _jax_distribution() -> Distribution:
    import jax

    devices = jax.devices()
    if len(devices) < 2:
        return Distribution("default", 1)
    data_parallel = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(data_parallel)
    return Distribution("jax DataParallel", len(devices), engine=data_parallel)


def _tensorflow_distribution() -> Distribution:
    import tensorflow as tf

    cluster = json.loads(os.environ.get("TF_CONFIG", "{}"))
    workers = cluster.get("cluster", {}).get("worker", [])
    if len(workers) + len(cluster.get("cluster", {}).get("chief", [])) > 1:
        task = cluster.get("task", {})
        chief = task.get("type") == "chief" or (
            task.get("type") == "worker" and task.get("index") == 0
            and not cluster["cluster"].get("chief"))
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return Distribution("MultiWorkerMirroredStrategy", strategy.num_replicas_in_sync,
                            is_chief=chief, worker_index=int(task.get("index", 0)),
                            engine=strategy)
    cpu_replicas = int(os.environ.get(CPU_REPLICAS_VARIABLE, "0") or 0)
    if cpu_replicas > 1:
        _split_cpu(tf, cpu_replicas)
        devices = [f"/cpu:{i}" for i in range(cpu_replicas)]
        strategy = tf.distribute.MirroredStrategy(devices)
        return Distribution("MirroredStrategy (logical CPUs)", cpu_replicas, engine=strategy)
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        return Distribution("MirroredStrategy", strategy.num_replicas_in_sync, engine=strategy)
    return Distribution("default", 1)


def _split_cpu(tf, replicas: int) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    config = [tf.config.LogicalDeviceConfiguration()] * replicas
    try:
        tf.config.set_logical_device_configuration(cpu, config)
    except RuntimeError as err:  # TensorFlow already initialised its devices
        if len(tf.config.list_logical_devices("CPU")) != replicas:
            raise RuntimeError(f"{CPU_REPLICAS_VARIABLE}={replicas} must be set before "
                               "TensorFlow starts") from err
