"""What the benchmarks share: timed windows, the environment they ran in, tables and JSON.

The benchmarks themselves are `bench_gpu` (training steps on an accelerator; keras and numpy
only, so it runs on the JAX-only GPU machine) and `bench_cpu` (input pipeline, inference
latency, XLA on and off; TensorFlow). This module imports only the standard library, keras and
numpy, so both can use it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np


def time_windows(window: Callable[[], object], windows: int) -> list[float]:
    """Seconds taken by each of `windows` calls of `window`, which must wait for its own work."""
    durations = []
    for _ in range(windows):
        start = time.perf_counter()
        window()
        durations.append(time.perf_counter() - start)
    return durations


def rate(items: int, durations: Sequence[float]) -> float:
    """Items per second over the median duration: robust to one slow window."""
    return items / float(np.median(durations))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return numerator / denominator


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(detect_device: bool = True) -> dict:
    """Date, versions and machine, to go with every table. `detect_device=False` leaves the
    accelerator untouched (JAX would claim most of its memory in this process)."""
    backend = keras.backend.backend()
    versions = {"python": platform.python_version(), "keras": keras.__version__,
                "numpy": np.__version__}
    for name in {"jax": ["jax", "jaxlib"], "tensorflow": ["tensorflow", "tensorflow-cpu"],
                 "torch": ["torch"]}.get(backend, []):
        if package_version(name):
            versions[name] = package_version(name)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "backend": backend,
        "versions": versions,
        "device": (accelerator_name() or cpu_name()) if detect_device else None,
        "command": command_line(),
        # Other work on the machine slows every figure; this says how busy it was at the start.
        "load_average": round(os.getloadavg()[0], 2),
    }


def accelerator_name() -> str | None:
    """The first accelerator's name on the active backend, or None on a CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return None if device.platform == "cpu" else device.device_kind
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name") if gpus \
            else None
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return None


def command_line() -> str:
    """This process's command, as typed: `python -m teacher_student ...` for the package."""
    program = sys.argv[0]
    if Path(program).name == "__main__.py":
        program = f"-m {Path(program).parent.name}"
    return " ".join(["python", program, *sys.argv[1:]])


def cpu_name() -> str:
    return f"CPU, {os.cpu_count()} cores ({platform.machine()})"


def markdown_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """A Markdown table; `columns` are (key, header, format spec); missing values print as -."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        cells = [format(row[key], spec) if row.get(key) is not None else "-"
                 for key, _, spec in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_environment(env: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    return (f"{env['date']}; {env['device']}; backend {env['backend']}; {versions}; "
            f"load average {env['load_average']} at the start\n"
            f"command: {env['command']}")


def write_json(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
