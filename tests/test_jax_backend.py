"""The model code runs on JAX (the GPU machine has no TensorFlow): a subprocess with
KERAS_BACKEND=jax builds the models and takes compiled training and distillation steps."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("jax")

SCRIPT = textwrap.dedent("""
    import sys
    import keras, numpy as np
    assert keras.backend.backend() == "jax"
    from teacher_student.models import audit, freezing, precision, student, teacher
    from teacher_student.training import distiller, losses
    assert "tensorflow" not in sys.modules, "model code imported tensorflow"
    sys.path.insert(0, "tests")
    from helpers import TINY_STUDENT, TINY_TEACHER

    policy = precision.PrecisionPolicy("mixed_float16")
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    y = np.array([0, 2])
    t = teacher.build_teacher(TINY_TEACHER, policy)
    s = student.build_student(TINY_STUDENT, policy)
    assert audit.audit_dtypes(t, policy.name) == [] and audit.audit_dtypes(s, policy.name) == []
    freezing.set_trainable(t, "head")
    t.compile(optimizer=policy.wrap_optimizer(keras.optimizers.Adam()),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    assert np.isfinite(t.train_on_batch(x, y))
    d = distiller.Distiller(t, s, alpha=0.5, temperature=4.0)
    d.compile(optimizer=policy.wrap_optimizer(keras.optimizers.Adam()), jit_compile=True)
    logs = d.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]), logs
    print("jax ok", logs)
""")


def test_builders_and_training_steps_run_on_jax_without_tensorflow():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                            text=True, timeout=600, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "jax ok" in result.stdout
