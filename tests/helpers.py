"""What tests import by name: tiny model configs and a real image folder on disk.

Tiny shapes keep every compile and step fast: 32x32, widths of 8, three classes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from teacher_student.config import StudentConfig, TeacherConfig

TINY_TEACHER = TeacherConfig(input_shape=(32, 32, 3), num_classes=3, widths=(8, 16, 24),
                             fusion_width=8, cbam_reduction=2)
TINY_STUDENT = StudentConfig(input_shape=(32, 32, 3), num_classes=3, widths=(8, 16),
                             width_multiplier=1.0)


def write_image_folder(root, classes: int = 3, per_class: int = 12, size: int = 20,
                       seed: int = 1):
    """A class-per-folder tree of real PNG files: a bright square whose place marks the class;
    other images for another `seed`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
            start = label * size // classes
            pixels[start:start + size // classes, :, :] += 150
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def write_png(path: Path, seed: int, size: tuple[int, int] = (12, 10)) -> Path:
    """A small RGB noise image; each seed gives different pixels."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def make_class_folder(root: Path, counts: dict[str, int]) -> Path:
    """root/<class>/<i>.png with counts[class] images per class."""
    seed = 0
    for class_name, count in counts.items():
        for i in range(count):
            seed += 1
            write_png(root / class_name / f"{i}.png", seed)
    return root


def figures_saved(monkeypatch, module) -> list:
    """The figures that `module`'s `save_figure` saves from now on: closed, but their axes,
    artists and legends still there to be looked at."""
    figures, save = [], module.save_figure

    def keep(figure, path):
        figures.append(figure)
        return save(figure, path)

    monkeypatch.setattr(module, "save_figure", keep)
    return figures


def optimizer_steps(folder) -> int:
    """The optimizer's step counter in a step's last resume point."""
    import h5py

    (point, *_) = sorted((folder / "resume").glob("epoch-*"), reverse=True)
    with h5py.File(point / "state.weights.h5", "r") as state:
        return int(state["optimizer"]["vars"]["0"][()])


def load_script(name: str):
    """scripts/<name>.py as a module: the scripts are files to run, not a package."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
