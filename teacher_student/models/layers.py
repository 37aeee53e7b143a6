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
class OnePassBatchNormalization(keras.layers.BatchNormalization):
    """Keras' batch normalization whose training statistics read the batch once.

    Keras takes the mean, then the variance about it: two reductions, the second waiting for
    the first. Here both come from the same read, the mean and the mean square of the inputs
    less one pixel of each channel (a shift that keeps the difference of the two free of
    cancellation, whatever the channel's mean), so XLA fuses them into one kernel. The values
    are Keras' to float32 rounding; the teacher's step runs 5% faster on a GPU (BENCHMARKS.md).
    """

    def _moments(self, inputs, mask):
        if mask is not None or self.synchronized:
            return super()._moments(inputs, mask)
        axes = self._reduction_axes
        first = tuple(slice(0, 1) if axis in axes else slice(None)
                      for axis in range(len(inputs.shape)))
        shift = ops.stop_gradient(inputs[first])
        centered = inputs - shift
        mean = ops.mean(centered, axis=axes)
        variance = ops.maximum(ops.mean(ops.square(centered), axis=axes) - ops.square(mean), 0.0)
        # A reshape, not a squeeze: in a traced step the batch dimension may be unknown.
        return mean + ops.reshape(shift, ops.shape(mean)), variance


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


# ITU-R 601-2 luma, as PIL's "L" mode (data/decode.py) makes grey images from colour ones.
LUMA = (0.299, 0.587, 0.114)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DropPath(keras.layers.Layer):
    """Stochastic depth (Huang et al., ECCV 2016) on a residual branch: in training each image's
    branch is dropped with probability `rate` and kept ones scaled by 1 / (1 - rate), so the
    block is its shortcut alone for that image (timm's `drop_path`); identity otherwise."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = rate, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or not self.rate:
            return inputs
        keep = 1.0 - self.rate
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        kept = keras.random.uniform(shape, seed=self.seed_generator) < keep
        return inputs * ops.cast(kept, inputs.dtype) / ops.cast(keep, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResizeTo(keras.layers.Layer):
    """uint8 images [B, H, W, C] -> images [B, height, width, channels] in `output_dtype`,
    resized bilinearly in float32 and rounded, grey repeated into colour or colour made grey
    (PIL's luma): a teacher of another resolution sees the student's batch as its own images.
    Made smaller by a factor of 2 or more, each block of pixels is averaged first, so that
    the bilinear samples do not alias (TensorFlow's antialiased resize has no XLA kernel)."""

    def __init__(self, height: int, width: int, channels: int, output_dtype: str = "uint8",
                 **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.height, self.width, self.channels = height, width, channels
        self.output_dtype = keras.backend.standardize_dtype(output_dtype)

    def call(self, images):
        resized = ops.cast(images, "float32")
        factor = min(images.shape[1] // self.height, images.shape[2] // self.width)
        if factor >= 2:
            resized = ops.average_pool(resized, factor, factor, padding="valid")
        resized = ops.image.resize(resized, (self.height, self.width))
        have = images.shape[-1]
        if have == 1 and self.channels == 3:
            resized = ops.repeat(resized, 3, axis=-1)
        elif have == 3 and self.channels == 1:
            resized = ops.sum(resized * ops.array(LUMA, "float32"), axis=-1, keepdims=True)
        return ops.cast(ops.clip(ops.round(resized), 0, 255), self.output_dtype)

    def compute_output_spec(self, images):
        return keras.KerasTensor((images.shape[0], self.height, self.width, self.channels),
                                 dtype=self.output_dtype)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "channels": self.channels, "output_dtype": self.output_dtype}
