"""Keras' dynamic loss scaling, with its two decisions taken by selects instead of branches.

Keras' `LossScaleOptimizer.stateless_apply` (the step of its JAX trainer) chooses between
"apply the step" and "skip it, halve the scale" with `ops.cond` on whether the gradients are
finite, and between "grow the scale" and "count one more step" with another. Under XLA on a GPU
each such conditional copies its predicate to the host and waits for it: the host stops
issuing the step's kernels until the GPU has computed every gradient, and the GPU then idles
while the host issues the optimizer's. `SelectingLossScaleOptimizer` computes both outcomes and
keeps one with `ops.where`, which XLA fuses into the optimizer's own kernels: the same values,
no wait. (The stateful `apply` of the TensorFlow and torch trainers is Keras' own.)
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="teacher_student")
class SelectingLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """`LossScaleOptimizer` whose stateless step has no conditional: see the module."""

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        if not self.built:
            raise ValueError(f"{self.__class__.__name__} must be built before `stateless_apply`")
        finite = self.check_finite(grads)
        mapping = list(zip(self.variables, optimizer_variables))
        own_values = list(optimizer_variables)[:len(self._variables)]
        inner_values = list(optimizer_variables)[len(self._variables):]
        with keras.StatelessScope(state_mapping=mapping):
            counter, scale = self.step_counter.value, self.dynamic_scale.value
            grow = ops.equal(counter, self.dynamic_growth_steps - 1)
            zero = ops.zeros_like(counter)
            new_counter = ops.where(finite, ops.where(grow, zero, counter + 1), zero)
            new_scale = ops.where(finite, ops.where(grow, scale * 2.0, scale), scale * 0.5)
            unscaled = [g if g is None or self._overwrite_variable_with_gradient(v)
                        else ops.divide(g, scale)
                        for g, v in zip(grads, self._trainable_variables)]
            stepped, stepped_inner = self.inner_optimizer.stateless_apply(
                self.inner_optimizer.variables, unscaled, trainable_variables)
        changed = {id(self.step_counter): new_counter, id(self.dynamic_scale): new_scale}
        own = [changed.get(id(v), value) for v, value in zip(self._variables, own_values)]
        return (_keep_if(finite, stepped, trainable_variables),
                own + _keep_if(finite, stepped_inner, inner_values))


def _keep_if(finite, stepped: list, before: list) -> list:
    """Each stepped value where the gradients were finite, else its value before the step."""
    return [ops.where(finite, new, ops.cast(old, new.dtype)) for new, old in zip(stepped, before)]
