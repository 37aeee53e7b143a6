"""Which layers train in a phase: everything, the head only, or the top of the trunk too.

The trunk is made of parts, bottom to top: `stem`, `stage1`, `stage2`, ... for our own trunk,
or the layers of the nested `trunk` model for a keras.applications one. Each part ends in a
`GradientGate` that is frozen with it, so a frozen part is also gradient-stopped. Changes take
effect at the next `compile()`.
"""

from __future__ import annotations

import keras
from keras import layers

from teacher_student.models.graph import walk_layers

TRUNK_MODEL = "trunk"


def trunk_parts(model: keras.Model) -> list[list[keras.layers.Layer]]:
    """The trunk's parts, bottom to top, each a list of layers (gates included)."""
    nested = [layer for layer in model.layers if layer.name == TRUNK_MODEL]
    if nested:
        return [[layer] for layer in nested[0].layers if layer.weights]
    parts: dict[str, list] = {}
    for layer in model.layers:
        prefix = layer.name.split("_")[0]
        if prefix == "stem" or (prefix.startswith("stage") and prefix[5:].isdigit()):
            parts.setdefault(prefix, []).append(layer)
    return list(parts.values())


def set_trainable(model: keras.Model, trainable: str, unfreeze_top: int = 0) -> None:
    """`trainable`: "all"; "head" (the trunk frozen); "top" (the top `unfreeze_top` parts of
    the trunk train as well as the head). BatchNorm layers of a pretrained trunk stay frozen in
    "top", as the usual fine-tuning recipe has it."""
    if trainable not in ("all", "head", "top"):
        raise ValueError(f"trainable must be 'all', 'head' or 'top', got {trainable!r}")
    model.trainable = True
    # Each layer by hand: Keras passes `trainable` down to sublayers only when the parent's
    # own value changes, so a nested trunk would keep its earlier frozen layers.
    for _, layer in walk_layers(model):
        layer.trainable = True
    if trainable == "all":
        return
    parts = trunk_parts(model)
    frozen = parts if trainable == "head" else parts[: max(len(parts) - unfreeze_top, 0)]
    for part in frozen:
        for layer in part:
            layer.trainable = False
    _follow_nested_trunk(model, frozen_all=len(frozen) == len(parts))


def _follow_nested_trunk(model: keras.Model, frozen_all: bool) -> None:
    """For a keras.applications trunk: its BatchNorm stays frozen and its gates follow it."""
    for layer in model.layers:
        if layer.name == TRUNK_MODEL:
            for inner in layer.layers:
                if isinstance(inner, layers.BatchNormalization):
                    inner.trainable = False
        if layer.name.startswith("trunk_gate"):
            layer.trainable = not frozen_all


def trainable_parts(model: keras.Model) -> list[bool]:
    """For each trunk part, whether it trains: what tests and the summary print."""
    return [all(layer.trainable for layer in part) for part in trunk_parts(model)]
