"""Which layers train in a phase: everything, the head only, or the top of the trunk too.

The trunk is made of parts, bottom to top, as its builder recorded them (structure.py): `stem`,
`stage1`, `stage2`, ... for our own trunk, each ending in a `GradientGate` that is frozen with
it, so a frozen part is also gradient-stopped; or each layer with weights of a
keras.applications trunk, whose gates follow the whole trunk. Changes take effect at the next
`compile()`.
"""

from __future__ import annotations

import keras
from keras import layers

from teacher_student.models.graph import walk_layers
from teacher_student.models.structure import layer_at, structure_of


def trunk_parts(model: keras.Model) -> list[list[keras.layers.Layer]]:
    """The trunk's parts, bottom to top, each a list of layers (gates included)."""
    return [[layer_at(model, path) for path in part]
            for part in structure_of(model).trunk_parts]


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
    structure = structure_of(model)
    if structure.pretrained:  # its BatchNorm stays frozen, and its gates follow the trunk
        for part in parts:
            for layer in part:
                if isinstance(layer, layers.BatchNormalization):
                    layer.trainable = False
        for gate in structure.pretrained_gates:
            model.get_layer(gate).trainable = len(frozen) < len(parts)


def trainable_parts(model: keras.Model) -> list[bool]:
    """For each trunk part, whether it trains: what tests and the summary print."""
    return [all(layer.trainable for layer in part) for part in trunk_parts(model)]
