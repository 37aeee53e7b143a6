"""What machine this is, on whichever Keras backend is active: its GPU, its name, its memory.

Imports only keras and the standard library at module level; each backend's own package is
imported inside the function that needs it.
"""

from __future__ import annotations

import os
import platform

import keras

from teacher_student.words import counted


def gpu_compute_capability() -> tuple[int, int] | None:
    """The first GPU's compute capability, or None without a GPU."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                return tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
        elif backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            if gpus:
                major, _, minor = str(gpus[0].compute_capability).partition(".")
                return int(major), int(minor or 0)
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_capability(0)
    except (ImportError, RuntimeError):
        return None
    return None


def accelerator_name() -> str | None:
    """The first accelerator's name, or None on a CPU."""
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


def cpu_name() -> str:
    return f"CPU, {counted(os.cpu_count() or 1, 'core')} ({platform.machine()})"


def cpu_model() -> str:
    """The CPU's model name and the cores this process may use: `Intel(R) Xeon(R) ..., 2
    cores`."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            name = next((line.split(":", 1)[1].strip() for line in info
                         if line.startswith("model name")), name)
    except OSError:  # not Linux
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {counted(cores, 'core')}"


def device_name() -> str:
    return accelerator_name() or cpu_name()


def peak_memory_bytes() -> int | None:
    """Peak accelerator memory of this process so far, or None on a CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use")
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return tf.config.experimental.get_memory_info("GPU:0")["peak"]
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated()
    return None


def require_tensorflow(purpose: str):
    """TensorFlow, or a UserError saying what needs it and how to get it."""
    from teacher_student.errors import UserError

    try:
        import tensorflow as tf
    except ImportError as err:
        raise UserError(f"{purpose} needs TensorFlow, which is not installed here: "
                        "pip install tensorflow (tensorflow-cpu on a machine without a GPU)"
                        ) from err
    return tf
