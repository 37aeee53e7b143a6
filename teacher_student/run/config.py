"""The config of a run: the saved one governs every later job on the run directory, only how
the steps run may change, and it is recorded once the run's first job starts training."""

from __future__ import annotations

import dataclasses
import hashlib
import re

from teacher_student import config as config_module
from teacher_student.config import Config, ConfigError
from teacher_student.errors import RunDirError
from teacher_student.run.directory import RunDir

MAX_NAME = 64  # characters of a variant's folder name


def resolve_run_config(config: Config, run_dir: RunDir) -> Config:
    """The run's saved config when there is one (a rerun resumes), else `config`.

    Only how the steps run may change between runs of one directory: the precision (to
    continue a phase in float32 after a float16 overflow), XLA (another machine), the time
    budget, what Keras prints (`verbose`) and whether the comparison times the models; and,
    until a student has been trained there, how to distil (the `distill` and `student`
    sections: the teacher is trained once, then distilled as the user chooses). Any other
    difference is an error naming the key.
    """
    saved = saved_config(run_dir)
    if saved is None:
        return config
    ours = config.with_dataset(saved.teacher.num_classes)
    changeable = ["precision", "jit_compile", "time_budget", "verbose", "measure_latency"]
    if not (run_dir.distillation.path.exists() or run_dir.baseline.path.exists()):
        changeable += ["distill", "student"]
    fixed = dataclasses.replace(ours, **{key: getattr(saved, key) for key in changeable})
    if fixed != saved:
        raise ConfigError(f"{config_module.first_difference(saved, fixed)}: differs from the "
                          f"config of the existing run in {run_dir.path}; use another "
                          "--run-dir, or the same settings to resume")
    return dataclasses.replace(saved, **{key: getattr(ours, key) for key in changeable})


def variant_name(config: Config, run_dir: RunDir) -> str | None:
    """The name of the distillation variant `config` asks of the run in `run_dir`: None where
    no student has been trained yet (its `distill` and `student` may still change), or where
    they are the run's own; else a name made of the keys that differ and their values
    (`temperature-2.0_dkd.beta-8.0`)."""
    saved = saved_config(run_dir)
    if saved is None or not (run_dir.distillation.path.exists() or run_dir.baseline.path.exists()):
        return None
    ours = config.with_dataset(saved.teacher.num_classes)
    changed = config_module.differences(saved, ours, ("distill", "student"))
    if not changed:
        return None
    name = "_".join(f"{key.removeprefix('distill.')}-{value}" for key, value in changed)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")
    if len(name) > MAX_NAME:  # a listed teacher's path, say: a digest keeps it short and unique
        name = f"{name[:MAX_NAME - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return name


def saved_config(run_dir: RunDir) -> Config | None:
    """The run's `config.yaml`; None for a run that has not started. A run with checkpoints
    but no config is an error: its models cannot be rebuilt from the command line's guess."""
    if run_dir.config_file.exists():
        try:
            return config_module.load(run_dir.config_file)
        except ConfigError as err:
            raise RunDirError(f"{run_dir.config_file} cannot be read ({err}): restore it from "
                              "a copy of the run, or start a new --run-dir") from err
    if run_dir.has_trained():
        raise RunDirError(f"{run_dir.path} has trained models but no config.yaml, which says "
                          "how to rebuild them: copy config.yaml back from a copy of the run "
                          "(or write the run's config there), or start a new --run-dir; "
                          "nothing was changed")
    return None


def record_config(config: Config, run_dir: RunDir) -> None:
    """config.yaml: written once, and again if the student's sections changed before any
    student was trained. The precision and XLA setting are the command line's each time."""
    if run_dir.config_file.exists():
        saved = config_module.load(run_dir.config_file)
        if (saved.distill, saved.student) == (config.distill, config.student):
            return
        print(f"distill and student settings differ from {run_dir.config_file}, and no "
              "student has been trained here yet: recorded the new ones")
        config = dataclasses.replace(config, precision=saved.precision,
                                     jit_compile=saved.jit_compile)
    run_dir.write_config(config_module.to_yaml(config))


def scaled_for_replicas(config: Config, replicas: int) -> Config:
    """Learning rates times the replicas: the global batch grew by as much (linear scaling)."""
    if replicas == 1 or not config.scale_learning_rate:
        return config
    return dataclasses.replace(
        config,
        phases=tuple(dataclasses.replace(p, learning_rate=p.learning_rate * replicas)
                     for p in config.phases),
        distill=dataclasses.replace(config.distill,
                                    learning_rate=config.distill.learning_rate * replicas))
