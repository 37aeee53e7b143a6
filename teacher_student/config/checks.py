"""Checks of values that a type alone cannot express; each returns an error text or None.

`CHECKS` maps a dotted key (list indices left out: `phases.epochs`) to its check; `check_config`
adds the checks that involve several keys.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from teacher_student.config.schema import (
    AUGMENT,
    CACHES,
    METHODS,
    MIXES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TRAINABLE,
    UPSAMPLING,
    Config,
    PhaseConfig,
)
from teacher_student.errors import ConfigError


def _positive(v):
    return None if v > 0 else f"must be > 0, got {v!r}"


def _non_negative(v):
    return None if v >= 0 else f"must be >= 0, got {v!r}"


def _fraction(v):
    return None if 0 <= v < 1 else f"must be in [0, 1), got {v!r}"


UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
NUMBER = r"\d+(?:\.\d+)?"
# Hours, minutes and seconds, each optional, in that order: 11h30m, 45m, 1.5h, 1h0m30s.
DURATION = re.compile(rf"(?:(?P<h>{NUMBER})h)?(?:(?P<m>{NUMBER})m)?(?:(?P<s>{NUMBER})s)?")


def parse_duration(value: str | float | int, key: str = "time_budget") -> float:
    """Seconds in `11h30m`, `45m`, `90s`, `1.5h` or a plain number of seconds (`3600`);
    anything else (`1:30`, `ten`, zero or a negative number) is a ConfigError naming `key`."""
    seconds = _seconds(value)
    if seconds is None or not 0 < seconds < math.inf:
        raise ConfigError(f"{key}: {value!r} is not a positive duration such as 11h30m, 45m, "
                          "90s or 3600 (seconds)")
    return seconds


def _seconds(value: str | float | int) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = "".join(str(value).lower().split())  # "11h 30m" and "11H30M" too
    if re.fullmatch(NUMBER, text):
        return float(text)
    parts = DURATION.fullmatch(text) if text else None
    if parts is None:
        return None
    return sum(float(number) * UNITS[unit] for unit, number in parts.groupdict().items()
               if number)


def _duration(v):
    if v is None:
        return None
    try:
        parse_duration(v)
    except ConfigError as err:
        return str(err).split(": ", 1)[1]
    return None


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
    "steps_per_execution": _positive,
    "verbose": lambda v: None if v in (0, 1, 2, "auto") and not isinstance(v, bool) else
    f"must be 0, 1, 2 or 'auto', got {v!r}",
    "time_budget": _duration,
    "data.source": lambda v: None if v.strip() else "must name a dataset, a folder or a file",
    "data.image_size": _positive,
    "data.channels": _one_of((1, 3)),
    "data.val_fraction": _fraction,
    "data.test_fraction": _fraction,
    "data.batch_size": _positive,
    "data.cache": _one_of(CACHES),
    "teacher.widths": _widths,
    "teacher.fusion_width": lambda v: _widths((v,)),
    "teacher.upsampling": _one_of(UPSAMPLING),
    "teacher.cbam_reduction": _positive,
    "teacher.dropout": _fraction,
    "student.widths": _widths,
    "student.width_multiplier": _positive,
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
    "distill.method": _one_of(METHODS),
    "distill.kd_weight": _positive,
    "distill.dkd_alpha": _positive,
    "distill.dkd_beta": _positive,
    "distill.dkd_warmup_epochs": _non_negative,
    "distill.feature_weight": _positive,
    "distill.mix": _one_of(MIXES),
    "distill.early_stopping_patience": _non_negative,
    "distill.unlabeled": lambda v: None if v.strip() else
    "must name a folder of images, a .csv or a .npz file, or be null",
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
    if config.distill.mix != "none" and config.data.batch_size < 2:
        raise ConfigError(f"distill.mix: {config.distill.mix} mixes the images of a batch; "
                          f"data.batch_size {config.data.batch_size} has nothing to mix with")
