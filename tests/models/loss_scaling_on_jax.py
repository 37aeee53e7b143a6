"""Run by test_loss_scaling.py under KERAS_BACKEND=jax (TensorFlow's Keras has no stateless
optimizer step): seven steps of Keras' loss scaling and ours on the same gradients, and each
one's jitted step's HLO. Prints one JSON object."""

from __future__ import annotations

import json

import jax
import keras
import numpy as np

from teacher_student.models.loss_scaling import SelectingLossScaleOptimizer

KINDS = {"keras": keras.optimizers.LossScaleOptimizer, "ours": SelectingLossScaleOptimizer}
GROWTH_STEPS = 2  # the scale doubles after two finite steps in a row


def scaled_adam(kind):
    optimizer = kind(keras.optimizers.Adam(0.1), initial_scale=8.0,
                     dynamic_growth_steps=GROWTH_STEPS)
    variables = [keras.Variable(np.ones((3, 2), "float32")), keras.Variable(np.zeros(2, "float32"))]
    optimizer.build(variables)
    return optimizer, ([v.value for v in variables], [v.value for v in optimizer.variables])


def gradients(step: int) -> list:
    """Finite gradients, except at steps 2 (an inf) and 5 (a NaN)."""
    kernel = np.full((3, 2), 0.5 + step, "float32")
    bias = np.array([1.0, -2.0], "float32")
    if step == 2:
        kernel[1, 0] = np.inf
    if step == 5:
        bias[1] = np.nan
    return [kernel, bias]


def run(kind) -> dict:
    optimizer, (weights, slots) = scaled_adam(kind)
    step = jax.jit(lambda w, s, g: optimizer.stateless_apply(s, g, w))
    states = []
    for index in range(7):
        weights, slots = step(weights, slots, gradients(index))
        states.append([np.asarray(x).tolist() for x in [*weights, *slots]])
    scale = optimizer.variables.index(optimizer.dynamic_scale)
    return {"states": states, "scales": [state[len(weights) + scale] for state in states],
            "conditional": "stablehlo.case" in step.lower(weights, slots,
                                                          gradients(0)).as_text()}


print(json.dumps({name: run(kind) for name, kind in KINDS.items()}))
