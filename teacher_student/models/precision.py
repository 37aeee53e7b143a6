"""The precision policy: the one place that decides every dtype of every model we build.

Mixed precision fails under XLA in a few precise ways (see the README's "Mixed precision"):
bilinear resize gradients come out float32 and meet float16 gradients, frozen parts are still
back-propagated, and loss scaling is silently missing when layers got their policy one by one.
So a `PrecisionPolicy`

1. gives each layer its dtype policy explicitly (the global Keras policy is never read or set);
2. puts a named `CastTo` layer in front of every input of every Add / Concatenate / Multiply,
   so every merge is visibly fed one dtype;
3. keeps bilinear resize and the logits in float32 islands, with explicit casts in and out;
4. wraps the optimizer in `LossScaleOptimizer` for float16, and only then.

Under `float32` it adds no cast layer at all: the graph is the plain one.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from teacher_student.config.values import POLICIES
from teacher_student.hardware import gpu_compute_capability
from teacher_student.models.layers import CastTo

# Our models keep their structure in a registered `HeadPool`, which `load_model` must find:
# every module that loads one imports this one (for the layers above), so it is registered too.
from teacher_student.models.structure import HeadPool  # noqa: F401

MERGES = {"add": layers.Add, "concatenate": layers.Concatenate, "multiply": layers.Multiply}
FLOAT32 = "float32"


@dataclass(frozen=True)
class PrecisionPolicy:
    name: str = FLOAT32

    def __post_init__(self):
        if self.name not in POLICIES:
            raise ValueError(f"precision must be one of {list(POLICIES)}, got {self.name!r}")

    @property
    def compute_dtype(self) -> str:
        return {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(self.name, FLOAT32)

    @property
    def is_mixed(self) -> bool:
        return self.name != FLOAT32

    @property
    def layer_dtype(self) -> keras.DTypePolicy:
        """The dtype policy for an ordinary layer: compute in low precision, variables float32."""
        return keras.DTypePolicy(self.name)

    @property
    def float32_dtype(self) -> keras.DTypePolicy:
        """The dtype policy for a layer of a float32 island."""
        return keras.DTypePolicy(FLOAT32)

    def cast(self, x, dtype: str, name: str):
        """`x` cast to `dtype` by a named layer; nothing under float32 or when already there."""
        if not self.is_mixed or x.dtype == dtype:
            return x
        return CastTo(dtype, name=name)(x)

    def merge(self, kind: str, inputs: list, name: str, **kwargs):
        """An Add / Concatenate / Multiply whose every input comes through a `CastTo`."""
        if self.is_mixed:
            inputs = [
                CastTo(self.compute_dtype, name=f"{name}_cast{i}")(x) for i, x in enumerate(inputs)
            ]
        return MERGES[kind](dtype=self.layer_dtype, name=name, **kwargs)(inputs)

    def float32_island(self, layer: keras.layers.Layer, x):
        """`layer(x)` computed in float32, with explicit casts in and out under mixed policies.

        `layer` must have been made with `dtype=policy.float32_dtype`. Used for bilinear
        resize: its XLA gradient is float32 whatever the input dtype, and meets the low-precision
        gradients of the other branches ("mixed precision is disallowed").
        """
        inside = self.cast(x, FLOAT32, name=f"{layer.name}_in_float32")
        out = layer(inside)
        return self.cast(out, self.compute_dtype, name=f"{layer.name}_out_{self.compute_dtype}")

    def upsample(self, x, factor: int, interpolation: str, name: str):
        """Upsampling by `factor`; bilinear in a float32 island, nearest in the compute dtype."""
        if interpolation == "bilinear":
            up = layers.UpSampling2D(
                factor, interpolation="bilinear", dtype=self.float32_dtype, name=name
            )
            return self.float32_island(up, x)
        return layers.UpSampling2D(factor, interpolation=interpolation, dtype=self.layer_dtype,
                                   name=name)(x)

    def logits(self, x, num_classes: int, name: str = "logits"):
        """The classification layer, computed in float32 so that softmax and the loss are too."""
        x = self.cast(x, FLOAT32, name=f"{name}_in_float32")
        return layers.Dense(num_classes, dtype=self.float32_dtype, name=name)(x)

    def rebuild(self, model: keras.Model, float32_outputs: bool = False) -> keras.Model:
        """A copy of a functional `model` under this policy, weights copied.

        Each layer is rebuilt with the policy's dtype, resize layers in float32 islands (and
        the layers that make the outputs, with `float32_outputs`: a classifier's logits), and
        every merge gets its `CastTo` inputs, as in our own builders: this adopts a
        keras.applications trunk, or a saved classifier. Under a mixed policy, existing `CastTo`
        layers keep casting to float32 or, if they cast to a low precision, to this policy's
        compute dtype; under float32 they go, and a mixed model becomes the plain float32 one
        (what export needs).
        """
        outputs = {id(tensor._keras_history.operation) for tensor in model.outputs} \
            if float32_outputs else set()

        def clone_layer(layer):
            if _is_functional(layer):  # a nested trunk: its own layers under this policy too
                return self.rebuild(layer)
            config = layer.get_config()
            if not isinstance(layer, layers.Layer):  # an op (`x + 3` in MobileNetV3): no dtype
                return layer.__class__.from_config(config)
            island = is_resize(layer) or id(layer) in outputs
            config["dtype"] = self.float32_dtype if island else self.layer_dtype
            if isinstance(layer, CastTo):  # a cast computes in the dtype it casts to
                target = FLOAT32 if layer.target_dtype == FLOAT32 else self.compute_dtype
                config.update(target_dtype=target, dtype=target)
            return layer.__class__.from_config(config)

        def call_layer(layer, *args, **kwargs):
            if isinstance(layer, CastTo) and not self.is_mixed:
                return args[0]  # under float32 everything is float32: the plain graph
            # A model built under a mixed policy has its islands and casts already.
            if is_resize(layer) and args[0].dtype != FLOAT32:
                return self.float32_island(layer, args[0])
            if isinstance(layer, tuple(MERGES.values())) and self.is_mixed:
                cast = [x if self._is_cast_to_compute_dtype(x) else
                        CastTo(self.compute_dtype, name=f"{layer.name}_cast{i}")(x)
                        for i, x in enumerate(args[0])]
                return layer(cast, *args[1:], **kwargs)
            return layer(*args, **kwargs)

        clone = keras.models.clone_model(model, clone_function=clone_layer,
                                         call_function=call_layer)
        transfer_weights(model, clone)  # by name: new casts can change the layers' order
        return clone

    def _is_cast_to_compute_dtype(self, tensor) -> bool:
        made_by = tensor._keras_history.operation
        return isinstance(made_by, CastTo) and made_by.target_dtype == self.compute_dtype

    def wrap_optimizer(self, optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
        """Loss scaling for float16 (whose range needs it); bfloat16 and float32 go as they are.

        Done here, not left to `compile()`: Keras wraps only when the model's own policy is
        mixed_float16, and a functional model whose layers got the policy one by one reports
        float32, so it would train without loss scaling, silently.
        """
        if self.name == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            return keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer


def transfer_weights(source: keras.Model, target: keras.Model) -> None:
    """Copies weights layer by layer, by name, into nested models too: the same model built
    under another policy has extra cast layers, so its layer order, and the order of
    `get_weights()`, differ."""
    for layer in source.layers:
        if _is_functional(layer):
            transfer_weights(layer, target.get_layer(layer.name))
        elif layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())


def load_weights_from(model: keras.Model, path) -> None:
    """Weights of a saved model, by layer name: works across precision policies."""
    transfer_weights(keras.saving.load_model(path, safe_mode=True), model)


def _is_functional(layer) -> bool:
    return isinstance(layer, keras.Model) and hasattr(layer, "outputs")


def is_resize(layer) -> bool:
    """Whether `layer` resizes by interpolating (bilinear, area, bicubic, lanczos, ...: all
    but nearest), which must compute in float32 under XLA: TensorFlow's XLA gradients of
    these resizes are float32 whatever their input."""
    interpolation = getattr(layer, "interpolation", None)
    return (isinstance(layer, (layers.UpSampling2D, layers.Resizing))
            and interpolation not in (None, "nearest"))


def resolve(name: str) -> tuple[PrecisionPolicy, str]:
    """The policy for a configured name, and why: `auto` picks mixed_float16 on GPUs with
    float16 tensor cores (compute capability 7.0 or more, e.g. a T4) and float32 otherwise."""
    if name != "auto":
        return PrecisionPolicy(name), f"precision {name} (as configured)"
    capability = gpu_compute_capability()
    if capability and tuple(capability) >= (7, 0):
        reason = f"GPU compute capability {capability[0]}.{capability[1]} has float16 tensor cores"
        return PrecisionPolicy("mixed_float16"), f"precision mixed_float16 (auto: {reason})"
    where = "no GPU" if capability is None else f"GPU compute capability {capability}"
    return PrecisionPolicy(FLOAT32), f"precision float32 (auto: {where})"
