"""The data: where images come from (`sources`, `embedded`), how they are split (`splits`), and
how they reach the model (`pipeline`, `augment`)."""
