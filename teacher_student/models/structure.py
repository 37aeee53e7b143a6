"""What a builder knows of the classifier it made, kept on the model for whoever trains or taps
parts of it (freezing.py, the distiller's feature hint), so that nobody parses it back from
layer names.

A built model carries its `Structure` as `model.structure`. A model loaded from a `.keras` file
does not: it is only run, never partly frozen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras

ATTRIBUTE = "structure"


@dataclass(frozen=True)
class Structure:
    # Each trunk part's layers, bottom to top, as paths (`stage1_conv`, or `trunk/block1a_conv`
    # inside a nested keras.applications trunk); a part of our own trunk ends in its gate.
    trunk_parts: tuple[tuple[str, ...], ...]
    head_pool: str  # the layer that pools the head's feature map (its input is that map)
    # A pretrained trunk's gradient gates, one per tapped scale: they stop the gradient when
    # the whole trunk is frozen. Its BatchNorm stays frozen unless everything trains.
    pretrained_gates: tuple[str, ...] = ()

    @property
    def pretrained(self) -> bool:
        return bool(self.pretrained_gates)


def attach(model: keras.Model, structure: Structure) -> keras.Model:
    object.__setattr__(model, ATTRIBUTE, structure)  # a plain attribute: Keras tracks nothing
    return model


def structure_of(model: keras.Model) -> Structure:
    structure = getattr(model, ATTRIBUTE, None)
    if not isinstance(structure, Structure):
        raise ValueError(f"model {model.name!r} has no recorded structure: build it with "
                         "build_teacher or build_student (a loaded model has none)")
    return structure


def parts_by_prefix(model: keras.Model, prefixes: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """For a builder: the names of the layers it named `<prefix>` or `<prefix>_...`, per prefix
    (the builder chose the prefixes, so this reads its own naming back)."""
    return tuple(tuple(layer.name for layer in model.layers
                       if layer.name == prefix or layer.name.startswith(f"{prefix}_"))
                 for prefix in prefixes)


def layer_at(model: keras.Model, path: str) -> keras.layers.Layer:
    """The layer at `path`: a name, or `outer/inner` inside a nested model."""
    layer = model
    for name in path.split("/"):
        layer = layer.get_layer(name)
    return layer
