"""Small registered layers that the builders need and Keras lacks.

Each one is serializable (`safe_mode=True` loads it back), unlike a `Lambda`.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "teacher_student"


@keras.saving.register_keras_serializable(package=PACKAGE)
class CastTo(keras.layers.Layer):
    """Casts its input to `target_dtype`: the visible, named cast in front of merges and islands."""

    def __init__(self, target_dtype: str, **kwargs):
        # autocast=False: the input reaches `call` in its own dtype, so the cast is ours alone.
        kwargs.setdefault("autocast", False)
        target_dtype = keras.backend.standardize_dtype(target_dtype)
        kwargs.setdefault("dtype", target_dtype)  # it computes in the dtype it casts to
        super().__init__(**kwargs)
        self.target_dtype = target_dtype
        self._convert_input_args = False

    def call(self, inputs):
        return ops.cast(inputs, self.target_dtype)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype=self.target_dtype)

    def get_config(self):
        return {**super().get_config(), "target_dtype": self.target_dtype}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelPool(keras.layers.Layer):
    """Mean and max over channels, stacked: the input of CBAM's spatial attention."""

    def call(self, inputs):
        mean = ops.mean(inputs, axis=-1, keepdims=True)
        peak = ops.max(inputs, axis=-1, keepdims=True)
        return ops.concatenate([mean, peak], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)

    def get_config(self):  # explicit, so a DTypePolicy passed as dtype serializes
        return super().get_config()


@keras.saving.register_keras_serializable(package=PACKAGE)
class GradientGate(keras.layers.Layer):
    """Passes its input on; when frozen (`trainable = False`) it also stops the gradient.

    A frozen part still gets back-propagated through by a compiled train step unless its output
    is gradient-stopped; that wasted pass is also where XLA meets mixed dtypes. Freezing the
    part together with its gate skips it. Like every `trainable` change, this takes effect at
    the next `compile()`.
    """

    def call(self, inputs):
        return inputs if self.trainable else ops.stop_gradient(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):  # explicit, so a DTypePolicy passed as dtype serializes
        return super().get_config()


@keras.saving.register_keras_serializable(package=PACKAGE)
class ProbabilityAverage(keras.layers.Layer):
    """Logits whose softmax at `temperature` is the mean of the inputs' softmaxes at that
    temperature: a teacher ensemble averaged in probability, as one teacher's logits.

        T * log(mean_i softmax(logits_i / T))
    """

    def __init__(self, temperature: float, **kwargs):
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, inputs):
        log_p = ops.stack([ops.log_softmax(ops.cast(x, "float32") / self.temperature, axis=-1)
                           for x in inputs])
        mean_log_p = ops.logsumexp(log_p, axis=0) - ops.log(float(len(inputs)))
        return self.temperature * mean_log_p

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
