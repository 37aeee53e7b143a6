"""Does distillation beat training the student alone, and by how much of the teacher's lead?

    python -m teacher_student bench distill --data mnist --seeds 0 1 2 --out runs/distill \
        [--students 1 2 MobileNetV3Small] [--teachers 3] [--unlabeled 0.75] [--teacher-size 64]

Per seed (which re-splits the data and re-initialises every model): the teacher is trained once
(with `--teachers N`, N teachers on the same split, of other initial weights, for the
`*-ensemble` variants; with `--folds K`, K fold teachers on its training and validation images,
the test split held out, for the `*-folds` variants; with `--teacher-size PX`, a teacher on its
split at PX px, for the `*-resized` variants, which see the student's batch resized); then every
variant (a distillation method and its settings, or a baseline: the student trained from scratch
with a kind of mixing), for every student (`--students`: width multipliers of our student, or
keras.applications networks), runs in a run directory of its own, seeded with the teacher's
files and decoded images, so the teacher is not trained, nor the images decoded, again. All
student runs share the augmentation, budget and schedule; a method is compared with the baseline
of its own mixing and student. Each run writes its `result.csv` when it is done, so runs can go
in parallel processes sharing `--out` (`--jobs N`: N processes at a time, the first seed's runs
first, each logging to its run's `bench.log`), and a rerun skips them. With `--unlabeled SHARE`,
that share of each seed's training images loses its labels (unlabeled.py): every model learns
from the labeled rest, and the distilled students from the unlabeled images too
(`data.unlabeled`), as do the teacher's self-training rounds with `--set
teacher.self_training.rounds=N` (rows `teacher roundK`). The table (distill_results.py) is
written to `distillation.md`, with every run in `distillation.csv`. `bench frontier` sets the
students against their CPU latency and size.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from teacher_student import atomic, jobs
from teacher_student import config as config_module
from teacher_student.bench import DISTILL_VARIANTS as VARIANTS
from teacher_student.bench.common import gpu_count, run_logged
from teacher_student.bench.distill_results import RESULT, table, write_result
from teacher_student.bench.unlabeled import split_off_unlabeled
from teacher_student.run.directory import STUDENT_DISTILLED, STUDENT_SCRATCH, TEACHER, RunDir

DEFAULT_STUDENT = "default"  # the config's own student
FOLD_TEACHERS = f"{TEACHER}-folds"  # the seed's run of data.folds K teachers


def run(data: str, seeds: Sequence[int], variants: Sequence[str], out: Path,
        config: str | None = None, overrides: Sequence[str] = (),
        students: Sequence[str] = (DEFAULT_STUDENT,), teachers: int = 1,
        only_teacher: int | None = None, unlabeled: float | None = None, folds: int = 5,
        only_folds: bool = False, teacher_size: int | None = None,
        only_sized_teacher: bool = False) -> pd.DataFrame:
    """Every (seed, variant, student) run not done yet, then the results of all of them.
    `only_teacher`: train that teacher of each seed (0: the first), nothing else; `only_folds`:
    the seed's `folds` fold teachers, nothing else; `only_sized_teacher`: the seed's teacher at
    `teacher_size` px, nothing else.
    `unlabeled`: the share of the training images whose labels are dropped (unlabeled.py)."""
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise config_module.ConfigError(f"bench distill: unknown variant {unknown[0]!r} "
                                        f"(known: {', '.join(VARIANTS)})")
    for seed in seeds:
        base = [*_data(data, seed, unlabeled, out, config, overrides), f"data.seed={seed}",
                *overrides]
        if only_teacher is not None:
            _trained_teacher(out, seed, only_teacher, config, base)
            continue
        if only_sized_teacher:
            _trained_sized_teacher(out, seed, teacher_size, config, base)
            continue
        if only_folds or any(name.endswith("-folds") for name in variants):
            folds_run = _trained_fold_teachers(out, seed, folds, config, base)
            if only_folds:
                continue
        if any(name.endswith("-resized") for name in variants):
            sized_run = _trained_sized_teacher(out, seed, teacher_size, config, base)
        ensembles = any(name.endswith("ensemble") for name in variants)
        teacher_runs = [_trained_teacher(out, seed, index, config, base)
                        for index in range(teachers if ensembles else 1)]
        for student in students:
            for name in variants:
                taught_by = folds_run if name.endswith("-folds") else teacher_runs[0]
                run_dir = RunDir(out / f"seed{seed}" / run_name(name, student)).seed_from(
                    taught_by)
                if (run_dir.path / RESULT).exists():
                    continue
                baseline = name.startswith("scratch")
                variant = config_module.load(config, [
                    *base, *VARIANTS[name], *student_overrides(student),
                    f"distill.baseline={str(baseline).lower()}",
                    # the table needs accuracy; `bench frontier` times the students it shows
                    "measure_latency=false", *_ensemble_override(name, teacher_runs),
                    *([f"distill.teachers=[{sized_run.path.resolve()}]"]
                      if name.endswith("-resized") else []),
                    *([f"data.folds={folds}"] if name.endswith("-folds") else [])])
                rows = jobs.distill(variant, run_dir, distilled=not baseline, preflight=False)
                model = STUDENT_SCRATCH if baseline else STUDENT_DISTILLED
                row = next(row for row in rows if row["model"] == model)
                agreement = None if baseline else row.get("teacher_agreement")
                write_result(run_dir, seed, run_name(name, student), float(row["accuracy"]),
                             agreement=agreement)
    frame, text = table(out, seeds)
    atomic.write_csv(frame, out / "distillation.csv")
    atomic.write_text(out / "distillation.md", text + "\n")
    return frame


def _data(data: str, seed: int, unlabeled: float | None, out: Path, config: str | None,
          overrides: Sequence[str]) -> list[str]:
    """The seed's data settings: the source, or its labeled part and its unlabeled images."""
    if unlabeled is None:
        return [f"data.source={data}"]
    if not 0 < unlabeled < 1:
        raise config_module.ConfigError(f"bench distill --unlabeled: a share in (0, 1), got "
                                        f"{unlabeled}")
    fractions = config_module.load(config, overrides).data
    labeled, images = split_off_unlabeled(data, unlabeled, seed, out / f"seed{seed}" / "data",
                                          fractions.val_fraction, fractions.test_fraction)
    # data.unlabeled: the teacher's self-training rounds learn from them too, when it has any
    return [f"data.source={labeled.resolve()}", f"data.unlabeled={images.resolve()}"]


def run_name(variant: str, student: str) -> str:
    """`kd`, or `kd@w2` for another student than the config's."""
    return variant if student == DEFAULT_STUDENT else f"{variant}@{student_label(student)}"


def student_label(student: str) -> str:
    return f"w{float(student):g}" if _is_number(student) else student


def student_overrides(student: str) -> list[str]:
    """A width multiplier of our student, or a keras.applications network."""
    if student == DEFAULT_STUDENT:
        return []
    if _is_number(student):
        return [f"student.width_multiplier={float(student)}"]
    return [f"student.trunk={student}"]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _trained_teacher(out: Path, seed: int, index: int, config: str | None,
                     base: Sequence[str]) -> RunDir:
    """The seed's teacher `index`: the first draws the seed's split; the others train on that
    split from other initial weights (for an ensemble)."""
    name = TEACHER if index == 0 else f"{TEACHER}{index + 1}"
    teacher_run = RunDir(out / f"seed{seed}" / name)
    if (teacher_run.path / RESULT).exists():
        return teacher_run
    overrides = list(base)
    if index:
        first = RunDir(out / f"seed{seed}" / TEACHER)
        overrides.append(f"data.seed={seed + 1000 * index}")
        teacher_run.path.mkdir(parents=True, exist_ok=True)
        for record in ("split.csv", "split.csv.sha256"):  # the run keeps this split
            shutil.copy2(first.path / record, teacher_run.path / record)
        saved = config_module.load(first.config_file)
        own = config_module.load(config, overrides).with_dataset(saved.teacher.num_classes)
        teacher_run.write_config(config_module.to_yaml(own))
    row = jobs.train_teacher(config_module.load(config, overrides), teacher_run, preflight=False)
    rounds = {f"{name} {model.removeprefix('teacher_')}": accuracy
              for model, accuracy in row.get("rounds", {}).items()}
    write_result(teacher_run, seed, name, row["accuracy"], rounds)
    return teacher_run


def _trained_fold_teachers(out: Path, seed: int, folds: int, config: str | None,
                           base: Sequence[str]) -> RunDir:
    """The seed's K fold teachers (data.folds): the seed's split, so the same test images as
    its first teacher's, every training and validation image in K stratified folds. Its
    results: the folds' ensemble on the test split and the out-of-fold accuracy."""
    run_dir = RunDir(out / f"seed{seed}" / FOLD_TEACHERS)
    if (run_dir.path / RESULT).exists():
        return run_dir
    row = jobs.train_teacher(config_module.load(config, [*base, f"data.folds={folds}"]),
                             run_dir, preflight=False)
    write_result(run_dir, seed, FOLD_TEACHERS, row["accuracy"],
                 {f"{FOLD_TEACHERS} out of fold": row["out_of_fold_accuracy"]})
    return run_dir


def sized_teacher_name(size: int) -> str:
    return f"{TEACHER}-{size}px"


def _trained_sized_teacher(out: Path, seed: int, size: int | None, config: str | None,
                           base: Sequence[str]) -> RunDir:
    """The seed's teacher at `size` px a side: the seed's split (the same source and
    data.seed), so it never learnt from the students' test images; they list it in
    distill.teachers and it sees their batches resized to its own."""
    if not size:
        raise config_module.ConfigError("bench distill: the *-resized variants need "
                                        "--teacher-size PX")
    name = sized_teacher_name(size)
    run_dir = RunDir(out / f"seed{seed}" / name)
    if (run_dir.path / RESULT).exists():
        return run_dir
    row = jobs.train_teacher(config_module.load(config, [*base, f"data.image_size={size}"]),
                             run_dir, preflight=False)
    write_result(run_dir, seed, name, row["accuracy"])
    return run_dir


def _ensemble_override(name: str, teacher_runs: Sequence[RunDir]) -> list[str]:
    if not name.endswith("ensemble"):
        return []
    if len(teacher_runs) < 2:
        raise config_module.ConfigError(f"bench distill: {name} needs --teachers 2 or more")
    return [f"distill.teachers=[{', '.join(str(r.path.resolve()) for r in teacher_runs)}]"]


def run_in_processes(data: str, seeds: Sequence[int], variants: Sequence[str], out: Path,
                     config: str | None, overrides: Sequence[str], jobs: int,
                     students: Sequence[str] = (DEFAULT_STUDENT,),
                     teachers: int = 1, unlabeled: float | None = None,
                     folds: int = 5, teacher_size: int | None = None) -> pd.DataFrame:
    """`run`, split into one process per run, `jobs` at a time, spread over the GPUs: every
    seed's first teacher and its fold teachers (for `*-folds` variants: the longest runs, so
    they start first), then its other teachers and the runs that need one teacher, then the
    ensembles and the students of the folds. Processes sharing a GPU allocate its memory as
    they need it, not most of it up front; a persistent compilation cache (JAX's
    JAX_COMPILATION_CACHE_DIR) lets later runs reuse the programs the first ones compiled."""
    gpus = gpu_count()
    with_sized = any(name.endswith("-resized") for name in variants)
    sized = sized_teacher_name(teacher_size) if with_sized and teacher_size else None

    def one(task: tuple) -> None:
        index, (seed, what) = task
        folder = what if isinstance(what, str) else TEACHER + (f"{what + 1}" if what else "")
        log = out / f"seed{seed}" / folder / "bench.log"
        command = [sys.executable, "-m", "teacher_student", "bench", "distill", "--data", data,
                   "--seeds", str(seed), "--out", str(out), "--teachers", str(teachers),
                   "--folds", str(folds)]
        if what == FOLD_TEACHERS:
            command += ["--only-folds"]
        elif what == sized:
            command += ["--only-sized-teacher"]
        elif isinstance(what, str):
            variant, _, _ = what.partition("@")
            command += ["--variants", variant, "--students", _student_of(what, students)]
        else:
            command += ["--only-teacher", str(what)]
        command += ["--config", config] if config else []
        command += ["--unlabeled", str(unlabeled)] if unlabeled is not None else []
        command += ["--teacher-size", str(teacher_size)] if teacher_size else []
        command += [part for override in overrides for part in ("--set", override)]
        if run_logged(command, log, index % gpus if gpus > 1 else None):
            raise RuntimeError(f"bench distill: seed {seed} {folder} failed, see {log}")

    for seed in seeds:  # the data first, once, before processes share it
        _data(data, seed, unlabeled, out, config, overrides)
    runs = [run_name(name, student) for student in students for name in variants]
    single = [name for name in runs if not name.split("@")[0].endswith(("ensemble", "-folds"))]
    with_folds = any(name.endswith("-folds") for name in variants)
    stages = ([*((seed, FOLD_TEACHERS) for seed in seeds if with_folds),
               *((seed, 0) for seed in seeds),
               *((seed, sized) for seed in seeds if sized)],
              [*((seed, k) for seed in seeds for k in range(1, teachers)),
               *((seed, name) for seed in seeds for name in single)],
              [(seed, name) for seed in seeds for name in runs if name not in single])
    with ThreadPoolExecutor(jobs) as pool:
        for stage in stages:
            for future in [pool.submit(one, task) for task in enumerate(stage)]:
                future.result()
    return run(data, seeds, variants, out, config, overrides, students, teachers,
               unlabeled=unlabeled, folds=folds, teacher_size=teacher_size)


def _student_of(name: str, students: Sequence[str]) -> str:
    label = name.partition("@")[2]
    return next(s for s in students if label == "" and s == DEFAULT_STUDENT
                or label and student_label(s) == label)
