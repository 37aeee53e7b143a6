"""What tests import by name: tiny model configs and a real image folder on disk.

Tiny shapes keep every compile and step fast: 32x32, widths of 8, three classes.
"""

from __future__ import annotations

import numpy as np

from teacher_student.config import StudentConfig, TeacherConfig

TINY_TEACHER = TeacherConfig(input_shape=(32, 32, 3), num_classes=3, widths=(8, 16, 24),
                             fusion_width=8, cbam_reduction=2)
TINY_STUDENT = StudentConfig(input_shape=(32, 32, 3), num_classes=3, widths=(8, 16))


def write_image_folder(root, classes: int = 3, per_class: int = 12, size: int = 20):
    """A class-per-folder tree of real PNG files: a bright square whose place marks the class."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
            start = label * size // classes
            pixels[start:start + size // classes, :, :] += 150
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root
