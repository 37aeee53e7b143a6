"""The loss scaling without conditionals takes Keras' decisions, value for value, and its
jitted step holds no conditional (the branch that makes the host wait for the GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from teacher_student.models.loss_scaling import SelectingLossScaleOptimizer
from teacher_student.models.precision import PrecisionPolicy

ON_JAX = Path(__file__).with_name("loss_scaling_on_jax.py")


@pytest.fixture(scope="module")
def steps() -> dict:
    """Keras' and ours, seven steps each, on JAX's CPU in a process of its own."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, str(ON_JAX)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_it_steps_skips_halves_and_grows_the_scale_as_keras_does(steps):
    for ours, keras_state in zip(steps["ours"]["states"], steps["keras"]["states"]):
        for got, expected in zip(ours, keras_state):
            np.testing.assert_array_equal(np.array(got), np.array(expected))
    # Steps 0-1 finite: doubled; 2 (inf) skipped, halved; 3-4 doubled; 5 (NaN) halved; 6 counted.
    assert steps["ours"]["scales"] == [8.0, 16.0, 8.0, 8.0, 16.0, 8.0, 8.0]
    kernel, bias = steps["ours"]["states"][-1][:2]
    assert np.isfinite(kernel).all() and np.isfinite(bias).all()  # step 5's NaN reached none


def test_its_jitted_step_has_no_conditional(steps):
    assert steps["keras"]["conditional"] and not steps["ours"]["conditional"]


def test_mixed_float16_gets_the_loss_scaling_without_conditionals():
    optimizer = PrecisionPolicy("mixed_float16").wrap_optimizer(keras.optimizers.Adam())
    assert isinstance(optimizer, SelectingLossScaleOptimizer)
