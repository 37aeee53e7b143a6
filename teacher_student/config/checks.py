"""Which check each key's value gets (`CHECKS`, the checks themselves in `values`), and the
checks that involve several keys (`check_config`).

`CHECKS` maps a dotted key (list indices left out: `phases.epochs`) to its check; a
distillation method's keys (`distill.dkd.beta`) come from its module's own `CHECKS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from teacher_student.config.schema import Config, PhaseConfig
from teacher_student.config.values import (
    AUGMENT,
    CACHES,
    MIXES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TRAINABLE,
    UPSAMPLING,
    duration,
    fraction,
    non_negative,
    one_of,
    positive,
    widths,
)
from teacher_student.errors import ConfigError
from teacher_student.training.methods import METHODS

CHECKS: dict[str, Any] = {
    "precision": one_of(PRECISIONS),
    "jit_compile": lambda v: None if v in (True, False, "auto") else
    f"must be true, false or 'auto', got {v!r}",
    "steps_per_execution": positive,
    "verbose": lambda v: None if v in (0, 1, 2, "auto") and not isinstance(v, bool) else
    f"must be 0, 1, 2 or 'auto', got {v!r}",
    "time_budget": duration,
    "data.source": lambda v: None if v.strip() else "must name a dataset, a folder or a file",
    "data.image_size": positive,
    "data.channels": one_of((1, 3)),
    "data.val_fraction": fraction,
    "data.test_fraction": fraction,
    "data.batch_size": positive,
    "data.cache": one_of(CACHES),
    "data.folds": lambda v: None if v >= 1 else f"must be >= 1 (1: one teacher), got {v!r}",
    "teacher.widths": widths,
    "teacher.fusion_width": lambda v: widths((v,)),
    "teacher.upsampling": one_of(UPSAMPLING),
    "teacher.cbam_reduction": positive,
    "teacher.dropout": fraction,
    "teacher.self_training.rounds": non_negative,
    "teacher.self_training.epochs": positive,
    "teacher.self_training.learning_rate": positive,
    "teacher.self_training.augment": one_of(AUGMENT),
    "teacher.self_training.alpha": lambda v: None if 0 <= v <= 1 else
    f"must be in [0, 1], got {v!r}",
    "teacher.self_training.temperature": positive,
    "teacher.self_training.stochastic_depth": lambda v: None if 0 <= v < 1 else
    f"must be in [0, 1), got {v!r}",
    "data.unlabeled": lambda v: None if v.strip() else
    "must name a folder of images, a .csv or a .npz file, or be null",
    "student.widths": widths,
    "student.width_multiplier": positive,
    "student.dropout": fraction,
    "phases.epochs": non_negative,
    "phases.learning_rate": positive,
    "phases.schedule": one_of(SCHEDULES),
    "phases.optimizer": one_of(OPTIMIZERS),
    "phases.trainable": one_of(TRAINABLE),
    "phases.unfreeze_top": non_negative,
    "phases.augment": one_of(AUGMENT),
    "phases.erasing": lambda v: None if 0 <= v <= 1 else f"must be in [0, 1], got {v!r}",
    "phases.mix": one_of(MIXES),
    "phases.label_smoothing": fraction,
    "phases.ema_momentum": fraction,
    "phases.early_stopping_patience": non_negative,
    "phases.reduce_lr_patience": non_negative,
    "distill.epochs": non_negative,
    "distill.learning_rate": positive,
    "distill.schedule": one_of(SCHEDULES),
    "distill.optimizer": one_of(OPTIMIZERS),
    "distill.alpha": lambda v: None if 0 <= v <= 1 else f"must be in [0, 1], got {v!r}",
    "distill.temperature": positive,
    "distill.augment": one_of(AUGMENT),
    "distill.method": one_of(tuple(METHODS)),
    "distill.mix": one_of(MIXES),
    "distill.ema_momentum": fraction,
    "distill.early_stopping_patience": non_negative,
    "distill.unlabeled": lambda v: None if v.strip() else
    "must name a folder of images, a .csv or a .npz file, or be null",
    **{f"distill.{name}.{key}": check for name, method in METHODS.items()
       for key, check in method.CHECKS.items()},
}


def check_value(key: str, value: Any) -> None:
    """Raises ConfigError naming `key` when `value` fails its check."""
    generic = ".".join(p for p in key.split(".") if not p.isdigit())
    check = CHECKS.get(generic)
    problem = check(value) if check and value is not None else None
    if problem:
        raise ConfigError(f"{key}: {problem}")


def check_config(config: Config) -> None:
    """The checks of each phase's values, and those that involve several keys."""
    if not any(phase.epochs for phase in config.phases):
        found = "an empty list" if not config.phases else "every phase has 0 epochs"
        raise ConfigError(f"phases: at least one phase must train the teacher for 1 epoch or "
                          f"more; found {found}")
    for i, phase in enumerate(config.phases):
        for f in dataclasses.fields(PhaseConfig):
            check_value(f"phases.{i}.{f.name}", getattr(phase, f.name))
    for i, phase in enumerate(config.phases):
        if phase.reduce_lr_patience and phase.schedule != "constant":
            raise ConfigError(f"phases.{i}.reduce_lr_patience: needs schedule 'constant' "
                              f"(the '{phase.schedule}' schedule already sets the rate)")
    if config.data.val_fraction + config.data.test_fraction >= 1:
        raise ConfigError("data.test_fraction: val_fraction + test_fraction must be < 1")
    mixing = [(f"phases.{i}.mix", phase.mix) for i, phase in enumerate(config.phases)]
    for key, mix in [*mixing, ("distill.mix", config.distill.mix)]:
        if mix != "none" and config.data.batch_size < 2:
            raise ConfigError(f"{key}: {mix} mixes the images of a batch; "
                              f"data.batch_size {config.data.batch_size} has nothing to mix "
                              "with")
    _check_unlabeled_and_rounds(config)
    METHODS[config.distill.method].check(config.distill)


def _check_unlabeled_and_rounds(config: Config) -> None:
    """One source of unlabeled images, and self-training rounds where they can run."""
    data, distill = config.data, config.distill
    if data.unlabeled and distill.unlabeled and data.unlabeled != distill.unlabeled:
        raise ConfigError(f"distill.unlabeled: {distill.unlabeled} differs from data.unlabeled "
                          f"{data.unlabeled}; data.unlabeled serves every step, the teacher's "
                          "rounds and the distillation: set that one alone")
    if not config.teacher.self_training.rounds:
        return
    if data.folds > 1:
        raise ConfigError("teacher.self_training.rounds: with data.folds > 1 there are K "
                          "teachers, and rounds start from one: set data.folds: 1 or rounds: 0")
    if distill.teachers:
        raise ConfigError("teacher.self_training.rounds: the student learns from the listed "
                          "distill.teachers, never from the run's own teacher and its rounds: "
                          "set rounds: 0, or list no teacher")
    if config.teacher.self_training.stochastic_depth and config.teacher.trunk:
        raise ConfigError("teacher.self_training.stochastic_depth: drops the branches of the "
                          f"teacher's own residual stages; teacher.trunk {config.teacher.trunk} "
                          "has none of them: set it to 0")
