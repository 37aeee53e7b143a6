"""Walking a built model's layers, nested functional models (a keras.applications trunk) too."""

from __future__ import annotations

from collections.abc import Iterator

import keras


def walk_layers(model: keras.Model, prefix: str = "") -> Iterator[tuple[str, keras.layers.Layer]]:
    """(path, layer) for every layer, depth first; a nested model's own layers follow it, with
    paths like `trunk/block1a_dwconv`."""
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        yield path, layer
        if isinstance(layer, keras.Model) and hasattr(layer, "outputs"):
            yield from walk_layers(layer, f"{path}/")
