"""The user's jobs: train the teacher, distil the student, evaluate all three.

A job reads its config, prepares the inputs (decoded once, served as batches; augmentation runs
in the training step), makes the run's plan of steps (training/steps.py), checks it (the
preflight), trains the steps that make its models and evaluates them, all in one run directory
(see run_dir.py). Jobs return result rows; tables are made by the command line and the
reports. Nothing here needs TensorFlow: the jobs run
on any Keras backend.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
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
from teacher_student.outputs import plots, reports
from teacher_student.run_dir import MODEL_NAMES, STUDENT_DISTILLED, STUDENT_SCRATCH, TEACHER, RunDir
from teacher_student.training import distribute
from teacher_student.training.preflight import run_preflight
from teacher_student.training.runner import run_steps
from teacher_student.training.steps import Settings, Step, TrainingData, plan_steps
from teacher_student.training.timekeeping import Timekeeper

# The run's models that each job trains.
JOB_MODELS = {"train-teacher": (TEACHER,), "distill": (STUDENT_DISTILLED, STUDENT_SCRATCH)}


@dataclasses.dataclass(frozen=True)
class Job:
    """A training job, prepared: its inputs, the run's plan of steps, and how each step runs."""
    config: Config  # resolved: model shapes and class count filled in
    policy: PrecisionPolicy
    data: TrainingData
    test: Batches
    class_names: tuple[str, ...]
    distribution: distribute.Distribution
    run_dir: RunDir  # a non-chief worker keeps its own files apart from the chief's
    jit_compile: bool
    plan: tuple[Step, ...]  # every step of the run, in order (steps.py)
    steps: tuple[Step, ...]  # the steps of the plan that this job trains
    clock: Timekeeper
    # How each step of the plan runs, by step name: the run's settings unless the preflight
    # chose a fallback.
    settings: dict[str, Settings] = dataclasses.field(default_factory=dict)


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


@contextmanager
def training_job(config: Config, run_dir: RunDir, models: Sequence[str],
                 preflight: bool = True, distilled: bool = True) -> Iterator[Job]:
    """A job that trains the steps making `models`, prepared and checked (the models its steps
    need exist, and the preflight), its run directory locked until the job ends."""
    distribution = distribute.choose()
    own_dir = worker_run_dir(run_dir, distribution)
    with run_lock.hold(own_dir.path):
        job = prepare(config, run_dir, distribution, distilled, models)
        _check_needs(job)
        if preflight:
            job = dataclasses.replace(job, settings=check_plan_steps(job))
        yield job


def check_plan_steps(job: Job) -> dict[str, Settings]:
    """The preflight of every step still to train (preflight.py)."""
    return run_preflight(
        job.plan, Settings(job.policy, job.jit_compile), job.data, job.test, job.run_dir,
        job.clock.remaining_s(), job.distribution.scope,
        # On a CPU a single step is already synchronous: short fits would only add time.
        timed_fits=accelerator_name() is not None and not job.distribution.spans_processes)


def preflight(config: Config, run_dir: RunDir, command: str) -> None:
    """The preflight alone (`--preflight` of `command`): raises PreflightFailed when a step
    cannot run."""
    with training_job(config, run_dir, JOB_MODELS[command]):
        pass


def prepare(config: Config, run_dir: RunDir,
            distribution: distribute.Distribution | None = None, distilled: bool = True,
            models: Sequence[str] = ()) -> Job:
    started = time.monotonic()  # the time budget counts from here
    distribution = distribution or distribute.choose()
    run_dir = worker_run_dir(run_dir, distribution)
    run_dir.check_writable()
    config = resolve_run_config(config, run_dir)
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
    scaled = scaled_for_replicas(resolved, distribution.replicas)
    plan = tuple(plan_steps(scaled, run_dir, distilled))
    data = TrainingData(inputs.train, inputs.val, config.data.seed, config.steps_per_execution)
    return Job(scaled, policy, data, inputs.test, inputs.class_names, distribution, run_dir,
               jit_compile, plan, tuple(step for step in plan if step.produces in models),
               Timekeeper(plan, run_dir.status_file, budget, started),
               {step.name: Settings(policy, jit_compile) for step in plan})


def _check_needs(job: Job) -> None:
    """Each of the job's steps finds the models it needs: in the run directory, or made by an
    earlier step of the job."""
    made = set()
    for step in job.steps:
        for needed in step.needs:
            if needed not in made and not job.run_dir.model_file(needed).exists():
                raise RunDirError(f"{job.run_dir.model_file(needed)} does not exist: run "
                                  f"{_job_making(needed)} with this --run-dir first")
        made.add(step.produces)


def _run(job: Job) -> None:
    with job.distribution.scope():
        run_steps(job.steps, job.settings, job.data, job.clock, job.distribution.callbacks())
    _print_peak_memory()


def _job_making(model: str) -> str:
    return next(command for command, models in JOB_MODELS.items() if model in models)


def train_teacher(config: Config, run_dir: RunDir, preflight: bool = True) -> dict:
    """The teacher's phases; the teacher's row of the comparison (on the test split)."""
    with training_job(config, run_dir, JOB_MODELS["train-teacher"], preflight) as job:
        _run(job)
        histories = {phase.name: step.directory.read_history()
                     for phase, step in zip(job.config.phases, job.steps)}
        plots.plot_curves(histories, job.run_dir.reports / "teacher_curves.png")
        # Evaluated from the saved file: a plain single-device model, whatever the strategy.
        row = _evaluate_saved(job, TEACHER)
    print(f"\nteacher test accuracy {row['accuracy']:.2%} (macro-F1 {row['macro_f1']:.4f}); "
          f"saved {job.run_dir.model_file(TEACHER)}")
    return row


def _print_peak_memory() -> None:
    peak = peak_memory_bytes()
    if peak:
        print(f"peak accelerator memory {peak / 2**30:.2f} GiB")


def distill(config: Config, run_dir: RunDir, distilled: bool = True,
            preflight: bool = True) -> list[dict]:
    """The distilled student and, when `distill.baseline` says so, the same student trained
    from scratch; `distilled=False` trains the baseline alone (a benchmark's reference). The
    comparison's rows (every model of the run, on the test split)."""
    with training_job(config, run_dir, JOB_MODELS["distill"], preflight, distilled) as job:
        _run(job)
        return evaluate(config, run_dir, job=job)


def evaluate(config: Config, run_dir: RunDir, job: Job | None = None) -> list[dict]:
    """Every model of the run on its test split, and what always answering the majority class
    scores; written as `reports/comparison.csv` and `.md`. The rows."""
    job = job or prepare(config, run_dir)
    names = [name for name in MODEL_NAMES if job.run_dir.model_file(name).exists()]
    if not names:
        raise RunDirError(f"no trained model in {job.run_dir.path}: run train-teacher first")
    labels = job.test.labels.astype(np.int64)
    rows = [_evaluate_saved(job, name) for name in names]
    rows.append(reports.chance_row(labels, len(job.class_names)))
    reports.write_comparison(rows, job.run_dir.reports)
    return rows


def _evaluate_saved(job: Job, name: str) -> dict:
    path = job.run_dir.model_file(name)
    model = keras.saving.load_model(path, safe_mode=True)
    return reports.evaluate_classifier(name, model, job.test, job.class_names,
                                       job.run_dir.reports, path)
