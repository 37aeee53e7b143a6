"""Benchmarks: training steps on an accelerator (`gpu`, `jax_steps`, `gpu_report`), the input
pipeline, latency and XLA on a CPU (`cpu`), and their command-line options (`commands`).
BENCHMARKS.md has the figures and the commands that made them.

The names below are what `bench train` measures; the command line lists them as its choices
without importing Keras.
"""

from teacher_student.config.schema import POLICIES

# Full float32 matmuls and convolutions (no TF32): what a T4, which has no TF32, runs.
FULL_FLOAT32 = "float32-highest"
PRECISIONS = (POLICIES[0], FULL_FLOAT32, *POLICIES[1:])
MODELS = ("teacher", "student", "distill")
# `bench distill`'s variants (their settings are in bench/distill.py)
DISTILL_VARIANTS = ("scratch", "scratch+cutmix", "kd", "kd+ls", "kd-alpha0.5", "kd-alpha0.9",
                    "dkd", "dkd+ls", "feature", "feature-alpha0.5", "scratch+mixup", "kd+mixup",
                    "fm+mixup", "kd+cutmix", "kd+ls+cutmix")
