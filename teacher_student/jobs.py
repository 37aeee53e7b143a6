"""The user's jobs: train the teacher, distil the student, evaluate all three.

A job reads its config, prepares the inputs (decoded once, served as batches; augmentation runs
in the training step), builds the models, hands them to the training plan and writes the
reports, all in one run directory (see run_dir.py). Nothing here needs TensorFlow: the jobs run
on any Keras backend.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager

import keras
import numpy as np

from teacher_student import config as config_module
from teacher_student import run_lock
from teacher_student.config import Config, ConfigError
from teacher_student.config.checks import parse_duration
from teacher_student.data.batches import Batches
from teacher_student.data.inputs import prepare_inputs
from teacher_student.errors import RunDirError
from teacher_student.hardware import accelerator_name, peak_memory_bytes
from teacher_student.models.precision import PrecisionPolicy, resolve
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher
from teacher_student.outputs import plots, reports
from teacher_student.run_dir import RunDir
from teacher_student.training import distribute, plan
from teacher_student.training import preflight as preflight_module
from teacher_student.training.timekeeping import Timekeeper


@dataclasses.dataclass(frozen=True)
class Prepared:
    config: Config  # resolved: model shapes and class count filled in
    policy: PrecisionPolicy
    training: plan.TrainingData
    test: Batches
    class_names: tuple[str, ...]
    distribution: distribute.Distribution
    run_dir: RunDir  # a non-chief worker keeps its own files apart from the chief's
    jit_compile: bool
    # Steps the preflight moved to other settings (XLA off, float32), by folder name.
    fallbacks: dict[str, plan.StepSettings] = dataclasses.field(default_factory=dict)

    def step(self, name: str) -> plan.StepSettings:
        """How the step trained in folder `name` runs."""
        return self.fallbacks.get(name) or plan.StepSettings(self.policy, self.jit_compile)


def resolve_run_config(config: Config, run_dir: RunDir) -> Config:
    """The run's saved config when there is one (a rerun resumes), else `config`.

    Only how the steps run may change between runs of one directory: the precision (to
    continue a phase in float32 after a float16 overflow) and XLA (another machine); and,
    until a student has been trained there, how to distil (the `distill` and `student`
    sections: the teacher is trained once, then distilled as the user chooses). Any other
    difference is an error naming the key.
    """
    if not run_dir.config_file.exists():
        return config
    saved = config_module.load(run_dir.config_file)
    ours = config.with_dataset(saved.teacher.num_classes)
    changeable = ["precision", "jit_compile", "time_budget"]
    if not (run_dir.distillation.path.exists() or run_dir.baseline.path.exists()):
        changeable += ["distill", "student"]
    if dataclasses.replace(ours, **{key: getattr(saved, key) for key in changeable}) != saved:
        key = config_module.first_difference(saved, dataclasses.replace(
            ours, **{key: getattr(saved, key) for key in changeable}))
        raise ConfigError(f"{key}: differs from the config of the existing run in "
                          f"{run_dir.path}; use another --run-dir, or the same settings to "
                          "resume")
    return dataclasses.replace(saved, **{key: getattr(ours, key) for key in changeable})


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


def worker_run_dir(run_dir: RunDir, distribution: distribute.Distribution) -> RunDir:
    return run_dir if distribution.is_chief else run_dir.for_worker(distribution.worker_index)


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


def phases_of(config: Config) -> list[tuple[str, str, int]]:
    """Every training phase of a run, in order: (its folder's name, a label, its epochs)."""
    plan_ = [(f"phase{index}_{phase.name}", f"teacher phase {index} '{phase.name}'",
              phase.epochs) for index, phase in enumerate(config.phases, start=1)]
    plan_.append(("student_distilled", "distillation", config.distill.epochs))
    if config.distill.baseline:
        plan_.append(("student_scratch", "baseline", config.distill.epochs))
    return plan_


@contextmanager
def training_job(config: Config, run_dir: RunDir, preflight: bool = True,
                 distilled: bool = True) -> Iterator[Prepared]:
    """A training job's preparation and preflight, its run directory locked until the job
    ends."""
    distribution = distribute.choose()
    own_dir = worker_run_dir(run_dir, distribution)
    with run_lock.hold(own_dir.path):
        job = prepare(config, run_dir, distribution)
        if preflight:
            job = dataclasses.replace(job, fallbacks=preflight_module.fallbacks_of(
                check_plan_steps(job, distilled)))
        # The run's models start from the same weights whether the preflight ran or not.
        keras.utils.set_random_seed(job.config.data.seed)
        yield job


def check_plan_steps(job: Prepared, distilled: bool = True) -> dict[str, plan.StepSettings]:
    """The preflight of every step still to train (preflight.py)."""
    steps = preflight_module.planned_steps(job.config, job.run_dir, job.training, distilled)
    clock = job.training.clock
    return preflight_module.run_preflight(
        steps, plan.StepSettings(job.policy, job.jit_compile), job.training, job.test,
        job.run_dir, clock.remaining_s() if clock else None, job.distribution.scope,
        # On a CPU a single step is already synchronous: short fits would only add time.
        timed_fits=accelerator_name() is not None and not job.distribution.spans_processes)


def preflight(config: Config, run_dir: RunDir, distilled: bool = True) -> None:
    """The preflight alone (`--preflight`): raises PreflightFailed when a step cannot run."""
    with training_job(config, run_dir, preflight=True, distilled=distilled):
        pass


def prepare(config: Config, run_dir: RunDir,
            distribution: distribute.Distribution | None = None) -> Prepared:
    started = time.monotonic()  # the time budget counts from here
    distribution = distribution or distribute.choose()
    run_dir = worker_run_dir(run_dir, distribution)
    run_dir.check_writable()
    config = resolve_run_config(config, run_dir)
    keras.utils.set_random_seed(config.data.seed)  # weights, and every seed drawn from it
    global_batch = config.data.batch_size * distribution.replicas
    inputs = prepare_inputs(config.data, run_dir, global_batch, distribution.replicas,
                            distribution.batches_to_device)
    resolved = config.with_dataset(len(inputs.class_names))
    record_config(resolved, run_dir)
    policy, why = resolve(resolved.precision)
    jit_compile, why_xla = distribute.choose_jit_compile(resolved.jit_compile, distribution)
    print(f"{why}; {distribution.describe()}"
          + (f", global batch {global_batch}" if distribution.replicas > 1 else "")
          + f"; {why_xla}")
    budget = None if config.time_budget is None else parse_duration(config.time_budget)
    clock = Timekeeper(phases_of(resolved), run_dir.status_file, budget, started)
    training = plan.TrainingData(inputs.train, inputs.val, config.data.seed,
                                 config.steps_per_execution, clock)
    return Prepared(scaled_for_replicas(resolved, distribution.replicas), policy, training,
                    inputs.test, inputs.class_names, distribution, run_dir, jit_compile)


def train_teacher(config: Config, run_dir: RunDir, preflight: bool = True) -> dict:
    with training_job(config, run_dir, preflight) as job:
        return _train_teacher(job)


def _train_teacher(job: Prepared) -> dict:
    run_dir = job.run_dir
    with job.distribution.scope():
        teacher = build_teacher(job.config.teacher, job.policy)
        print(f"teacher: {teacher.count_params():,} parameters")
        plan.train_teacher_phases(teacher, job.config.phases, job.policy, job.training, run_dir,
                                  job.jit_compile, job.distribution.callbacks(), job.fallbacks,
                                  lambda policy: build_teacher(job.config.teacher, policy))
    histories = {phase.name: run_dir.teacher_phase(index, phase.name).read_history()
                 for index, phase in enumerate(job.config.phases, start=1)}
    plots.plot_curves(histories, run_dir.reports / "teacher_curves.png")
    # Evaluated from the saved file: a plain single-device model, whatever the strategy.
    row = _evaluate_saved(job, "teacher")
    print(f"\nteacher test accuracy {row['accuracy']:.2%} (macro-F1 {row['macro_f1']:.4f}); "
          f"saved {run_dir.model_file('teacher')}")
    _print_peak_memory()
    return row


def _print_peak_memory() -> None:
    peak = peak_memory_bytes()
    if peak:
        print(f"peak accelerator memory {peak / 2**30:.2f} GiB")


def load_teacher(run_dir: RunDir, policy: PrecisionPolicy, config: Config) -> keras.Model:
    path = run_dir.require_model("teacher", "run train-teacher with this --run-dir first")
    teacher = build_teacher(config.teacher, policy)
    plan.load_weights_from(teacher, path)
    return teacher


def distill(config: Config, run_dir: RunDir, distilled: bool = True,
            preflight: bool = True) -> str:
    """The distilled student and, when `distill.baseline` says so, the same student trained
    from scratch; `distilled=False` trains the baseline alone (a benchmark's reference)."""
    with training_job(config, run_dir, preflight, distilled) as job:
        return _distill(job, config, distilled)


def _distill(job: Prepared, config: Config, distilled: bool) -> str:
    run_dir = job.run_dir
    step = job.step(run_dir.distillation.name)
    with job.distribution.scope():
        teacher = load_teacher(run_dir, step.policy, job.config)
        student = build_student(job.config.student, step.policy)
        print(f"student: {student.count_params():,} parameters "
              f"({teacher.count_params() / student.count_params():.1f}x fewer than the teacher)")
        if distilled:
            _say_fallback("distillation", step)
            plan.distill_student(teacher, student, job.config.distill, step.policy,
                                 job.training, run_dir, step.jit_compile,
                                 job.distribution.callbacks())
        if job.config.distill.baseline:
            step = job.step(run_dir.baseline.name)
            _say_fallback("baseline", step)
            baseline = build_student(job.config.student, step.policy)
            plan.train_student_from_scratch(baseline, job.config.distill, step.policy,
                                            job.training, run_dir, step.jit_compile,
                                            job.distribution.callbacks())
    _print_peak_memory()
    return evaluate(config, run_dir, prepared=job)


def _say_fallback(label: str, step: plan.StepSettings) -> None:
    if step.fallback:
        print(f"{label}: {step.fallback}")


def evaluate(config: Config, run_dir: RunDir, prepared: Prepared | None = None) -> str:
    job = prepared or prepare(config, run_dir)
    names = [name for name in ("teacher", "student_scratch", "student_distilled")
             if job.run_dir.model_file(name).exists()]
    if not names:
        raise RunDirError(f"no trained model in {job.run_dir.path}: run train-teacher first")
    labels = job.test.labels.astype(np.int64)
    rows = [_evaluate_saved(job, name) for name in names]
    rows.append(reports.chance_row(labels, len(job.class_names)))
    table = reports.write_comparison(rows, job.run_dir.reports)
    print(f"\ntest split ({job.run_dir.path}):\n{table}")
    return table


def _evaluate_saved(job: Prepared, name: str) -> dict:
    path = job.run_dir.model_file(name)
    model = keras.saving.load_model(path, safe_mode=True)
    return reports.evaluate_classifier(name, model, job.test, job.class_names,
                                       job.run_dir.reports, path)
