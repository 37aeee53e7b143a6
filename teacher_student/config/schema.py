"""The run configuration's shape: frozen dataclasses with their defaults and allowed values.

YAML file -> `Config` (see `loading`) -> each builder and the trainer get their own section.
The packaged presets (`presets/*.yaml`) spell the same fields out for a machine and a dataset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# Mixed precision policies: the only place their names are written (precision.py, the
# command line and the benchmarks take them from here).
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
PRECISIONS = ("auto", *POLICIES)
UPSAMPLING = ("bilinear", "nearest")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
TRAINABLE = ("all", "head", "top")
AUGMENT = ("none", "light", "strong")


@dataclass(frozen=True)
class DataConfig:
    source: str = "digits"  # "digits", "mnist", an image folder or a CSV of path,label
    image_size: int = 32  # images are resized to image_size x image_size
    channels: int = 1  # 1 (grayscale) or 3 (RGB)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    batch_size: int = 32  # a multiple of 8 keeps tensor cores busy
    cache: bool = True
    class_weights: bool = True  # weight the loss by inverse class frequency


@dataclass(frozen=True)
class TeacherConfig:
    input_shape: tuple[int, int, int] = (32, 32, 1)  # filled in from `data` by `Config`
    num_classes: int = 10  # filled in from the dataset
    widths: tuple[int, ...] = (32, 64, 128, 256)  # one residual CBAM stage per width
    fusion_width: int = 128  # channels of each scale before they are concatenated
    upsampling: str = "bilinear"
    cbam: bool = True  # CBAM's gains vary by dataset: keep it switchable and measure
    cbam_reduction: int = 8
    dropout: float = 0.2
    trunk: str | None = None  # a keras.applications name, e.g. "EfficientNetB0"
    trunk_weights: str | None = None  # None, "imagenet" or a local weights file


@dataclass(frozen=True)
class StudentConfig:
    input_shape: tuple[int, int, int] = (32, 32, 1)
    num_classes: int = 10
    widths: tuple[int, ...] = (24, 48, 96, 192)  # one depthwise-separable stage per width
    dropout: float = 0.1


@dataclass(frozen=True)
class PhaseConfig:
    name: str = "main"
    epochs: int = 5
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    optimizer: str = "adam"
    weight_decay: float = 1e-4  # used by adamw
    trainable: str = "all"  # "all", "head" (trunk frozen) or "top" (top trunk layers)
    unfreeze_top: int = 0  # with trainable "top": how many trunk stages (or layers) train
    augment: str = "light"
    early_stopping_patience: int = 0  # 0 turns it off
    reduce_lr_patience: int = 0  # 0 turns it off


@dataclass(frozen=True)
class DistillConfig:
    epochs: int = 15
    learning_rate: float = 2e-3
    schedule: str = "cosine"
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    alpha: float = 0.1  # weight of the hard-label loss; 1 - alpha goes to the teacher
    temperature: float = 4.0
    augment: str = "light"
    baseline: bool = True  # also train the student from scratch with the same budget


@dataclass(frozen=True)
class Config:
    precision: str = "auto"
    # XLA-compiled training steps: true, false, or auto (on a single GPU; off on a CPU, where
    # XLA makes the student's depthwise convolutions several times slower, see BENCHMARKS.md)
    jit_compile: bool | str = "auto"
    scale_learning_rate: bool = True  # times the replicas when several devices train
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    phases: tuple[PhaseConfig, ...] = (
        PhaseConfig(name="warmup", epochs=3, learning_rate=1e-3, schedule="constant"),
        PhaseConfig(name="main", epochs=12, learning_rate=2e-3),
        PhaseConfig(name="finetune", epochs=5, learning_rate=2e-4),
    )
    distill: DistillConfig = field(default_factory=DistillConfig)

    def with_dataset(self, num_classes: int) -> Config:
        """The config with model input shapes and class count taken from the data."""
        shape = (self.data.image_size, self.data.image_size, self.data.channels)
        return dataclasses.replace(
            self,
            teacher=dataclasses.replace(self.teacher, input_shape=shape, num_classes=num_classes),
            student=dataclasses.replace(self.student, input_shape=shape, num_classes=num_classes),
        )


