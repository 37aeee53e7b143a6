"""The values a config key may take: the named choices, and the checks of one value.

Each check returns an error text or None; `checks.py` maps every key to its check, and a
distillation method's module (training/methods/) maps the keys of its own section. Only the
standard library: the command line reads the choices before anything loads Keras.
"""

from __future__ import annotations

import math
import re

from teacher_student.errors import ConfigError

# Mixed precision policies: the only place their names are written (precision.py, the
# command line and the benchmarks take them from here).
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
PRECISIONS = ("auto", *POLICIES)
UPSAMPLING = ("bilinear", "nearest")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
TRAINABLE = ("all", "head", "top")
AUGMENT = ("none", "light", "strong")
MIXES = ("none", "mixup", "cutmix")
CACHES = ("auto", "memory", "disk")


def positive(value):
    return None if value > 0 else f"must be > 0, got {value!r}"


def non_negative(value):
    return None if value >= 0 else f"must be >= 0, got {value!r}"


def fraction(value):
    return None if 0 <= value < 1 else f"must be in [0, 1), got {value!r}"


def one_of(choices):
    return lambda value: (None if value in choices else
                          f"must be one of {list(choices)}, got {value!r}")


def widths(value):
    if not value:
        return "must list at least one width"
    bad = [width for width in value if width <= 0 or width % 8]
    return f"every width must be a positive multiple of 8, got {list(value)}" if bad else None


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


def duration(value):
    if value is None:
        return None
    try:
        parse_duration(value)
    except ConfigError as err:
        return str(err).split(": ", 1)[1]
    return None


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
