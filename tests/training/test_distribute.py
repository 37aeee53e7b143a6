"""Training under tf.distribute: MirroredStrategy on two logical CPU devices (the multi-GPU
code path) and MultiWorkerMirroredStrategy as two local processes on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from helpers import write_image_folder

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="tf.distribute strategies")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(command: str, images, run_dir, *extra: str) -> list[str]:
    return [sys.executable, "-m", "teacher_student", command, "--config", "tiny",
            "--data", str(images), "--run-dir", str(run_dir), "--set", "data.batch_size=4",
            "--set", "measure_latency=false",
            *extra]


def run(args, env_extra: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                            cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.mark.parametrize("setting, replicas, expected", [
    ("auto", 1, keras.backend.backend() == "jax"),  # no GPU: off on TensorFlow, on with JAX
    (True, 1, True),
    (False, 1, False),
    (True, 2, False),  # XLA fails under a multi-replica tf.distribute strategy
])
def test_xla_follows_the_setting_the_machine_and_the_strategy(setting, replicas, expected):
    from teacher_student.training.distribute import Distribution, choose_jit_compile

    jit_compile, why = choose_jit_compile(setting, Distribution("test", replicas))
    assert jit_compile is expected
    assert why.startswith("XLA on" if expected else "XLA off")


# mixed_float16 is where MirroredStrategy with loss scaling has crashed (MIXED-PRECISION-FACTS.md);
# float32 adds little to it, and runs with the slow tests.
@pytest.mark.parametrize("precision", [pytest.param("float32", marks=pytest.mark.slow),
                                       "mixed_float16"])
def test_teacher_phases_and_distillation_under_mirrored_strategy(precision, tmp_path):
    images = write_image_folder(tmp_path / "images", per_class=24)
    env = {"TEACHER_STUDENT_CPU_REPLICAS": "2"}
    # One teacher phase (trunk frozen), then distillation and the baseline.
    frozen_first = ["--precision", precision, "--set", "phases.0.trainable=head",
                    "--set", "phases.1.epochs=0", "--set", "phases.2.epochs=0"]
    # The preflight runs under the strategy once (mixed_float16: with loss scaling too).
    checks = [] if precision == "mixed_float16" else ["--no-preflight"]
    teacher = run(cli("train-teacher", images, tmp_path / "run", *frozen_first, *checks), env)
    assert "MirroredStrategy (logical CPUs): 2 replicas, global batch 8" in teacher.stdout
    assert f"precision {precision}" in teacher.stdout
    distilled = run(cli("distill", images, tmp_path / "run", *frozen_first,
                        "--set", "distill.epochs=1", "--no-preflight"), env)
    assert "student_distilled" in distilled.stdout
    for name in ("teacher.keras", "student_distilled.keras", "student_scratch.keras"):
        assert (tmp_path / "run" / name).exists()


XLA_UNDER_MIRRORED = textwrap.dedent("""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        model.compile(optimizer="adam", loss="mse", jit_compile=True)
    model.fit(np.ones((8, 4)), np.ones((8, 2)), batch_size=4, epochs=1, verbose=0)
""")


@pytest.mark.xfail(strict=True, reason="XLA under MirroredStrategy fails (see distribute.py); "
                   "when this passes, XLA can be allowed under tf.distribute again")
def test_xla_under_mirrored_strategy_still_fails():
    run([sys.executable, "-c", XLA_UNDER_MIRRORED], {}, timeout=300)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# 50-60 s: two processes each build and train the job; the strategy's step itself is in CI
# above (MirroredStrategy, mixed_float16)
@pytest.mark.slow
def test_two_worker_multi_worker_mirrored_run_ends_with_identical_weights(tmp_path):
    images = write_image_folder(tmp_path / "images", per_class=24)
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    one_epoch = ["--set", "phases.1.epochs=0", "--set", "phases.2.epochs=0"]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        processes.append(subprocess.Popen(
            cli("train-teacher", images, tmp_path / "run", *one_epoch), env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[output.find("Traceback"):][:3000]
    assert "MultiWorkerMirroredStrategy: 2 replicas" in outputs[0]
    assert "global batch 8" in outputs[0]
    chief = keras.saving.load_model(tmp_path / "run" / "teacher.keras")
    other = keras.saving.load_model(tmp_path / "run" / "workers" / "worker-1" / "teacher.keras")
    # Trainable weights by synchronous training, moving statistics by AverageMovingStatistics.
    for a, b in zip(chief.weights, other.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    phase = tmp_path / "run" / "teacher" / "phase1_warmup"
    assert (phase / "done.json").exists() and (phase / "best.keras").exists()
