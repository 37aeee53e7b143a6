"""The run configuration: its shape (`schema`), value checks (`checks`), YAML loading and
overrides (`loading`), and the packaged presets (`presets/*.yaml`: default, kaggle_t4, tiny).

Config flows one way: YAML file -> frozen typed `Config` -> each part gets its own section.
"""

from teacher_student.config.loading import (
    PRESETS,
    apply_overrides,
    find,
    first_difference,
    from_dict,
    load,
    to_dict,
    to_yaml,
)
from teacher_student.config.schema import (
    POLICIES,
    PRECISIONS,
    Config,
    DataConfig,
    DistillConfig,
    PhaseConfig,
    StudentConfig,
    TeacherConfig,
)
from teacher_student.errors import ConfigError

__all__ = ["POLICIES", "PRECISIONS", "PRESETS", "Config", "ConfigError", "DataConfig",
           "DistillConfig", "PhaseConfig", "StudentConfig", "TeacherConfig", "apply_overrides",
           "find", "first_difference", "from_dict", "load", "to_dict", "to_yaml"]
