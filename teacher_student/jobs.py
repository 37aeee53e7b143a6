"""The user's training jobs: train the teacher, distil the student (evaluate is in
evaluation.py).

A job reads its config, prepares the inputs (decoded once, served as batches; augmentation runs
in the training step), makes the run's plan of steps (training/steps/), checks it (the
preflight), records the run (its config and split, once), trains the plan's steps that are its
own (`Step.job`) and evaluates the run's models, all in one run directory (run/directory.py)
that it locks. Jobs return result rows; tables are made by the command line and the reports.
Nothing here needs TensorFlow: the jobs run on any Keras backend.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

import keras

from teacher_student import evaluation
from teacher_student.config import Config, to_yaml
from teacher_student.config.values import parse_duration
from teacher_student.data.batches import Batches
from teacher_student.data.inputs import Inputs, prepare_inputs
from teacher_student.errors import RunDirError
from teacher_student.hardware import accelerator_name, device_name, peak_memory_bytes
from teacher_student.models.precision import PrecisionPolicy, resolve
from teacher_student.outputs import plots
from teacher_student.outputs.reports import add_to_comparison
from teacher_student.run import lock
from teacher_student.run.config import (
    record_config,
    resolve_run_config,
    saved_config,
    scaled_for_replicas,
    variant_name,
)
from teacher_student.run.directory import TEACHER, RunDir
from teacher_student.training import distribute
from teacher_student.training.preflight import run_preflight
from teacher_student.training.runner import run_steps
from teacher_student.training.steps import (
    DISTILL,
    JOBS,
    TRAIN_TEACHER,
    Execution,
    Step,
    TrainingData,
    plan_steps,
)
from teacher_student.training.steps.self_training import best_teacher
from teacher_student.training.timekeeping import Timekeeper


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
    plan: tuple[Step, ...]  # every step of the run, in order (training/steps/)
    steps: tuple[Step, ...]  # the steps of the plan that this job trains
    clock: Timekeeper
    # How each step of the plan runs, by step name: the run's precision and XLA setting
    # unless the preflight chose a fallback.
    executions: dict[str, Execution] = dataclasses.field(default_factory=dict)

    @property
    def test(self) -> Batches:
        return self.inputs.test

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.inputs.class_names

    @property
    def models(self) -> evaluation.RunModels:
        """The run's models, as evaluating them needs."""
        return evaluation.RunModels(self.config, self.run_dir, self.test, self.class_names,
                                    len(self.inputs.splits["train"].paths), self.plan,
                                    self.executions)


def worker_run_dir(run_dir: RunDir, distribution: distribute.Distribution) -> RunDir:
    return run_dir if distribution.is_chief else run_dir.for_worker(distribution.worker_index)


@contextmanager
def training_job(config: Config, run_dir: RunDir, command: str, preflight: bool = True,
                 distilled: bool = True) -> Iterator[Job]:
    """The job `command` (TRAIN_TEACHER or DISTILL), prepared and checked (the models its
    steps need are there, and the preflight), with the run recorded, its run directory locked
    until the job ends. Nothing is written into the run directory before the checks pass, so
    a refused config can be corrected on the same run directory."""
    distribution = distribute.choose()
    own_dir = worker_run_dir(run_dir, distribution)
    with lock.hold(own_dir.path):
        job = prepare(config, run_dir, command, distribution, distilled)
        _check_needs(job)
        if preflight:
            job = dataclasses.replace(job, executions=check_plan_steps(job))
        record_config(job.config, job.run_dir)
        job.inputs.record(job.run_dir)
        yield job


def check_plan_steps(job: Job) -> dict[str, Execution]:
    """The preflight of every step still to train (training/preflight/)."""
    return run_preflight(
        job.plan, Execution(job.policy, job.jit_compile), job.data, job.test, job.run_dir,
        job.clock, job.distribution.scope,
        # On a CPU a single step is already synchronous: short fits would only add time.
        timed_fits=accelerator_name() is not None and not job.distribution.spans_processes,
        fingerprint=preflight_fingerprint(job))


def preflight_fingerprint(job: Job) -> dict:
    """What the preflight's checks depend on: the config (but its time budget, what Keras
    prints and the comparison's timing, which change nothing it checks), the data, the
    machine and the software."""
    config = dataclasses.replace(job.config, time_budget=None, verbose="auto",
                                 measure_latency=True)
    return {"config": hashlib.sha256(to_yaml(config).encode()).hexdigest(),
            "data": job.inputs.digest(), "device": device_name(),
            "replicas": job.distribution.replicas, "keras": keras.version(),
            "backend": keras.backend.backend()}


def preflight(config: Config, run_dir: RunDir, command: str) -> None:
    """The preflight alone (`--preflight` of `command`): raises PreflightFailed when a step
    cannot run."""
    with training_job(config, run_dir, command):
        pass


def prepare(config: Config, run_dir: RunDir, command: str,
            distribution: distribute.Distribution | None = None,
            distilled: bool = True) -> Job:
    started = time.monotonic()  # the time budget counts from here
    distribution = distribution or distribute.choose()
    run_dir = worker_run_dir(run_dir, distribution)
    run_dir.check_writable()
    config = resolve_run_config(config, run_dir)
    global_batch = config.data.batch_size * distribution.replicas
    inputs = prepare_inputs(config.data, run_dir, global_batch, distribution.replicas,
                            distribution.batches_to_device,
                            _unlabeled_source(config, command, distilled))
    resolved = config.with_dataset(len(inputs.class_names))
    policy, why = resolve(resolved.precision)
    jit_compile, why_xla = distribute.choose_jit_compile(resolved.jit_compile, distribution)
    print(f"{why}; {distribution.describe()}"
          + (f", global batch {global_batch}" if distribution.replicas > 1 else "")
          + f"; {why_xla}")
    budget = None if config.time_budget is None else parse_duration(config.time_budget)
    plan = _concerning(command, plan_steps(scaled_for_replicas(resolved, distribution.replicas),
                                           run_dir, distilled), run_dir)
    data = TrainingData(inputs.train, inputs.val, config.data.seed, config.steps_per_execution,
                        inputs.train_with_unlabeled, inputs.fold_batches)
    return Job(resolved, policy, data, inputs, distribution, run_dir, jit_compile, plan,
               tuple(step for step in plan if step.job == command),
               Timekeeper(plan, run_dir.status_file, budget, started),
               {step.name: Execution(policy, jit_compile) for step in plan})


def _unlabeled_source(config: Config, command: str, distilled: bool) -> str | None:
    """The unlabeled images a job reads: the distillation's (data.unlabeled, or the older
    distill.unlabeled; a baseline alone counts them, to train as many steps), or those of the
    teacher's self-training rounds (data.unlabeled)."""
    if command == DISTILL:
        return config.unlabeled_images if distilled or config.distill.baseline else None
    return config.data.unlabeled if config.teacher.self_training.rounds else None


def _concerning(command: str, plan: list[Step], run_dir: RunDir) -> tuple[Step, ...]:
    """The steps of the run's plan that concern the job `command`: its own, a later job's
    (the preflight checks them now), and an earlier job's that ran here or would make what its
    own steps need and do not find. So a distillation from listed teachers, or in a variant's
    directory seeded with its run's teacher, has no teacher phases in its plan (to check,
    count or wait for)."""
    needed = {name for step in plan if step.job == command for name in step.needs}

    def concerns(step: Step) -> bool:
        if JOBS.index(step.job) >= JOBS.index(command) or step.directory.path.exists():
            return True
        made = {other.produces for other in plan if other.job == step.job} - {None}
        return any(not run_dir.model_file(name).exists() for name in made & needed)

    return tuple(step for step in plan if concerns(step))


def _check_needs(job: Job) -> None:
    """Each of the job's steps finds what it needs: its own checks pass, and the models it
    needs are readable in the run directory (a damaged one rebuilt from its checkpoints), or
    made by an earlier step of the job."""
    for step in job.plan:  # every step of the run: what is refused later is refused now
        step.check(job.inputs)
    made = set()
    for step in job.steps:
        for needed in step.needs:
            if needed not in made:
                evaluation.readable_model(job.run_dir, job.plan, job.executions, needed)
        made.add(step.produces)


def _run(job: Job) -> None:
    with job.distribution.scope():
        run_steps(job.steps, job.executions, job.data, job.clock, job.distribution.callbacks(),
                  job.config.verbose)
    peak = peak_memory_bytes()
    if peak:
        print(f"peak accelerator memory {peak / 2**30:.2f} GiB")


def train_teacher(config: Config, run_dir: RunDir, preflight: bool = True) -> dict:
    """The teacher's phases (and self-training rounds); the teacher's row of the comparison
    (on the test split), with each round's network's test accuracy (`rounds`) and which of
    them teaches (`teaches`) when there are rounds."""
    with training_job(config, run_dir, TRAIN_TEACHER, preflight) as job, job.clock.tracking():
        _run(job)
        histories = {step.title: step.directory.read_history() for step in job.steps}
        plots.plot_curves(histories, job.run_dir.reports / "teacher_curves.png")
        row = evaluation.evaluate_saved(job.models, TEACHER).row
        if job.inputs.folds:
            row["out_of_fold_accuracy"] = evaluation.out_of_fold(job.run_dir, job.inputs)
        rounds = job.run_dir.round_teachers()
        if rounds:
            row["rounds"] = {name: evaluation.evaluate_saved(job.models, name).row["accuracy"]
                             for name in rounds}
            row["teaches"] = best_teacher(job.run_dir)
    print(f"\nteacher test accuracy {row['accuracy']:.2%} (macro-F1 {row['macro_f1']:.4f}); "
          f"saved {job.run_dir.model_file(TEACHER)}")
    for name, accuracy in row.get("rounds", {}).items():
        print(f"{name} test accuracy {accuracy:.2%}")
    if rounds:
        print(f"the student learns from {row['teaches']} (the highest validation accuracy)")
    return row


def distill(config: Config, run_dir: RunDir, distilled: bool = True,
            preflight: bool = True, variant: str | None = None) -> list[dict]:
    """The distilled student and, when `distill.baseline` says so, the same student trained
    from scratch; `distilled=False` trains the baseline alone (a benchmark's reference). The
    comparison's rows (every model of the run, on the test split).

    On a run whose students are trained, other `distill` or `student` settings (or a
    `variant` name) make a variant of it: its own run directory inside the run's, seeded with
    its teacher and split, and its rows added to the run's comparison. The same settings
    again resume the variant, or report it."""
    name = variant or variant_name(config, run_dir)
    if name is not None:
        return _distill_variant(config, run_dir, name, distilled, preflight)
    with training_job(config, run_dir, DISTILL, preflight, distilled) as job, \
            job.clock.tracking():
        _run(job)
        return evaluation.compare(job.models)


def _distill_variant(config: Config, run_dir: RunDir, name: str, distilled: bool,
                     preflight: bool) -> list[dict]:
    if saved_config(run_dir) is None:
        raise RunDirError(f"{run_dir.path} holds no run (no config.yaml): train its teacher "
                          "first; a variant is distilled from it")
    variant = run_dir.variant(name)
    print(f"variant '{name}' of {run_dir.path}, in {variant.path}")
    rows = distill(config, variant.seed_from(run_dir), distilled, preflight)
    add_to_comparison(evaluation.variant_rows(rows, name), run_dir.reports)
    return rows
