"""Does distillation beat training the student alone, and by how much of the teacher's lead?

    python -m teacher_student bench distill --data mnist --seeds 0 1 2 --out runs/distill

Per seed (which re-splits the data and re-initialises every model): the teacher is trained
once; then every variant (a distillation method and its settings, or a baseline: the student
trained from scratch with a kind of mixing) runs in a run directory of its own, seeded with the
teacher's files and decoded images, so the teacher is not trained, nor the images decoded,
again. All student runs share the augmentation, budget and schedule; a method is compared with
the baseline of its own mixing. Each run writes its `result.csv` when it is done, so runs can
go in parallel processes sharing `--out` (`--jobs N`: N processes at a time, the first seed's runs
first, each logging to its run's `bench.log`), and a rerun skips them.
The table: per variant, test accuracy mean and standard deviation over the seeds, the gain
over its baseline paired by seed and the share of the teacher-scratch gap closed,
(variant - scratch) / (teacher - scratch), in `distillation.md` with every run in
`distillation.csv`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from teacher_student import atomic, jobs
from teacher_student import config as config_module
from teacher_student.bench import DISTILL_VARIANTS as VARIANTS
from teacher_student.run_dir import STUDENT_DISTILLED, STUDENT_SCRATCH, TEACHER, RunDir
from teacher_student.tables import markdown_table

COPIED = ("config.yaml", "split.csv", "skipped_files.csv", f"{TEACHER}.keras")
RESULT = "result.csv"


def run(data: str, seeds: Sequence[int], variants: Sequence[str], out: Path,
        config: str | None = None, overrides: Sequence[str] = ()) -> pd.DataFrame:
    """Every (seed, variant) run not done yet, then the results of all of them."""
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise config_module.ConfigError(f"bench distill: unknown variant {unknown[0]!r} "
                                        f"(known: {', '.join(VARIANTS)})")
    for seed in seeds:
        base = [f"data.source={data}", f"data.seed={seed}", *overrides]
        teacher_run = RunDir(out / f"seed{seed}" / TEACHER)
        if not (teacher_run.path / RESULT).exists():
            row = jobs.train_teacher(config_module.load(config, base), teacher_run,
                                     preflight=False)
            _write_result(teacher_run, seed, TEACHER, row["accuracy"])
        for name in variants:
            run_dir = _seeded(teacher_run, out / f"seed{seed}" / name)
            if (run_dir.path / RESULT).exists():
                continue
            baseline = name.startswith("scratch")
            settings = config_module.load(
                config, [*base, *VARIANTS[name], f"distill.baseline={str(baseline).lower()}"])
            rows = jobs.distill(settings, run_dir, distilled=not baseline, preflight=False)
            student = STUDENT_SCRATCH if baseline else STUDENT_DISTILLED
            accuracy = next(row["accuracy"] for row in rows if row["model"] == student)
            _write_result(run_dir, seed, name, float(accuracy))
    frame = results(out, seeds)
    atomic.write_csv(frame, out / "distillation.csv")
    atomic.write_text(out / "distillation.md", format_table(frame) + "\n")
    return frame


def run_in_processes(data: str, seeds: Sequence[int], variants: Sequence[str], out: Path,
                     config: str | None, overrides: Sequence[str], jobs: int) -> pd.DataFrame:
    """`run`, split into one process per run, `jobs` at a time: the teachers, then the rest.
    Processes sharing a GPU allocate its memory as they need it, not most of it up front."""
    environment = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                   "TF_FORCE_GPU_ALLOW_GROWTH": "true"}

    def one(seed: int, names: Sequence[str]) -> None:
        log = out / f"seed{seed}" / (names[0] if names else TEACHER) / "bench.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "teacher_student", "bench", "distill", "--data", data,
                   "--seeds", str(seed), "--out", str(out), "--variants", *names]
        command += ["--config", config] if config else []
        command += [part for override in overrides for part in ("--set", override)]
        with open(log, "w") as stream:
            done = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT,
                                  env=environment, check=False)
        if done.returncode:
            raise RuntimeError(f"bench distill: seed {seed} {names or 'teacher'} failed, "
                               f"see {log}")

    # The first seed's runs go first, so that a persistent compilation cache (JAX's
    # JAX_COMPILATION_CACHE_DIR) serves the same programs to the other seeds' runs.
    first, rest = seeds[0], seeds[1:]
    stages = ([(first, [])],
              [*((seed, []) for seed in rest), *((first, [name]) for name in variants)],
              [(seed, [name]) for seed in rest for name in variants])
    with ThreadPoolExecutor(jobs) as pool:
        for stage in stages:
            for future in [pool.submit(one, *task) for task in stage]:
                future.result()
    return run(data, seeds, variants, out, config, overrides)


def results(out: Path, seeds: Sequence[int]) -> pd.DataFrame:
    """Every finished run's result under `out` for these seeds."""
    files = [path for seed in seeds for path in sorted((out / f"seed{seed}").glob(f"*/{RESULT}"))]
    return pd.concat([pd.read_csv(path) for path in files], ignore_index=True)


def format_table(frame: pd.DataFrame) -> str:
    """Per model: mean and spread of the test accuracy over the seeds; for a student, its gain
    over the baseline of its mixing, paired by seed (the same split and teacher), and the share
    of the teacher-scratch gap closed on those seeds."""
    by_seed = frame.pivot_table(index="seed", columns="model", values="accuracy")
    order = [TEACHER, *(name for name in VARIANTS if name in by_seed.columns)]
    lines = []
    for name in order:
        scores = by_seed[name].dropna()
        line = {"model": name, "mean": scores.mean(), "std": scores.std(ddof=1),
                "seeds": len(scores)}
        scratch = _scratch_of(name)
        if name != TEACHER and scratch != name and scratch in by_seed.columns:
            gains = (by_seed[name] - by_seed[scratch]).dropna()
            gap = (by_seed[TEACHER] - by_seed[scratch])[gains.index].mean()
            line.update(gain=gains.mean(), gain_std=gains.std(ddof=1),
                        gap_closed=gains.mean() / gap if gap > 0 else None)
        lines.append(line)
    percent = lambda value: f"{100 * value:.2f}"  # noqa: E731
    return markdown_table(lines, [
        ("model", "model", ""), ("mean", "test accuracy %", percent), ("std", "± std", percent),
        ("seeds", "seeds", "d"),
        ("gain", "gain over scratch (points)", lambda v: f"{100 * v:+.2f}"),
        ("gain_std", "± std", percent), ("gap_closed", "gap closed", ".0%")])


def _scratch_of(name: str) -> str:
    mix = next((o.split("=")[1] for o in VARIANTS.get(name, []) if o.startswith("distill.mix=")),
               "none")
    return "scratch" if mix == "none" else f"scratch+{mix}"


def _seeded(teacher_run: RunDir, path: Path) -> RunDir:
    """A run directory holding the teacher run's config, split, teacher and decoded images
    (linked): distilling there neither trains the teacher nor decodes the images again."""
    run_dir = RunDir(path)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (teacher_run.path / name).exists() and not (run_dir.path / name).exists():
            shutil.copy2(teacher_run.path / name, run_dir.path / name)
    if teacher_run.cache.exists() and not run_dir.cache.exists():
        run_dir.cache.symlink_to(teacher_run.cache.resolve(), target_is_directory=True)
    return run_dir


def _write_result(run_dir: RunDir, seed: int, model: str, accuracy: float) -> None:
    atomic.write_csv(pd.DataFrame([{"seed": seed, "model": model, "accuracy": accuracy}]),
                     run_dir.path / RESULT)
