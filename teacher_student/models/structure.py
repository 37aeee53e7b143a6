"""What a builder knows of the classifier it made, kept in the model for whoever trains or taps
parts of it (freezing.py, the distiller's feature hint), so that nobody parses it back from
layer names.

The record lives in the graph itself: the head's pool is a `HeadPool`, a global average pool
whose config also carries the trunk's parts and gates. Keras rebuilds every layer from its
config, so the record goes wherever the layer goes:

- saving and loading (`safe_mode=True`): `Functional.get_config` stores each layer's config
  and `functional_from_config` calls the layer class's `from_config` on it;
- `PrecisionPolicy.rebuild` and `keras.models.clone_model`: each layer is cloned from its
  config (`layer.__class__.from_config(layer.get_config())`, the dtype changed);
- re-wrapping or renaming, `keras.Model(model.input, model.output, name=...)`: the new model
  is made of the same layer objects, the pool among them.

A registered `keras.Model` subclass whose config carried the record would keep it through
saving only: `keras.Model(inputs, outputs)` makes a plain `Functional`, and `clone_model`
calls a subclass with the functional constructor's arguments alone (`inputs, outputs, name`),
so both would drop it. A plain attribute (what builders set before) survives none of the three.

`structure_of` reads the record of the model's own `HeadPool`. A model that wraps one of ours
can be given a record of its own with `attach`; that one is a plain attribute, kept as long as
the Python object. A model saved before the record existed has a plain pool and no structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras

ATTRIBUTE = "structure"
PACKAGE = "teacher_student"  # what our layers register under (layers.PACKAGE)


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


@keras.saving.register_keras_serializable(package=PACKAGE)
class HeadPool(keras.layers.GlobalAveragePooling2D):
    """The head's global average pool, carrying its classifier's structure in its config (the
    paths of the trunk's parts and of a pretrained trunk's gates); `attach` fills it in."""

    def __init__(self, trunk_parts: Sequence[Sequence[str]] = (),
                 pretrained_gates: Sequence[str] = (), **kwargs):
        super().__init__(**kwargs)
        self.record(trunk_parts, pretrained_gates)

    def record(self, trunk_parts: Sequence[Sequence[str]], pretrained_gates: Sequence[str]):
        self.trunk_parts = tuple(tuple(part) for part in trunk_parts)
        self.pretrained_gates = tuple(pretrained_gates)

    def get_config(self):
        return {**super().get_config(),
                "trunk_parts": [list(part) for part in self.trunk_parts],
                "pretrained_gates": list(self.pretrained_gates)}


def attach(model: keras.Model, structure: Structure) -> keras.Model:
    """Records `structure` in `model`'s own `HeadPool` (the layer `structure.head_pool`), where
    saving, rebuilding and re-wrapping keep it. A model whose head pool is not its own (it wraps
    another: `inner/head_pool`) keeps it as a plain attribute, which none of them keeps."""
    pool = layer_at(model, structure.head_pool)
    if isinstance(pool, HeadPool) and pool in model.layers:
        pool.record(structure.trunk_parts, structure.pretrained_gates)
    else:
        object.__setattr__(model, ATTRIBUTE, structure)  # a plain attribute: Keras tracks nothing
    return model


def structure_of(model: keras.Model) -> Structure:
    structure = getattr(model, ATTRIBUTE, None)
    if isinstance(structure, Structure):
        return structure
    recorded = [layer for layer in model.layers
                if isinstance(layer, HeadPool) and layer.trunk_parts]
    if len(recorded) != 1:
        raise ValueError(f"model {model.name!r} has no recorded structure: build it with "
                         "build_teacher or build_student (a model saved before its head pool "
                         "kept the record has none)")
    pool = recorded[0]
    return Structure(pool.trunk_parts, pool.name, pool.pretrained_gates)


def parts_by_prefix(model: keras.Model, prefixes: Sequence[str],
                    leave_out: type | tuple[type, ...] = ()) -> tuple[tuple[str, ...], ...]:
    """For a builder: the names of the layers it named `<prefix>` or `<prefix>_...`, per prefix
    (the builder chose the prefixes, so this reads its own naming back), but for layers of the
    `leave_out` types: the precision policy's casts, which a rebuild under another policy adds
    or removes, so that the record names only layers every policy's graph has."""
    return tuple(tuple(layer.name for layer in model.layers
                       if (layer.name == prefix or layer.name.startswith(f"{prefix}_"))
                       and not isinstance(layer, leave_out))
                 for prefix in prefixes)


def layer_at(model: keras.Model, path: str) -> keras.layers.Layer:
    """The layer at `path`: a name, or `outer/inner` inside a nested model."""
    layer = model
    for name in path.split("/"):
        layer = layer.get_layer(name)
    return layer
