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

import pandas as pd

from teacher_student import atomic
from teacher_student.bench.distill_results import RESULT, scratch_of
from teacher_student.errors import UserError
from teacher_student.run.directory import STUDENT_SCRATCH, TEACHER
from teacher_student.tables import markdown_table

COLUMNS = [("model", "model", ""), ("params", "params", ","),
           ("fewer", "x fewer params", ".1f"), ("size_mb", ".keras MB", ".2f"),
           ("latency_ms", "CPU ms/img (TFLite, 1 thread)", ".3f"), ("iqr_ms", "IQR ms", ".3f"),
           ("faster", "x faster", ".1f"), ("teacher", "teacher %", ".2f"),
           ("scratch", "scratch %", ".2f"),
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
             "teacher": 100 * by_seed[TEACHER].mean(), "seeds": int(by_seed[TEACHER].count())}]
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
        method = name.split("@")[0]
        rows.append({"model": f"{label}: {method}", "student": label, "method": method, **model,
                     "fewer": teacher["params"] / model["params"],
                     "faster": teacher["latency_ms"] / model["latency_ms"],
                     "scratch": 100 * by_seed[scratch][gains.index].mean(),
                     "distilled": 100 * by_seed[name][gains.index].mean(),
                     "gain": 100 * gains.mean(), "seeds": len(gains)})
    return rows


def measure(files: dict[str, Path]) -> dict[str, dict]:
    """Parameters, size and TFLite CPU latency (one image) of saved models, by name."""
    import keras

    import teacher_student.models.precision  # noqa: F401 (our layers, which load_model must find)
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


METHOD_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "h")
AREAS = (300.0, 70.0)  # the first method's marker, the last's: one inside the other at a point


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Accuracy against CPU latency: the teacher a star; each student in a colour of its own,
    from scratch a bar, each method that taught it a hollow marker of its own shape and size
    (methods at one point are nested, none hidden), a line from scratch to the methods."""
    from matplotlib.lines import Line2D

    from teacher_student.outputs.plots import pyplot, save_figure

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8.5, 5))
    students = table[table["model"] != TEACHER]
    methods = list(dict.fromkeys(students.get("method", [])))
    shapes = {m: METHOD_MARKERS[i % len(METHOD_MARKERS)] for i, m in enumerate(methods)}
    large, small = AREAS
    areas = {m: large - (large - small) * i / max(len(methods) - 1, 1)
             for i, m in enumerate(methods)}
    colors = {name: f"C{i}" for i, name in enumerate(dict.fromkeys(students.get("student", [])))}
    handles, labels = [], []
    for _, row in table[table["model"] == TEACHER].iterrows():
        axis.scatter(row["latency_ms"], row["teacher"], marker="*", s=300, color="black")
        handles.append(Line2D([], [], marker="*", markersize=14, color="black", linestyle="none"))
        labels.append(f"teacher ({row['params']:,} params)")
    for student, color in colors.items():
        rows = students[students["student"] == student]
        first = rows.iloc[0]
        accuracies = [first["scratch"], *rows["distilled"]]
        axis.plot([first["latency_ms"]] * 2, [min(accuracies), max(accuracies)], color=color,
                  linewidth=1)
        axis.scatter(first["latency_ms"], first["scratch"], marker="_", s=500, color=color,
                     linewidths=2)
        for _, row in rows.iterrows():
            axis.scatter(row["latency_ms"], row["distilled"], marker=shapes[row["method"]],
                         s=areas[row["method"]], facecolors="none", edgecolors=color,
                         linewidths=1.5)
        handles.append(Line2D([], [], color=color, linewidth=6))
        labels.append(f"{student} ({first['params']:,} params)")
    handles.append(Line2D([], [], marker="_", markersize=14, markeredgewidth=2, color="dimgray",
                          linestyle="none"))
    labels.append("from scratch")
    for method in methods:
        handles.append(Line2D([], [], marker=shapes[method], markersize=8, linestyle="none",
                              markerfacecolor="none", markeredgecolor="dimgray"))
        labels.append(f"distilled: {method}")
    axis.set_xscale("log")
    axis.margins(x=0.12, y=0.12)  # the teacher's star and the rings stay inside the axes
    axis.set_xlabel("CPU latency per image, TFLite, 1 thread (ms, log scale)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title("Students from scratch and distilled, against the teacher")
    axis.grid(alpha=0.3)
    axis.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                borderaxespad=0)
    figure.tight_layout()
    try:
        return save_figure(figure, path)
    finally:
        plt.close(figure)
