"""Building blocks as plain functions: `apply_<block>(x, ..., policy, name)`.

Every layer gets its dtype from the precision policy and a fixed hierarchical name
(`stage2_cbam_spatial_conv`), so the graph is the same every time it is built.
"""

from __future__ import annotations

from keras import layers

from teacher_student.models.layers import ChannelPool, DropPath, OnePassBatchNormalization
from teacher_student.models.precision import PrecisionPolicy

# Keras' default 0.99 needs a few hundred steps to forget its initial statistics; small
# datasets have a few dozen steps per epoch, and validation would run on the initial ones.
BN_MOMENTUM = 0.9
# From this image size up, the stem has stride 2: the finest scale then costs a quarter.
STRIDED_STEM_FROM = 96


def stem_stride(image_size: int) -> int:
    return 2 if image_size >= STRIDED_STEM_FROM else 1


def apply_conv_bn_act(x, width: int, kernel: int, stride: int, policy: PrecisionPolicy,
                      name: str, activation: str | None = "relu"):
    x = layers.Conv2D(width, kernel, strides=stride, padding="same", use_bias=False,
                      dtype=policy.layer_dtype, name=f"{name}_conv")(x)
    x = OnePassBatchNormalization(momentum=BN_MOMENTUM, dtype=policy.layer_dtype,
                                  name=f"{name}_bn")(x)
    if activation:
        x = layers.Activation(activation, dtype=policy.layer_dtype, name=f"{name}_act")(x)
    return x


def apply_channel_attention(x, reduction: int, policy: PrecisionPolicy, name: str):
    """CBAM channel attention: one MLP shared by the average- and max-pooled features."""
    width = x.shape[-1]
    hidden = max(8, width // reduction)
    squeeze = layers.Conv2D(hidden, 1, activation="relu", dtype=policy.layer_dtype,
                            name=f"{name}_mlp_squeeze")
    excite = layers.Conv2D(width, 1, dtype=policy.layer_dtype, name=f"{name}_mlp_excite")
    avg = layers.GlobalAveragePooling2D(keepdims=True, dtype=policy.layer_dtype,
                                        name=f"{name}_avg_pool")(x)
    peak = layers.GlobalMaxPooling2D(keepdims=True, dtype=policy.layer_dtype,
                                     name=f"{name}_max_pool")(x)
    scores = policy.merge("add", [excite(squeeze(avg)), excite(squeeze(peak))], f"{name}_add")
    weights = layers.Activation("sigmoid", dtype=policy.layer_dtype, name=f"{name}_gate")(scores)
    return policy.merge("multiply", [x, weights], f"{name}_scale")


def apply_spatial_attention(x, policy: PrecisionPolicy, name: str, kernel: int = 7):
    """CBAM spatial attention: channel mean and max, a 7x7 conv, a sigmoid."""
    pooled = ChannelPool(dtype=policy.layer_dtype, name=f"{name}_pool")(x)
    weights = layers.Conv2D(1, kernel, padding="same", activation="sigmoid",
                            dtype=policy.layer_dtype, name=f"{name}_conv")(pooled)
    return policy.merge("multiply", [x, weights], f"{name}_scale")


def apply_cbam(x, reduction: int, policy: PrecisionPolicy, name: str):
    """Convolutional Block Attention Module (Woo et al., 2018): channel, then spatial."""
    x = apply_channel_attention(x, reduction, policy, f"{name}_channel")
    return apply_spatial_attention(x, policy, f"{name}_spatial")


def apply_residual_block(x, width: int, stride: int, policy: PrecisionPolicy, name: str,
                         cbam: bool = True, cbam_reduction: int = 8, drop_path: float = 0.0):
    """Two 3x3 convolutions, CBAM on the residual branch, a projection shortcut when needed;
    `drop_path` > 0: the branch dropped per image at that rate in training (stochastic depth)."""
    shortcut = x
    if stride != 1 or x.shape[-1] != width:
        shortcut = apply_conv_bn_act(x, width, 1, stride, policy, f"{name}_shortcut",
                                     activation=None)
    y = apply_conv_bn_act(x, width, 3, stride, policy, f"{name}_conv1")
    y = apply_conv_bn_act(y, width, 3, 1, policy, f"{name}_conv2", activation=None)
    if cbam:
        y = apply_cbam(y, cbam_reduction, policy, f"{name}_cbam")
    if drop_path:
        y = DropPath(drop_path, dtype=policy.layer_dtype, name=f"{name}_drop_path")(y)
    y = policy.merge("add", [shortcut, y], f"{name}_add")
    return layers.Activation("relu", dtype=policy.layer_dtype, name=f"{name}_out")(y)


def apply_separable_block(x, width: int, stride: int, policy: PrecisionPolicy, name: str):
    """Depthwise 3x3 then pointwise 1x1 (MobileNet): a fraction of a full conv's cost."""
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                               dtype=policy.layer_dtype, name=f"{name}_depthwise")(x)
    x = OnePassBatchNormalization(momentum=BN_MOMENTUM, dtype=policy.layer_dtype,
                                  name=f"{name}_depthwise_bn")(x)
    x = layers.Activation("relu", dtype=policy.layer_dtype, name=f"{name}_depthwise_act")(x)
    return apply_conv_bn_act(x, width, 1, 1, policy, f"{name}_pointwise")


def apply_multiscale_fusion(features: list, width: int, upsampling: str,
                            policy: PrecisionPolicy, name: str):
    """Brings feature maps of several scales to the resolution of the middle one and fuses them.

    Finer maps are average-pooled down, coarser ones upsampled (bilinear in a float32 island),
    after a 1x1 projection to `width` channels each; the results are concatenated.
    """
    target = features[len(features) // 2].shape[1]
    resized = []
    for i, feature in enumerate(features):
        size = feature.shape[1]
        y = apply_conv_bn_act(feature, width, 1, 1, policy, f"{name}_lateral{i}")
        if size > target:
            y = layers.AveragePooling2D(size // target, dtype=policy.layer_dtype,
                                        name=f"{name}_down{i}")(y)
        elif size < target:
            y = policy.upsample(y, target // size, upsampling, name=f"{name}_up{i}")
        resized.append(y)
    return policy.merge("concatenate", resized, f"{name}_concat")
