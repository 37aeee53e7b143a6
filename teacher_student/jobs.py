"""The user's jobs: train the teacher, distil the student, evaluate all three.

A job reads its config, prepares the data (TensorFlow's tf.data), builds the models, hands them
to the training plan and writes the reports, all in one run directory (see run_dir.py).
"""

from __future__ import annotations

import dataclasses

import keras

from teacher_student import config as config_module
from teacher_student.config import Config, ConfigError
from teacher_student.data import pipeline
from teacher_student.data.sources import read_source
from teacher_student.data.splits import class_weights, split_table
from teacher_student.errors import DataError, RunDirError
from teacher_student.models.precision import PrecisionPolicy, resolve
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher
from teacher_student.outputs import plots, reports
from teacher_student.run_dir import RunDir
from teacher_student.training import distribute, plan


@dataclasses.dataclass(frozen=True)
class Prepared:
    config: Config  # resolved: model shapes and class count filled in
    policy: PrecisionPolicy
    training: plan.TrainingData
    test: object
    class_names: tuple[str, ...]
    distribution: distribute.Distribution
    run_dir: RunDir  # a non-chief worker keeps its own files apart from the chief's
    jit_compile: bool


def resolve_run_config(config: Config, run_dir: RunDir) -> Config:
    """The run's saved config when there is one (a rerun resumes), else `config`.

    Only how the steps run may change between runs of one directory: the precision (to
    continue a phase in float32 after a float16 overflow) and XLA (another machine); any other
    difference is an error naming the key.
    """
    if not run_dir.config_file.exists():
        return config
    saved = config_module.load(run_dir.config_file)
    how = {"precision": config.precision, "jit_compile": config.jit_compile}
    ours = dataclasses.replace(config.with_dataset(saved.teacher.num_classes),
                               precision=saved.precision, jit_compile=saved.jit_compile)
    if ours != saved:
        key = config_module.first_difference(saved, ours)
        raise ConfigError(f"{key}: differs from the config of the existing run in "
                          f"{run_dir.path}; "
                          "use another --run-dir, or the same settings to resume")
    return dataclasses.replace(saved, **how)


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


def prepare(config: Config, run_dir: RunDir) -> Prepared:
    distribution = distribute.choose()
    run_dir = worker_run_dir(run_dir, distribution)
    run_dir.check_writable()
    config = resolve_run_config(config, run_dir)
    settings = config.data
    keras.utils.set_random_seed(settings.seed)  # weights, shuffling and augmentation
    global_batch = settings.batch_size * distribution.replicas
    table = read_source(settings.source)
    run_dir.write_skipped(table.skipped)
    if table.skipped:
        print(f"skipped {len(table.skipped)} unusable files (listed in "
              f"{run_dir.skipped_file}):")
        for path, reason in table.skipped[:10]:
            print(f"  {path}: {reason}")
    splits = split_table(table, settings.val_fraction, settings.test_fraction, settings.seed)
    run_dir.write_split(splits, table.class_names)
    resolved = config.with_dataset(len(table.class_names))
    if not run_dir.config_file.exists():
        run_dir.write_config(config_module.to_yaml(resolved))
    policy, why = resolve(resolved.precision)
    print(f"{why}; data {settings.source}: {len(table.class_names)} classes, "
          + ", ".join(f"{name} {len(split.paths)}" for name, split in splits.items()))
    if distribution.replicas > 1:
        for name, split in splits.items():
            if len(split.paths) < global_batch:
                raise DataError(
                    f"the {name} split has {len(split.paths)} images, fewer than the global "
                    f"batch {global_batch} of {distribution.replicas} replicas; lower "
                    "data.batch_size or give the split a larger fraction")
    jit_compile, why_xla = distribute.choose_jit_compile(resolved.jit_compile, distribution)
    print(distribution.describe() + (f", global batch {global_batch}"
                                     if distribution.replicas > 1 else "") + f"; {why_xla}")

    def dataset(split: str, training: bool, augment: str = "none"):
        batches = pipeline.make_dataset(
            splits[split].paths, splits[split].labels, image_size=settings.image_size,
            channels=settings.channels, batch_size=global_batch, training=training,
            augment=augment, cache=settings.cache, seed=settings.seed,
            # Replicas need equal shares: a ragged last batch fails under tf.distribute.
            drop_remainder=True if distribution.replicas > 1 else None)
        return _shard_by_data(batches) if distribution.replicas > 1 else batches

    weights = (class_weights(splits["train"].labels, len(table.class_names))
               if settings.class_weights else None)
    training = plan.TrainingData(
        train=lambda augment: dataset("train", True, augment), val=dataset("val", False),
        steps_per_epoch=max(len(splits["train"].paths) // global_batch, 1),
        class_weight=weights)
    return Prepared(scaled_for_replicas(resolved, distribution.replicas), policy, training,
                    dataset("test", False), table.class_names, distribution, run_dir,
                    jit_compile)


def _shard_by_data(batches):
    """Workers split batches, not files: the file list is one tensor, not a set of files."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return batches.with_options(options)


def train_teacher(config: Config, run_dir: RunDir) -> dict:
    job = prepare(config, run_dir)
    run_dir = job.run_dir
    with job.distribution.scope():
        teacher = build_teacher(job.config.teacher, job.policy)
        print(f"teacher: {teacher.count_params():,} parameters")
        plan.train_teacher_phases(teacher, job.config.phases, job.policy, job.training, run_dir,
                                  job.jit_compile, job.distribution.callbacks())
    histories = {phase.name: run_dir.teacher_phase(index, phase.name).read_history()
                 for index, phase in enumerate(job.config.phases, start=1)}
    plots.plot_curves(histories, run_dir.reports / "teacher_curves.png")
    # Evaluated from the saved file: a plain single-device model, whatever the strategy.
    row = _evaluate_saved(job, "teacher")
    print(f"\nteacher test accuracy {row['accuracy']:.2%} (macro-F1 {row['macro_f1']:.4f}); "
          f"saved {run_dir.model_file('teacher')}")
    return row


def load_teacher(run_dir: RunDir, policy: PrecisionPolicy, config: Config) -> keras.Model:
    path = run_dir.require_model("teacher", "run train-teacher with this --run-dir first")
    teacher = build_teacher(config.teacher, policy)
    plan.load_weights_from(teacher, path)
    return teacher


def distill(config: Config, run_dir: RunDir) -> str:
    job = prepare(config, run_dir)
    run_dir = job.run_dir
    with job.distribution.scope():
        teacher = load_teacher(run_dir, job.policy, job.config)
        student = build_student(job.config.student, job.policy)
        print(f"student: {student.count_params():,} parameters "
              f"({teacher.count_params() / student.count_params():.1f}x fewer than the teacher)")
        plan.distill_student(teacher, student, job.config.distill, job.policy, job.training,
                             run_dir, job.jit_compile, job.distribution.callbacks())
        if job.config.distill.baseline:
            baseline = build_student(job.config.student, job.policy)
            plan.train_student_from_scratch(baseline, job.config.distill, job.policy,
                                            job.training, run_dir, job.jit_compile,
                                            job.distribution.callbacks())
    return evaluate(config, run_dir, prepared=job)


def evaluate(config: Config, run_dir: RunDir, prepared: Prepared | None = None) -> str:
    job = prepared or prepare(config, run_dir)
    names = [name for name in ("teacher", "student_scratch", "student_distilled")
             if job.run_dir.model_file(name).exists()]
    if not names:
        raise RunDirError(f"no trained model in {job.run_dir.path}: run train-teacher first")
    table = reports.write_comparison([_evaluate_saved(job, name) for name in names],
                                     job.run_dir.reports)
    print(f"\ntest split ({job.run_dir.path}):\n{table}")
    return table


def _evaluate_saved(job: Prepared, name: str) -> dict:
    path = job.run_dir.model_file(name)
    model = keras.saving.load_model(path, safe_mode=True)
    return reports.evaluate_classifier(name, model, job.test, job.class_names,
                                       job.run_dir.reports, path)
