"""The run configuration: its shape (`schema`), allowed values (`values`), which check each key
gets (`checks`), YAML loading and overrides (`loading`), and the packaged presets
(`presets/*.yaml`: default, kaggle_t4, tiny).

Config flows one way: YAML file -> frozen typed `Config` -> each part gets its own section.

Nothing is imported until it is used (PEP 562): `values` needs only the standard library, and a
distillation method's module (training/methods/), which the schema reads, takes its checks
from there while the schema is being built.
"""

import importlib

_EXPORTS = {
    "PRESETS": "loading", "apply_overrides": "loading", "find": "loading",
    "first_difference": "loading", "differences": "loading", "from_dict": "loading",
    "load": "loading", "to_dict": "loading", "to_yaml": "loading",
    "Config": "schema", "DataConfig": "schema", "DistillConfig": "schema",
    "PhaseConfig": "schema", "StudentConfig": "schema", "TeacherConfig": "schema",
    "POLICIES": "values", "PRECISIONS": "values",
    "ConfigError": "teacher_student.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = _EXPORTS[name]
        if "." not in module:
            module = f"{__name__}.{module}"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
