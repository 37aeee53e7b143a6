"""The frontier a user picks a student from: test accuracy (from scratch and distilled) against
CPU latency and size, for every student `bench distill --students` trained, with the teacher.

    python -m teacher_student bench frontier --out runs/bench-distill

reads the runs under `--out` (any machine may have trained them) and measures, on this
machine's CPU, each model's TFLite latency for one image (outputs/latency.py: one thread,
accelerators hidden, in a fresh process; median and interquartile range of many calls) and its
size. Writes `frontier.md`, `frontier.csv` and `frontier.png` (accuracy against latency) in
`--out`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from teacher_student import atomic
from teacher_student.bench.distill_results import RESULT, scratch_of
from teacher_student.errors import UserError
from teacher_student.run.directory import STUDENT_SCRATCH, TEACHER
from teacher_student.tables import markdown_table

COLUMNS = [("model", "model", ""), ("params", "params", ","),
           ("fewer", "x fewer params", ".1f"), ("size_mb", ".keras MB", ".2f"),
           ("latency_ms", "CPU ms/img (TFLite, 1 thread)", ".3f"), ("iqr_ms", "IQR ms", ".3f"),
           ("faster", "x faster", ".1f"), ("scratch", "scratch %", ".2f"),
           ("distilled", "distilled %", ".2f"), ("gain", "gain (points)", "+.2f"),
           ("seeds", "seeds", "d")]


def run(out: Path) -> pd.DataFrame:
    frame = pd.concat([pd.read_csv(path) for path in sorted(out.glob(f"seed*/*/{RESULT}"))],
                      ignore_index=True)
    if frame.empty:
        raise UserError(f"{out}: no finished run of bench distill")
    by_seed = frame.pivot_table(index="seed", columns="model", values="accuracy")
    first = out / f"seed{int(by_seed.index.min())}"
    baselines = [name for name in by_seed.columns
                 if name.split("@")[0] == "scratch" and scratch_of(name) == name]
    files = {name: first / name / f"{STUDENT_SCRATCH}.keras" for name in baselines}
    files[TEACHER] = first / TEACHER / f"{TEACHER}.keras"
    measured = measure(files)
    teacher = measured[TEACHER]
    rows = [{"model": TEACHER, **teacher, "fewer": 1.0, "faster": 1.0,
             "scratch": 100 * by_seed[TEACHER].mean(), "seeds": int(by_seed[TEACHER].count())}]
    for scratch in baselines:
        rows += _student_rows(scratch, by_seed, measured[scratch], teacher)
    table = pd.DataFrame(rows)
    atomic.write_csv(table, out / "frontier.csv")
    atomic.write_text(out / "frontier.md", markdown_table(rows, COLUMNS)
                      + f"\n\nlatency measured on {teacher['device']}\n")
    plot(table, out / "frontier.png")
    return table


def _student_rows(scratch: str, by_seed: pd.DataFrame, model: dict, teacher: dict) -> list:
    """The student of baseline `scratch`: one row per method taught to it."""
    label = scratch.partition("@")[2] or "default"
    rows = []
    for name in by_seed.columns:
        if scratch_of(name) != scratch or name == scratch:
            continue
        gains = (by_seed[name] - by_seed[scratch]).dropna()
        rows.append({"model": f"{label}: {name.split('@')[0]}", **model,
                     "fewer": teacher["params"] / model["params"],
                     "faster": teacher["latency_ms"] / model["latency_ms"],
                     "scratch": 100 * by_seed[scratch][gains.index].mean(),
                     "distilled": 100 * by_seed[name][gains.index].mean(),
                     "gain": 100 * gains.mean(), "seeds": len(gains)})
    return rows


def measure(files: dict[str, Path]) -> dict[str, dict]:
    """Parameters, size and TFLite CPU latency (one image) of saved models, by name."""
    import keras

    from teacher_student.outputs.latency import measure_on_cpu

    missing = [str(path) for path in files.values() if not path.exists()]
    if missing:
        raise UserError(f"{missing[0]} does not exist: is that run finished?")
    timed = measure_on_cpu(list(files.values()), tflite=True)
    if timed.problem:
        raise UserError(f"CPU latency not measured: {timed.problem}")
    return {name: {"params": keras.saving.load_model(path, safe_mode=True).count_params(),
                   "size_mb": path.stat().st_size / 2**20,
                   "latency_ms": timed.tflite[str(path)].median_ms,
                   "iqr_ms": timed.tflite[str(path)].iqr_ms, "device": timed.device}
            for name, path in files.items()}


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Accuracy against CPU latency: each student from scratch (hollow) to distilled (filled),
    the teacher (trained from scratch) as a star; the marker's area follows the parameters."""
    from teacher_student.outputs.plots import pyplot, save_figure

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 5))
    area = lambda params: 20 + 200 * np.sqrt(params / table["params"].max())  # noqa: E731
    for _, row in table.iterrows():
        if row["model"] == TEACHER:
            axis.scatter(row["latency_ms"], row["scratch"], marker="*", s=300, color="black",
                         label=f"teacher ({row['params']:,} params)")
            continue
        color = axis.plot([row["latency_ms"]] * 2, [row["scratch"], row["distilled"]],
                          linewidth=1)[0].get_color()
        axis.scatter(row["latency_ms"], row["scratch"], s=area(row["params"]),
                     facecolors="none", edgecolors=color)
        axis.scatter(row["latency_ms"], row["distilled"], s=area(row["params"]), color=color,
                     label=f"{row['model']} ({row['params']:,} params)")
    axis.set_xscale("log")
    axis.set_xlabel("CPU latency per image, TFLite, 1 thread (ms, log scale)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title("students: from scratch (hollow) and distilled (filled)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)
