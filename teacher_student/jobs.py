"""The user's jobs: train the teacher, distil the student, evaluate all three.

A job reads its config, prepares the inputs (decoded once, served as batches; augmentation runs
in the training step), makes the run's plan of steps (training/steps.py), checks it (the
preflight), records the run (its config and split, once), trains the steps that make its models
and evaluates them, all in one run directory (run/directory.py) that it locks. Jobs return result
rows; tables are made by the command line and the reports. Nothing here needs TensorFlow: the
jobs run on any Keras backend.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np

from teacher_student.config import Config
from teacher_student.config.checks import parse_duration
from teacher_student.data.batches import Batches
from teacher_student.data.inputs import Inputs, prepare_inputs
from teacher_student.errors import RunDirError
from teacher_student.hardware import accelerator_name, peak_memory_bytes
from teacher_student.models.precision import PrecisionPolicy, resolve
from teacher_student.outputs import latency, metrics, model_plots, plots, reports
from teacher_student.run import lock
from teacher_student.run.checkpoints import unreadable_model
from teacher_student.run.config import (
    record_config,
    resolve_run_config,
    saved_config,
    scaled_for_replicas,
    with_data_flip,
)
from teacher_student.run.directory import (
    MODEL_NAMES,
    STUDENT_DISTILLED,
    STUDENT_SCRATCH,
    TEACHER,
    RunDir,
)
from teacher_student.training import distribute
from teacher_student.training.preflight import run_preflight
from teacher_student.training.runner import run_steps
from teacher_student.training.steps import Settings, Step, TrainingData, plan_steps
from teacher_student.training.timekeeping import Timekeeper

# The run's models that each job trains.
JOB_MODELS = {"train-teacher": (TEACHER,), "distill": (STUDENT_DISTILLED, STUDENT_SCRATCH)}


@dataclasses.dataclass(frozen=True)
class Job:
    """A job, prepared: its inputs, the run's plan of steps, and how each step runs."""
    config: Config  # the run's, resolved: model shapes and class count filled in
    policy: PrecisionPolicy
    data: TrainingData
    inputs: Inputs
    distribution: distribute.Distribution
    run_dir: RunDir  # a non-chief worker keeps its own files apart from the chief's
    jit_compile: bool
    plan: tuple[Step, ...]  # every step of the run, in order (steps.py)
    steps: tuple[Step, ...]  # the steps of the plan that this job trains
    clock: Timekeeper
    # How each step of the plan runs, by step name: the run's settings unless the preflight
    # chose a fallback.
    settings: dict[str, Settings] = dataclasses.field(default_factory=dict)

    @property
    def test(self) -> Batches:
        return self.inputs.test

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.inputs.class_names


def worker_run_dir(run_dir: RunDir, distribution: distribute.Distribution) -> RunDir:
    return run_dir if distribution.is_chief else run_dir.for_worker(distribution.worker_index)


@contextmanager
def training_job(config: Config, run_dir: RunDir, models: Sequence[str],
                 preflight: bool = True, distilled: bool = True) -> Iterator[Job]:
    """A job that trains the steps making `models`, prepared and checked (the models its steps
    need are there, and the preflight), with the run recorded, its run directory locked until
    the job ends. Nothing is written into the run directory before the checks pass, so a
    refused config can be corrected on the same run directory."""
    distribution = distribute.choose()
    own_dir = worker_run_dir(run_dir, distribution)
    with lock.hold(own_dir.path):
        job = prepare(config, run_dir, distribution, distilled, models)
        _check_needs(job)
        if preflight:
            job = dataclasses.replace(job, settings=check_plan_steps(job))
        record_config(job.config, job.run_dir)
        job.inputs.record(job.run_dir)
        yield job


def check_plan_steps(job: Job) -> dict[str, Settings]:
    """The preflight of every step still to train (preflight.py)."""
    return run_preflight(
        job.plan, Settings(job.policy, job.jit_compile), job.data, job.test, job.run_dir,
        job.clock, job.distribution.scope,
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
    distills = distilled and STUDENT_DISTILLED in models
    inputs = prepare_inputs(config.data, run_dir, global_batch, distribution.replicas,
                            distribution.batches_to_device,
                            config.distill.unlabeled if distills else None)
    resolved = config.with_dataset(len(inputs.class_names))
    policy, why = resolve(resolved.precision)
    jit_compile, why_xla = distribute.choose_jit_compile(resolved.jit_compile, distribution)
    print(f"{why}; {distribution.describe()}"
          + (f", global batch {global_batch}" if distribution.replicas > 1 else "")
          + f"; {why_xla}")
    budget = None if config.time_budget is None else parse_duration(config.time_budget)
    plan = tuple(plan_steps(with_data_flip(scaled_for_replicas(resolved, distribution.replicas)),
                            run_dir, distilled))
    data = TrainingData(inputs.train, inputs.val, config.data.seed, config.steps_per_execution,
                        inputs.train_with_unlabeled)
    return Job(resolved, policy, data, inputs, distribution, run_dir, jit_compile, plan,
               tuple(step for step in plan if step.produces in models),
               Timekeeper(plan, run_dir.status_file, budget, started),
               {step.name: Settings(policy, jit_compile) for step in plan})


def _check_needs(job: Job) -> None:
    """Each of the job's steps finds what it needs: its own checks pass, and the models it
    needs are readable in the run directory (a damaged one rebuilt from its checkpoints), or
    made by an earlier step of the job."""
    for step in job.plan:  # every step of the run: what is refused later is refused now
        step.check(job.class_names)
    made = set()
    for step in job.steps:
        for needed in step.needs:
            if needed not in made:
                _readable_model(job, needed)
        made.add(step.produces)


def _readable_model(job: Job, name: str) -> Path:
    """The run's model `name`; one that is missing or cannot be read back is rebuilt from the
    best checkpoint of the step that made it, saying so, where that step has finished."""
    path = job.run_dir.model_file(name)
    why = unreadable_model(path) if path.exists() else "missing"
    if why is None:
        return path
    maker = next((s for s in job.plan if s.produces == name and s.publish is not None), None)
    if maker is None or not maker.directory.is_done():
        raise RunDirError(f"{path} " + ("does not exist" if why == "missing" else
                                        f"cannot be read ({why})")
                          + f": run {_job_making(name)} with this --run-dir first")
    maker.publish(job.settings[maker.name])
    print(f"{path} was {why if why == 'missing' else f'unreadable ({why})'}: rebuilt from the "
          f"checkpoints of {maker.label}")
    return path


def _run(job: Job) -> None:
    with job.distribution.scope():
        run_steps(job.steps, job.settings, job.data, job.clock, job.distribution.callbacks(),
                  job.config.verbose)
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
        row = _evaluate_saved(job, TEACHER).row
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
        return _compare(job)


def evaluate(run_dir: RunDir) -> list[dict]:
    """Every model of a run on its own test split, with the run's own config (saved in it),
    under the run's lock; writes only the reports. The comparison's rows."""
    with lock.hold(run_dir.path):
        config = saved_config(run_dir)
        if config is None:
            raise RunDirError(f"{run_dir.path} holds no run (no config.yaml): train one there "
                              "first")
        return _compare(prepare(config, run_dir))


def _compare(job: Job) -> list[dict]:
    """Every model of the run on the test split, and what always answering the majority class
    scores; written as `reports/comparison.csv` and `.md`, with the figures that compare them
    (reliability, accuracy against CPU latency, the students' curves). The rows."""
    names = [name for name in MODEL_NAMES if job.run_dir.model_file(name).exists()]
    if not names:
        raise RunDirError(f"no trained model in {job.run_dir.path}: run train-teacher first")
    labels = job.test.labels.astype(np.int64)
    evaluations = {name: _evaluate_saved(job, name) for name in names}
    paths = {name: job.run_dir.model_file(name) for name in names}
    cpu = latency.measure_once(list(paths.values()), job.run_dir.reports / "latency.json",
                               tflite=True)
    rows = [{**row, **cpu.columns(paths[row["model"]])}
            for row in reports.with_teacher_agreement(evaluations, TEACHER)]
    rows.append(reports.chance_row(labels, len(job.class_names)))
    reports.write_comparison(rows, job.run_dir.reports, _notes(job, names))
    model_plots.plot_reliability(
        {name: metrics.reliability(e.probabilities, e.labels) for name, e in evaluations.items()},
        job.run_dir.reports / "reliability.png")
    students = {"distilled": job.run_dir.distillation.read_history(),
                "scratch": job.run_dir.baseline.read_history()}
    if any(not frame.empty for frame in students.values()):
        teacher = evaluations.get(TEACHER)
        plots.plot_student_curves(students, teacher.row["accuracy"] if teacher else None,
                                  job.run_dir.reports / "student_curves.png")
    return rows


def _notes(job: Job, names: Sequence[str]) -> list[str]:
    """What the comparison's table cannot show: the unlabeled images a student learnt from."""
    unlabeled = job.run_dir.unlabeled_count()
    if STUDENT_DISTILLED not in names or unlabeled is None:
        return []
    labeled = len(job.inputs.splits["train"].paths)
    return [f"{STUDENT_DISTILLED} learnt from the {labeled:,} labeled training images and "
            f"{unlabeled:,} unlabeled ones ({job.config.distill.unlabeled}, listed in "
            f"{job.run_dir.unlabeled_file.name}); the other models from the labeled ones alone."]


def _evaluate_saved(job: Job, name: str) -> reports.Evaluation:
    path = _readable_model(job, name)
    model = keras.saving.load_model(path, safe_mode=True)
    return reports.evaluate_classifier(name, model, job.test, job.class_names,
                                       job.run_dir.reports, path)
