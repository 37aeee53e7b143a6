"""Typed, frozen run configuration: YAML file -> `Config` -> each part gets its own section.

Unknown keys, wrong types and impossible values raise `ConfigError` naming the key, e.g.
`phases.1.epochs: must be >= 0, got -3`. Overrides use the same dotted keys
(`--set phases.1.epochs=3`). Only the standard library and PyYAML's safe loader are used.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
UPSAMPLING = ("bilinear", "nearest")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
TRAINABLE = ("all", "head", "top")
AUGMENT = ("none", "light", "strong")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message starts with its dotted key."""


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


# ---------------------------------------------------------------------------------------------
# Checks of values that a type alone cannot express; each returns an error text or None.

def _positive(v):
    return None if v > 0 else f"must be > 0, got {v!r}"


def _non_negative(v):
    return None if v >= 0 else f"must be >= 0, got {v!r}"


def _fraction(v):
    return None if 0 <= v < 1 else f"must be in [0, 1), got {v!r}"


def _one_of(choices):
    return lambda v: None if v in choices else f"must be one of {list(choices)}, got {v!r}"


def _widths(v):
    if not v:
        return "must list at least one width"
    bad = [w for w in v if w <= 0 or w % 8]
    return f"every width must be a positive multiple of 8, got {list(v)}" if bad else None


CHECKS: dict[str, Any] = {
    "precision": _one_of(PRECISIONS),
    "jit_compile": lambda v: None if v in (True, False, "auto") else
    f"must be true, false or 'auto', got {v!r}",
    "data.image_size": _positive,
    "data.channels": _one_of((1, 3)),
    "data.val_fraction": _fraction,
    "data.test_fraction": _fraction,
    "data.batch_size": _positive,
    "teacher.widths": _widths,
    "teacher.fusion_width": lambda v: _widths((v,)),
    "teacher.upsampling": _one_of(UPSAMPLING),
    "teacher.cbam_reduction": _positive,
    "teacher.dropout": _fraction,
    "student.widths": _widths,
    "student.dropout": _fraction,
    "phases.epochs": _non_negative,
    "phases.learning_rate": _positive,
    "phases.schedule": _one_of(SCHEDULES),
    "phases.optimizer": _one_of(OPTIMIZERS),
    "phases.trainable": _one_of(TRAINABLE),
    "phases.unfreeze_top": _non_negative,
    "phases.augment": _one_of(AUGMENT),
    "phases.early_stopping_patience": _non_negative,
    "phases.reduce_lr_patience": _non_negative,
    "distill.epochs": _non_negative,
    "distill.learning_rate": _positive,
    "distill.schedule": _one_of(SCHEDULES),
    "distill.optimizer": _one_of(OPTIMIZERS),
    "distill.alpha": lambda v: None if 0 <= v <= 1 else f"must be in [0, 1], got {v!r}",
    "distill.temperature": _positive,
    "distill.augment": _one_of(AUGMENT),
}


# ---------------------------------------------------------------------------------------------
# Building typed objects from plain YAML data.

def _convert(value: Any, annotation: Any, key: str) -> Any:
    """`value` as the type `annotation` says, or ConfigError naming `key`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for choice in inner[:-1]:  # the first type the value converts to
            try:
                return _convert(value, choice, key)
            except ConfigError:
                pass
        return _convert(value, inner[-1], key)
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}.{i}") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: must have {len(args)} items, got {list(value)!r}")
        return tuple(_convert(v, a, f"{key}.{i}") for i, (v, a) in enumerate(zip(value, args)))
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool):
        if type(value) is not annotation:
            raise ConfigError(
                f"{key}: must be {annotation.__name__}, got {type(value).__name__} {value!r}"
            )
        return value
    raise TypeError(f"unsupported config annotation {annotation!r} at {key}")


def _check(key: str, value: Any) -> None:
    generic = ".".join(p for p in key.split(".") if not p.isdigit())
    check = CHECKS.get(generic)
    problem = check(value) if check and value is not None else None
    if problem:
        raise ConfigError(f"{key}: {problem}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"{where}{unknown[0]}: unknown key (known: {', '.join(sorted(names))})")
    values = {}
    for name, raw in data.items():
        key = f"{prefix}.{name}" if prefix else name
        values[name] = _convert(raw, hints[name], key)
        if not dataclasses.is_dataclass(hints[name]) and name != "phases":
            _check(key, values[name])
    return cls(**values)


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def _phase_checks(config: Config) -> None:
    for i, phase in enumerate(config.phases):
        for f in dataclasses.fields(PhaseConfig):
            _check(f"phases.{i}.{f.name}", getattr(phase, f.name))
    for i, phase in enumerate(config.phases):
        if phase.reduce_lr_patience and phase.schedule != "constant":
            raise ConfigError(f"phases.{i}.reduce_lr_patience: needs schedule 'constant' "
                              f"(the '{phase.schedule}' schedule already sets the rate)")
    if config.data.val_fraction + config.data.test_fraction >= 1:
        raise ConfigError("data.test_fraction: val_fraction + test_fraction must be < 1")


def from_dict(data: dict) -> Config:
    config = _build(Config, data, "")
    _phase_checks(config)
    return config


def to_dict(config: Config) -> dict:
    return _to_plain(config)


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = tree
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{where}: no such item (there are {len(node)})")
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise ConfigError(f"{where}: unknown key")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"{key}: no such item (there are {len(node)})")
        node[int(last)] = value
    else:
        node[last] = value  # unknown keys are caught when the tree is rebuilt


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """`config` with each `dotted.key=value` applied; values are parsed as YAML scalars."""
    tree = to_dict(config)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{item}: an override must look like key=value")
        _set_dotted(tree, key.strip(), yaml.safe_load(text))
    return from_dict(tree)


PACKAGED = Path(__file__).parent / "configs"


def find(name_or_path: str | Path) -> Path:
    """A config file: a path, or the name of one that ships with the package ("kaggle_t4")."""
    path = Path(name_or_path)
    if path.exists() or path.suffix:
        return path
    packaged = PACKAGED / f"{name_or_path}.yaml"
    if packaged.exists():
        return packaged
    known = ", ".join(sorted(p.stem for p in PACKAGED.glob("*.yaml")))
    raise ConfigError(f"{name_or_path}: no such config file or packaged config ({known})")


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """The config from a YAML file, a packaged config name or the defaults, with `overrides`."""
    data: dict = {}
    if path is not None:
        path = find(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: cannot read config ({err})") from err
        try:
            config = from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from err
    else:
        config = Config()
    return apply_overrides(config, overrides or [])


def save(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
