"""The timings of finished runs, read from their steps' histories (the steps of each run's plan,
training/steps/): per step, the epochs, the seconds of one epoch and the training images per
second (medians of the epochs after the first, which compiles the steps), the first epoch's
seconds beyond those of a later one (what compiling the step cost that process, or loading it
from the compilation cache), and the whole step's seconds.

    python -m teacher_student bench runs RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from teacher_student import config as config_module
from teacher_student.run.directory import RunDir
from teacher_student.tables import markdown_table

COLUMNS = [("run", "run", ""), ("step", "step", ""), ("epochs", "epochs", "d"),
           ("epoch_s", "s/epoch", ".1f"), ("images_per_s", "train img/s", ".0f"),
           ("compile_s", "first epoch's extra s", ".1f"), ("total_s", "step s", ".0f")]


def step_rows(run_dir: RunDir) -> list[dict]:
    from teacher_student.training.steps import plan_steps

    rows = []
    for step in plan_steps(config_module.load(run_dir.config_file), run_dir):
        history = step.directory.read_history()
        if history.empty or "seconds" not in history:
            continue
        steady = history.iloc[1:] if len(history) > 1 else history
        rows.append({"run": run_dir.path.name, "step": step.label, "epochs": len(history),
                     "epoch_s": float(steady["seconds"].median()),
                     "images_per_s": float(steady["train_images_per_s"].median())
                     if "train_images_per_s" in steady else None,
                     "compile_s": float(history["seconds"].iloc[0] - steady["seconds"].median())
                     if len(history) > 1 else None,
                     "total_s": float(history["seconds"].sum())})
    return rows


def table(run_dirs: Sequence[Path]) -> str:
    rows = [row for path in run_dirs for row in step_rows(RunDir(path))]
    totals = pd.DataFrame(rows).groupby("run", sort=False)["total_s"].sum() if rows else {}
    rows += [{"run": run, "step": "all steps", "total_s": seconds}
             for run, seconds in dict(totals).items()]
    return markdown_table(rows, COLUMNS)
