"""What the benchmarks share: the environment they ran in (date, versions, machine, command)
and ratios between figures. Imports only the standard library, keras and numpy, so both the
GPU benchmark (JAX, no TensorFlow) and the CPU one can use it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from teacher_student.hardware import device_name


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
        "device": device_name() if detect_device else None,
        "command": command_line(),
        # Other work on the machine slows every figure; this says how busy it was at the start.
        "load_average": round(os.getloadavg()[0], 2),
    }


def command_line() -> str:
    """This process's command, as typed: `python -m teacher_student ...` for the package."""
    program = sys.argv[0]
    if Path(program).name == "__main__.py":
        program = f"-m {Path(program).parent.name}"
    return " ".join(["python", program, *sys.argv[1:]])


def format_environment(env: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    return (f"{env['date']}; {env['device']}; backend {env['backend']}; {versions}; "
            f"load average {env['load_average']} at the start\n"
            f"command: {env['command']}")


def run_logged(command: list[str], log: Path, gpu: int | None = None) -> int:
    """`command` in a process of its own, its output in `log`, on GPU `gpu` when given. Processes
    sharing a GPU allocate its memory as they need it, not most of it up front. Its exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                   "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    if gpu is not None:
        environment["CUDA_VISIBLE_DEVICES"] = str(gpu)
    with open(log, "w") as stream:
        return subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT,
                              env=environment, check=False).returncode


def gpu_count() -> int:
    """The GPUs `nvidia-smi` lists; 0 without one."""
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                check=False).stdout
    except OSError:
        return 0
    return sum(line.startswith("GPU ") for line in listed.splitlines())
