"""The teachers a student learns from: the run's own, or others listed in `distill.teachers`
(run directories or `.keras` files), checked against the run's classes and input, and averaged
in probability at the distillation's temperature when there are several (Hinton et al. 2015
distil an ensemble this way). Each is rebuilt under the step's precision policy and frozen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras

from teacher_student.config import Config
from teacher_student.errors import ConfigError
from teacher_student.models.layers import ProbabilityAverage
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.run.directory import TEACHER, RunDir, unreadable_model


def teacher_file(entry: str) -> Path:
    """The `.keras` file of an entry of `distill.teachers`: a file, or a run's teacher."""
    path = Path(entry)
    return RunDir(path).model_file(TEACHER) if path.is_dir() else path


def check_teachers(config: Config, class_names: Sequence[str]) -> None:
    """Every listed teacher can be read and answers for the run's classes and input; a
    ConfigError naming its key otherwise, before anything trains."""
    entries = config.distill.teachers
    for index, entry in enumerate(entries):
        key, path = f"distill.teachers.{index}", teacher_file(entry)
        if not path.exists():
            raise ConfigError(f"{key}: {entry} is neither a .keras file nor a run directory "
                              "holding teacher.keras")
        if why := unreadable_model(path):
            raise ConfigError(f"{key}: {path} cannot be read ({why})")
        if Path(entry).is_dir() and RunDir(Path(entry)).split_file.exists():
            theirs = RunDir(Path(entry)).class_names()
            if list(theirs) != list(class_names):
                raise ConfigError(f"{key}: {entry} was trained on the classes {theirs}, this "
                                  f"run has {list(class_names)}")
        model = keras.saving.load_model(path, safe_mode=True)
        shape, classes = tuple(model.input_shape[1:]), model.output_shape[-1]
        if shape != tuple(config.student.input_shape) or classes != len(class_names):
            raise ConfigError(f"{key}: {path} takes {shape} images and answers {classes} "
                              f"classes; this run has {tuple(config.student.input_shape)} and "
                              f"{len(class_names)}")


def listed_teachers(entries: Sequence[str], policy: PrecisionPolicy) -> list[keras.Model]:
    """The listed teachers, with their weights, rebuilt under `policy`."""
    models = []
    for index, entry in enumerate(entries):
        loaded = keras.saving.load_model(teacher_file(entry), safe_mode=True)
        models.append(policy.rebuild(keras.Model(loaded.input, loaded.output,
                                                 name=f"teacher{index}"), float32_outputs=True))
    return models


def ensemble(teachers: Sequence[keras.Model], temperature: float) -> keras.Model:
    """One model answering the teachers' average in probability (at `temperature`), as
    logits; a single teacher is returned as it is."""
    if len(teachers) == 1:
        return teachers[0]
    inputs = keras.Input(teachers[0].input_shape[1:], dtype=teachers[0].inputs[0].dtype,
                         name="image")
    averaged = ProbabilityAverage(temperature, dtype="float32", name="probability_average")(
        [teacher(inputs) for teacher in teachers])
    return keras.Model(inputs, averaged, name="teacher_ensemble")
