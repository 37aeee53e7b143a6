"""The user's jobs: train the teacher, distil the student, evaluate all three.

A job reads its config, prepares the data (TensorFlow's tf.data), builds the models, hands them
to the trainer and writes the reports, all in one run directory:

    config.yaml          the resolved config: enough to rebuild every model of the run
    split.csv            every image with its label and split
    skipped_files.csv    every file that could not be used, and why
    teacher/phase*/      checkpoints and history of each teacher phase
    teacher.keras, student_scratch.keras, student_distilled.keras
    reports/             curves, confusion matrices, per-class reports, comparison table
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import keras
import pandas as pd

from teacher_student import config as config_module
from teacher_student import data as data_module
from teacher_student import distribute, files, phases, reports
from teacher_student.config import Config, ConfigError
from teacher_student.precision import PrecisionPolicy, resolve
from teacher_student.student import build_student
from teacher_student.teacher import build_teacher

CONFIG_FILE = "config.yaml"


@dataclasses.dataclass(frozen=True)
class Prepared:
    config: Config  # resolved: model shapes and class count filled in
    policy: PrecisionPolicy
    training: phases.TrainingData
    test: object
    class_names: tuple[str, ...]
    distribution: distribute.Distribution
    run_dir: Path  # a non-chief worker keeps its own files apart from the chief's
    jit_compile: bool


def check_writable(run_dir: Path, needed_mb: int = 200) -> None:
    """Fails before training, not after hours, when the run directory cannot take checkpoints."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        files.write_text(run_dir / ".write-test", "ok")
        (run_dir / ".write-test").unlink()
    except OSError as err:
        raise SystemExit(f"run directory {run_dir} is not writable: {err}") from err
    free_mb = shutil.disk_usage(run_dir).free // 2**20
    if free_mb < needed_mb:
        raise SystemExit(f"run directory {run_dir} has {free_mb} MB free; checkpoints need "
                         f"at least {needed_mb} MB")


def resolve_run_config(config: Config, run_dir: Path) -> Config:
    """The run's saved config when there is one (a rerun resumes), else `config`.

    Only how the steps run may change between runs of one directory: the precision (to
    continue a phase in float32 after a float16 overflow) and XLA (another machine); any other
    difference is an error naming the key.
    """
    saved_path = run_dir / CONFIG_FILE
    if not saved_path.exists():
        return config
    saved = config_module.load(saved_path)
    how = {"precision": config.precision, "jit_compile": config.jit_compile}
    ours = dataclasses.replace(config.with_dataset(saved.teacher.num_classes),
                               precision=saved.precision, jit_compile=saved.jit_compile)
    if ours != saved:
        key = _first_difference(config_module.to_dict(saved), config_module.to_dict(ours))
        raise ConfigError(f"{key}: differs from the config of the existing run in {run_dir}; "
                          "use another --run-dir, or the same settings to resume")
    return dataclasses.replace(saved, **how)


def _first_difference(a, b, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            if a[key] != b.get(key):
                return _first_difference(a[key], b.get(key), f"{prefix}{key}.")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{prefix}{i}.")
    return prefix.rstrip(".") or "config"


def worker_run_dir(run_dir: Path, distribution: distribute.Distribution) -> Path:
    if distribution.is_chief:
        return run_dir
    return run_dir / "workers" / f"worker-{distribution.worker_index}"


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


def prepare(config: Config, run_dir: Path) -> Prepared:
    distribution = distribute.choose()
    run_dir = worker_run_dir(run_dir, distribution)
    check_writable(run_dir)
    config = resolve_run_config(config, run_dir)
    settings = config.data
    keras.utils.set_random_seed(settings.seed)  # weights, shuffling and augmentation
    global_batch = settings.batch_size * distribution.replicas
    table = data_module.read_source(settings.source)
    data_module.write_skipped(table.skipped, run_dir / "skipped_files.csv")
    if table.skipped:
        print(f"skipped {len(table.skipped)} unusable files (listed in "
              f"{run_dir / 'skipped_files.csv'}):")
        for path, reason in table.skipped[:10]:
            print(f"  {path}: {reason}")
    splits = data_module.split_table(table, settings.val_fraction, settings.test_fraction,
                                     settings.seed)
    data_module.write_split(splits, table.class_names, run_dir / "split.csv")
    resolved = config.with_dataset(len(table.class_names))
    if not (run_dir / CONFIG_FILE).exists():
        files.write_text(run_dir / CONFIG_FILE, _yaml(resolved))
    policy, why = resolve(resolved.precision)
    print(f"{why}; data {settings.source}: {len(table.class_names)} classes, "
          + ", ".join(f"{name} {len(split.paths)}" for name, split in splits.items()))
    if distribution.replicas > 1:
        for name, split in splits.items():
            if len(split.paths) < global_batch:
                raise data_module.DataError(
                    f"the {name} split has {len(split.paths)} images, fewer than the global "
                    f"batch {global_batch} of {distribution.replicas} replicas; lower "
                    "data.batch_size or give the split a larger fraction")
    jit_compile, why_xla = distribute.choose_jit_compile(resolved.jit_compile, distribution)
    print(distribution.describe() + (f", global batch {global_batch}"
                                     if distribution.replicas > 1 else "") + f"; {why_xla}")

    def dataset(split: str, training: bool, augment: str = "none"):
        batches = data_module.make_dataset(
            splits[split].paths, splits[split].labels, image_size=settings.image_size,
            channels=settings.channels, batch_size=global_batch, training=training,
            augment=augment, cache=settings.cache, seed=settings.seed,
            # Replicas need equal shares: a ragged last batch fails under tf.distribute.
            drop_remainder=True if distribution.replicas > 1 else None)
        return _shard_by_data(batches) if distribution.replicas > 1 else batches

    weights = (data_module.class_weights(splits["train"].labels, len(table.class_names))
               if settings.class_weights else None)
    training = phases.TrainingData(
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


def _yaml(config: Config) -> str:
    import yaml

    return yaml.safe_dump(config_module.to_dict(config), sort_keys=False)


def train_teacher(config: Config, run_dir: Path) -> dict:
    job = prepare(config, run_dir)
    run_dir = job.run_dir
    with job.distribution.scope():
        teacher = build_teacher(job.config.teacher, job.policy)
        print(f"teacher: {teacher.count_params():,} parameters")
        teacher = phases.train_teacher(teacher, job.config.phases, job.policy, job.training,
                                       run_dir, job.jit_compile, job.distribution.callbacks())
    _plot_teacher_curves(job.config, run_dir)
    # Evaluated from the saved file: a plain single-device model, whatever the strategy.
    saved = keras.saving.load_model(run_dir / phases.TEACHER_FILE, safe_mode=True)
    row = reports.evaluate_classifier("teacher", saved, job.test, job.class_names,
                                      run_dir / "reports", run_dir / phases.TEACHER_FILE)
    print(f"\nteacher test accuracy {row['accuracy']:.2%} (macro-F1 {row['macro_f1']:.4f}); "
          f"saved {run_dir / phases.TEACHER_FILE}")
    return row


def _plot_teacher_curves(config: Config, run_dir: Path) -> None:
    histories = {}
    for index, phase in enumerate(config.phases, start=1):
        path = phases.phase_directory(run_dir, index, phase) / "history.csv"
        histories[phase.name] = reports.read_history(path) if path.exists() else pd.DataFrame()
    reports.plot_curves(histories, run_dir / "reports" / "teacher_curves.png")


def load_teacher(run_dir: Path, policy: PrecisionPolicy, config: Config) -> keras.Model:
    path = run_dir / phases.TEACHER_FILE
    if not path.exists():
        raise SystemExit(f"{path} does not exist: run train-teacher with this --run-dir first")
    teacher = build_teacher(config.teacher, policy)
    phases.load_weights_from(teacher, path)
    return teacher


def distill(config: Config, run_dir: Path) -> str:
    job = prepare(config, run_dir)
    run_dir = job.run_dir
    with job.distribution.scope():
        teacher = load_teacher(run_dir, job.policy, job.config)
        student = build_student(job.config.student, job.policy)
        print(f"student: {student.count_params():,} parameters "
              f"({teacher.count_params() / student.count_params():.1f}x fewer than the teacher)")
        phases.distill_student(teacher, student, job.config.distill, job.policy, job.training,
                               run_dir, job.jit_compile, job.distribution.callbacks())
        if job.config.distill.baseline:
            baseline = build_student(job.config.student, job.policy)
            phases.train_student_from_scratch(baseline, job.config.distill, job.policy,
                                              job.training, run_dir, job.jit_compile,
                                              job.distribution.callbacks())
    return evaluate(config, run_dir, prepared=job)


def evaluate(config: Config, run_dir: Path, prepared: Prepared | None = None) -> str:
    job = prepared or prepare(config, run_dir)
    run_dir = job.run_dir
    out = run_dir / "reports"
    rows = []
    for name, filename in (("teacher", phases.TEACHER_FILE),
                           ("student_scratch", phases.SCRATCH_FILE),
                           ("student_distilled", phases.DISTILLED_FILE)):
        path = run_dir / filename
        if path.exists():
            model = keras.saving.load_model(path, safe_mode=True)
            rows.append(reports.evaluate_classifier(name, model, job.test, job.class_names, out,
                                                    path))
    if not rows:
        raise SystemExit(f"no trained model in {run_dir}: run train-teacher first")
    table = reports.write_comparison(rows, out)
    print(f"\ntest split ({run_dir}):\n{table}")
    return table
