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

from teacher_student.hardware import accelerator_name, gpu_compute_capability
from teacher_student.words import counted

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

    @property
    def batches_to_device(self) -> bool:
        """Whether batches go to the device in the input threads (JAX, one accelerator)."""
        return (keras.backend.backend() == "jax" and self.replicas == 1
                and accelerator_name() is not None)

    @property
    def spans_processes(self) -> bool:
        """Whether several processes take every step together (each must take as many)."""
        return self.name.startswith("MultiWorker")

    def scope(self):
        return self.engine.scope() if self.engine is not None else contextlib.nullcontext()

    def describe(self) -> str:
        where = "" if self.is_chief else f", worker {self.worker_index} (not chief)"
        return f"distribution {self.name}: {counted(self.replicas, 'replica')}{where}"

    def callbacks(self) -> list:
        """What training needs under this engine: under a multi-replica tf.distribute strategy,
        moving statistics averaged over the replicas at each epoch's end."""
        if self.replicas > 1 and keras.backend.backend() == "tensorflow":
            return [AverageMovingStatistics(self.engine)]
        return []


class AverageMovingStatistics(keras.callbacks.Callback):
    """Replaces every replica's BatchNorm moving statistics by their mean over all replicas,
    at the end of each epoch (before the epoch's checkpoint is written).

    Synchronous training keeps the trainable weights identical on every replica, but each
    replica updates its moving statistics from its own share of the data, so they drift apart
    and a worker would save statistics of its shard alone. Averaged, every worker ends with the
    same weights, and the statistics describe all the data.
    """

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        for variable in self.model.non_trainable_variables:
            if not keras.backend.is_float_dtype(variable.dtype):
                continue  # seed generator states
            local = self.strategy.run(lambda v=variable: tf.identity(v.value))
            variable.assign(self.strategy.reduce("MEAN", local, axis=None))


def choose_jit_compile(setting: bool | str, distribution: Distribution) -> tuple[bool, str]:
    """Whether training steps compile with XLA, and why.

    `auto` turns XLA on where there is a GPU: there mixed precision pays, and XLA fuses CBAM's
    many small ops. On a CPU with TensorFlow it stays off: XLA's CPU depthwise convolutions make
    the student's training step 5x slower (`bench cpu`, BENCHMARKS.md). JAX always compiles
    (without it, JAX runs op by op). On Keras' torch backend it stays off: there it means
    torch.compile, which Keras' layers make recompile again and again (4x slower steps on a CPU;
    BENCHMARKS.md, "Keras' torch backend"). Under a multi-replica tf.distribute strategy it is
    off whatever the setting (see above).
    """
    if not distribution.allows_xla:
        return False, "XLA off: it fails under this tf.distribute strategy (see distribute.py)"
    if setting != "auto":
        return bool(setting), f"XLA {'on' if setting else 'off'} (as configured)"
    if keras.backend.backend() == "torch":
        return False, ("XLA off (auto: on the torch backend jit_compile is torch.compile, "
                       "which recompiles layer by layer; --set jit_compile=true turns it on)")
    if gpu_compute_capability() is not None:
        return True, "XLA on (auto: a GPU)"
    if keras.backend.backend() == "jax":
        return True, "XLA on (auto: JAX compiles its steps)"
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
        strategy = _multi_worker_strategy(tf)
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


def _multi_worker_strategy(tf):
    """MultiWorkerMirroredStrategy with a `reduce` that Keras 3's `fit` can call.

    `fit` fails under the stock strategy (keras-team/keras#20585, "Attempt to convert a value
    (PerReplica...)"): to learn the input's shapes it reduces a whole (x, y) batch at once,
    uint8 images included, and it reduces its logs, which are scalars, along axis 0; the
    strategy's cross-worker reduce takes one value at a time, of a float or int32/int64 dtype,
    and a scalar has no axis 0. This subclass reduces each value of a structure on its own,
    other dtypes through float32, scalars over the replicas only. Everything else is the stock
    strategy; the two-worker test in tests/test_distribute.py trains through it.
    """
    reducible = (tf.bfloat16, tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)

    class KerasFitMultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            parent = super()

            def reduce_one(one):
                local = self.experimental_local_results(one)[0]
                axis_of_one = None if local.shape.rank == 0 else axis
                if local.dtype in reducible:
                    return parent.reduce(reduce_op, one, axis_of_one)
                wide = self.run(lambda part: tf.cast(part, tf.float32), args=(one,))
                return tf.cast(parent.reduce(reduce_op, wide, axis_of_one), local.dtype)

            return tf.nest.map_structure(reduce_one, value)

    return KerasFitMultiWorkerStrategy()


def _split_cpu(tf, replicas: int) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    config = [tf.config.LogicalDeviceConfiguration()] * replicas
    try:
        tf.config.set_logical_device_configuration(cpu, config)
    except RuntimeError as err:  # TensorFlow already initialised its devices
        if len(tf.config.list_logical_devices("CPU")) != replicas:
            raise RuntimeError(f"{CPU_REPLICAS_VARIABLE}={replicas} must be set before "
                               "TensorFlow starts") from err
