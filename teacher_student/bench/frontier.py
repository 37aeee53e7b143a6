"""The frontier a user picks a student from: test accuracy (from scratch and distilled) against
CPU latency and size, for every student `bench distill --students` trained, with the teacher.

    python -m teacher_student bench frontier --out runs/bench-distill

reads the runs under `--out` (any machine may have trained them) and measures, on this
machine's CPU, each model's TFLite latency for one image (one thread, accelerators hidden, in a
fresh process; median and interquartile range of many calls) and its size. Writes
`frontier.md`, `frontier.csv` and `frontier.png` (accuracy against latency) in `--out`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from teacher_student import atomic
from teacher_student.bench.distill import RESULT, scratch_of
from teacher_student.errors import UserError
from teacher_student.run_dir import STUDENT_SCRATCH, TEACHER
from teacher_student.tables import markdown_table

LATENCY_CALLS = 300
COLUMNS = [("model", "model", ""), ("params", "params", ","),
           ("fewer", "x fewer params", ".1f"), ("size_kb", "TFLite KB", ".0f"),
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
    teacher = measure(first / TEACHER / f"{TEACHER}.keras")
    rows = [{"model": TEACHER, **teacher, "fewer": 1.0, "faster": 1.0,
             "scratch": 100 * by_seed[TEACHER].mean(), "seeds": int(by_seed[TEACHER].count())}]
    for name in by_seed.columns:
        if scratch_of(name) != name or name.split("@")[0] != "scratch":
            continue  # one row per student: its baseline
        rows += _student_rows(name, by_seed, first, teacher)
    table = pd.DataFrame(rows)
    atomic.write_csv(table, out / "frontier.csv")
    atomic.write_text(out / "frontier.md", markdown_table(rows, COLUMNS) + "\n")
    plot(table, out / "frontier.png")
    return table


def _student_rows(scratch: str, by_seed: pd.DataFrame, first: Path, teacher: dict) -> list:
    """The student of baseline `scratch`: one row per method taught to it."""
    model = measure(first / scratch / f"{STUDENT_SCRATCH}.keras")
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


def measure(model_file: Path) -> dict:
    """Parameters, TFLite size and CPU latency of a saved model, in a fresh process that sees
    no accelerator (a GPU would otherwise run it)."""
    if not model_file.exists():
        raise UserError(f"{model_file} does not exist: is that run finished?")
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu",
                   "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "teacher_student.bench.frontier",
                           str(model_file)], capture_output=True, text=True, env=environment,
                          check=False)
    if done.returncode:
        raise UserError(f"measuring {model_file} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure_here(model_file: Path) -> dict:
    import keras

    from teacher_student.bench.cpu import _tflite_content, _tflite_runner
    from teacher_student.timing import time_calls

    model = keras.saving.load_model(model_file, safe_mode=True)
    content = _tflite_content(model)
    run = _tflite_runner(content, 1, 1)
    image = np.random.default_rng(0).integers(0, 256, (1, *model.input_shape[1:]),
                                              dtype=np.uint8)
    seconds = np.array(time_calls(lambda: run(image), LATENCY_CALLS, warmup=20)) * 1000
    low, median, high = np.percentile(seconds, [25, 50, 75])
    return {"params": int(model.count_params()), "size_kb": len(content) / 1024,
            "latency_ms": float(median), "iqr_ms": float(high - low)}


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Accuracy against CPU latency: each student from scratch (hollow) to distilled (filled),
    the teacher (trained from scratch) as a star; the marker's area follows the parameters."""
    from teacher_student.outputs.plots import _pyplot, _save_figure

    plt = _pyplot()
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
        return _save_figure(figure, path)
    finally:
        plt.close(figure)


if __name__ == "__main__":  # the measuring child process
    print(json.dumps(_measure_here(Path(sys.argv[1]))))
