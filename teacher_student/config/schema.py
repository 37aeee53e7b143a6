"""The run configuration's shape: frozen dataclasses with their defaults.

YAML file -> `Config` (see `loading`) -> each builder and the trainer get their own section.
The allowed values are in `values`; each distillation method's section (`distill.dkd`...) is
its own module's (training/methods/). The packaged presets (`presets/*.yaml`) spell the same
fields out for a machine and a dataset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from teacher_student.training.methods import METHODS


@dataclass(frozen=True)
class DataConfig:
    source: str = "digits"  # "digits", "mnist", an image folder, a CSV of path,label, a .npz
    image_size: int = 32  # images are resized to image_size x image_size
    channels: int = 1  # 1 (grayscale) or 3 (RGB)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    batch_size: int = 32  # a multiple of 8 keeps tensor cores busy
    # Where the decoded images are kept: in memory, in a memory-mapped file in the run
    # directory (rereads instantly after a restart), or auto: memory when they fit in half of it
    cache: str = "auto"
    class_weights: bool = True  # weight the loss by inverse class frequency
    # Mirror training images left to right at random (half of them) in every step whose
    # augment is light or strong: for photos; never for digits, letters or text
    flip: bool = False
    # Images without labels (a folder of any layout, a CSV with a `path` column or a .npz of
    # `images`) for every step that can learn from them: the teacher's self-training rounds
    # (teacher.self_training) and the distillation. null: none
    unlabeled: str | None = None
    # K >= 2: K teachers, each trained on the training and validation images but one fold of
    # them (stratified, seeded) and validated on that fold, the test split held out from all;
    # the student learns from their ensemble. 1: one teacher on the run's own split
    folds: int = 1


@dataclass(frozen=True)
class SelfTrainingConfig:
    """Rounds after the teacher's phases (Noisy Student, Xie et al. 2020; born-again networks,
    Furlanello et al. 2018): each trains a fresh network of the teacher's architecture on the
    labels and on the best teacher so far's soft labels of every training image (and of
    data.unlabeled's), the new network seeing them noised (`augment`, its dropout, stochastic
    depth) where the teacher sees them clean. It becomes the teacher only if its validation
    accuracy is higher."""
    rounds: int = 0  # 0: none
    epochs: int = 20
    learning_rate: float = 2e-3
    # The noise on the images the new network learns from, and the soft labels' temperature:
    # light and 4, as the student learns, lifted a round 0.56 [0.07, 1.05] points above strong
    # and 1 (Noisy Student's), 5 seeds on MNIST (BENCHMARKS.md, "Self-training rounds")
    augment: str = "light"
    alpha: float = 0.5  # weight of the label loss; the soft labels get 1 - alpha
    temperature: float = 4.0
    # Stochastic depth of the new network: its last residual stage's branch dropped at this
    # rate in training, the earlier ones' less (Noisy Student's 0.2); our own trunk only
    stochastic_depth: float = 0.0


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
    self_training: SelfTrainingConfig = field(default_factory=SelfTrainingConfig)


@dataclass(frozen=True)
class StudentConfig:
    input_shape: tuple[int, int, int] = (32, 32, 1)
    num_classes: int = 10
    widths: tuple[int, ...] = (24, 48, 96, 192)  # one depthwise-separable stage per width
    # Every width times this, rounded to a multiple of 8: the student's size. 2 (48-384, 12x
    # fewer parameters than the default teacher) is where distillation starts to pay
    # (BENCHMARKS.md, "Students of several sizes")
    width_multiplier: float = 2.0
    dropout: float = 0.1
    # A keras.applications network instead of ours: MobileNetV3Small, MobileNetV3Large,
    # MobileNetV2 or EfficientNetB0; its weights None, "imagenet" or a local weights file
    trunk: str | None = None
    trunk_weights: str | None = None


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
    # Random erasing: the share of images that get a box of noise (0: none; 0.25 is a
    # common choice)
    erasing: float = 0.0
    mix: str = "none"  # mixing of each batch: none, mixup or cutmix
    label_smoothing: float = 0.0  # the share of each label spread over all classes
    # Keep an exponential moving average of the weights with this momentum (0: none); the
    # averaged weights are validated and kept. 0.999 averages about the last 1,000 steps
    ema_momentum: float = 0.0
    # After this many epochs without a better validation accuracy a cosine schedule skips to
    # its last this-many epochs and the phase ends after them (a constant rate stops at
    # once); the best epoch is kept. 0 turns it off
    early_stopping_patience: int = 0
    reduce_lr_patience: int = 0  # 0 turns it off


@dataclass(frozen=True)
class DistillOptions:
    """The keys of `distill` that every method shares."""
    epochs: int = 15
    learning_rate: float = 2e-3
    schedule: str = "cosine"
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    # kd (Hinton), dkd (decoupled KD) or feature (kd plus a feature hint through an adapter);
    # each has a section of its own below (training/methods/)
    method: str = "kd"
    alpha: float = 0.5  # weight of the label loss
    temperature: float = 4.0
    standardize_logits: bool = False  # z-score logits before the softmax (kd, dkd, feature)
    augment: str = "light"
    # Mixing of each batch, seen alike by teacher and student (and the baseline): none,
    # mixup or cutmix
    mix: str = "none"
    # The student's weights averaged over its steps with this momentum (0: none), as for a
    # teacher phase
    ema_momentum: float = 0.0
    baseline: bool = True  # also train the student from scratch with the same budget
    # After this many epochs without a better validation accuracy a student (the distilled one
    # and the baseline alike) runs its cosine schedule's last this-many epochs and stops, so
    # that no student keeps an undecayed learning rate; its best epoch is kept. 0: every
    # epoch runs
    early_stopping_patience: int = 0
    # The teachers to learn from: run directories (their teacher.keras) or .keras files of
    # the same classes and input, averaged in probability at the temperature; empty: the
    # run's own teacher
    teachers: tuple[str, ...] = ()
    # Images without labels to distil on too: a folder of images (any layout), a CSV with a
    # `path` column or a .npz of `images`. Shuffled in with the training images; the teacher
    # terms cover them, the label loss does not. null: none
    unlabeled: str | None = None


# `distill`: the shared keys, then one section per method of the registry (`distill.dkd.beta`),
# so that a new method brings its keys with its module.
DistillConfig = dataclasses.make_dataclass(
    "DistillConfig",
    [(name, method.Section, field(default_factory=method.Section))
     for name, method in METHODS.items()],
    bases=(DistillOptions,), frozen=True)
DistillConfig.__module__ = __name__


@dataclass(frozen=True)
class Config:
    precision: str = "auto"
    # XLA-compiled training steps: true, false, or auto (on a single GPU; off on a CPU, where
    # XLA makes the student's depthwise convolutions several times slower, see BENCHMARKS.md)
    jit_compile: bool | str = "auto"
    # Training steps per call of Keras' compiled train function: more means fewer callback
    # calls between steps (BENCHMARKS.md measures what it buys on a GPU)
    steps_per_execution: int = 1
    # Stop, everything saved, when the next epoch would end after this much time from the
    # job's start: 11h30m, 90m, 3600 (seconds); null: no limit. The same command continues.
    time_budget: str | int | float | None = None
    scale_learning_rate: bool = True  # times the replicas when several devices train
    # What Keras prints per epoch: auto (a live bar on a terminal, one line per epoch in a log
    # or notebook), 1 (the bar), 2 (one line), 0 (nothing; the run's own progress line stays)
    verbose: int | str = "auto"
    # The comparison times each model on the CPU, in a fresh process (Keras and TFLite, about
    # 5 s a model and the process's start): false leaves those columns out
    measure_latency: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    phases: tuple[PhaseConfig, ...] = (
        PhaseConfig(name="warmup", epochs=3, learning_rate=1e-3, schedule="constant"),
        PhaseConfig(name="main", epochs=12, learning_rate=2e-3),
        PhaseConfig(name="finetune", epochs=5, learning_rate=2e-4),
    )
    distill: DistillConfig = field(default_factory=DistillConfig)

    @property
    def unlabeled_images(self) -> str | None:
        """The unlabeled images the distillation learns from: data.unlabeled's, or those of
        the older key distill.unlabeled (which serves the distillation alone)."""
        return self.data.unlabeled or self.distill.unlabeled

    def with_dataset(self, num_classes: int) -> Config:
        """The config with model input shapes and class count taken from the data."""
        shape = (self.data.image_size, self.data.image_size, self.data.channels)
        return dataclasses.replace(
            self,
            teacher=dataclasses.replace(self.teacher, input_shape=shape, num_classes=num_classes),
            student=dataclasses.replace(self.student, input_shape=shape, num_classes=num_classes),
        )


