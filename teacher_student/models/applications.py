"""`keras.applications` networks as trunks of our models, under our precision policy.

The network is built without its top, rebuilt layer by layer under the policy (casts before
its merges, resizes in float32: `PrecisionPolicy.rebuild`) and nested as one model named
`trunk`; it is fed 0..255 pixels scaled as its family expects. Its weights: none, `imagenet`
(downloaded by Keras, or found in its cache) or a local weights file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import keras
from keras import layers

from teacher_student.errors import ConfigError
from teacher_student.models.blocks import BN_MOMENTUM
from teacher_student.models.precision import PrecisionPolicy

# Families we can feed, and the preprocessing each expects of 0..255 pixels.
PREPROCESSING = {
    "EfficientNetV2": "raw",  # has its own rescaling inside
    "EfficientNet": "raw",
    "ConvNeXt": "raw",
    "RegNet": "raw",
    "MobileNetV3": "raw",
    "ResNet50V2": "minus_one_to_one",
    "ResNet101V2": "minus_one_to_one",
    "ResNet152V2": "minus_one_to_one",
    "MobileNetV2": "minus_one_to_one",
}
TRUNK = "trunk"


def check_trunk(name: str, weights: str | None, input_shape, key: str) -> None:
    """A ConfigError naming `key` (e.g. `student.trunk`) for a network we cannot build."""
    if not any(name.startswith(family) for family in PREPROCESSING) or \
            getattr(keras.applications, name, None) is None:
        raise ConfigError(f"{key}: {name!r} is not supported; use a keras.applications "
                          f"network of the families {sorted(PREPROCESSING)} (e.g. "
                          "EfficientNetB0, MobileNetV3Small)")
    if weights == "imagenet" and input_shape[-1] != 3:
        raise ConfigError(f"{key}_weights: imagenet weights need 3 channels; set "
                          "data.channels: 3")


def applications_trunk(inputs, name: str, weights: str | None, policy: PrecisionPolicy,
                       scales: int = 1, key: str = "trunk"):
    """The network's features at its last `scales` resolutions (a list), and the network.
    `key` names the config key of the trunk (`student.trunk`) in a ConfigError."""
    family = next(f for f in PREPROCESSING if name.startswith(f))
    local_file = weights not in (None, "imagenet")
    try:
        base = getattr(keras.applications, name)(include_top=False,
                                                 weights=None if local_file else weights,
                                                 input_shape=tuple(inputs.shape[1:]))
    except Exception as err:  # Keras raises a bare Exception when a download fails
        failed = _download_failed(err, name, f"{key}_weights")
        if failed is None:
            raise
        raise failed from err
    if local_file:
        base.load_weights(weights)
    if weights is None:
        _forget_faster(base)
    taps = _last_layer_per_resolution(base)[-scales:]
    trunk = policy.rebuild(keras.Model(base.input, [t.output for t in taps], name=TRUNK))
    x = layers.Rescaling(1.0, dtype=policy.layer_dtype, name="stem_rescale")(inputs)
    if PREPROCESSING[family] == "minus_one_to_one":
        x = layers.Rescaling(1 / 127.5, offset=-1, dtype=policy.layer_dtype,
                             name="stem_normalize")(x)
    features = trunk(x)
    return (features if isinstance(features, list) else [features]), trunk


def _download_failed(err: Exception, name: str, key: str) -> ConfigError | None:
    """A ConfigError naming `key`, the file Keras wanted and where it looks for it, when `err`
    is Keras failing to download ImageNet weights (no internet: a competition's notebook);
    else None."""
    failed = re.match(r"URL fetch failure on (\S+): (.*)", str(err), re.DOTALL)
    if failed is None:
        return None
    origin, reason = failed.group(1), failed.group(2).partition(" -- ")[2] or failed.group(2)
    file = origin.rsplit("/", 1)[-1]
    cache = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "models" / file
    return ConfigError(
        f"{key}: imagenet: Keras could not download {name}'s ImageNet weights, {file} "
        f"({reason.strip()}). Without internet, put that file (from {origin}) at {cache}, "
        f"where Keras looks before downloading, or give a local weights file as the value: "
        f"--set {key}=/path/to/{file}")


def _forget_faster(base: keras.Model) -> None:
    """BatchNorm momentum of our own blocks for a network trained from scratch: MobileNetV3's
    0.999 keeps its initial statistics for thousands of steps, so a small dataset's validation
    ran on them and stayed at chance (measured: 10% on Fashion-MNIST after 15 epochs)."""
    for layer in base.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM


def trunk_parts(trunk: keras.Model) -> tuple[tuple[str, ...], ...]:
    """Each layer with weights of a nested trunk is a part, bottom to top (freezing.py)."""
    return tuple((f"{TRUNK}/{layer.name}",) for layer in trunk.layers if layer.weights)


def _last_layer_per_resolution(model: keras.Model) -> list:
    last = {}
    for layer in model.layers:
        shape = getattr(layer.output, "shape", None)
        if shape is not None and len(shape) == 4:
            last[shape[1]] = layer
    return [last[size] for size in sorted(last, reverse=True)]
