"""The `tiny` teacher's XLA training step on this CPU at each of XLA's backend optimisation
levels (LLVM's code generation): the first step's seconds (compiling), a later step's
milliseconds, and whether the weights stay finite. Each level runs in a fresh process, since
XLA reads `XLA_FLAGS` once.

    python scripts/xla_cpu_levels.py [--levels 0 1 2 3] [--steps 10]

Why it exists: the test suite compiles hundreds of small programs and runs each for a few
steps, so it sets a low level (tests/conftest.py); level 0 turned this teacher's float32
gradients to NaN on TensorFlow's CPU backend, level 1 computes as the default does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(steps: int) -> dict:
    """In this process: the tiny teacher (tests/helpers.py's), SGD, one batch of 8 images."""
    import keras
    import numpy as np

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import TINY_TEACHER

    from teacher_student.models.precision import PrecisionPolicy
    from teacher_student.models.teacher import build_teacher

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 8)
    keras.utils.set_random_seed(0)
    model = build_teacher(TINY_TEACHER, PrecisionPolicy("float32"))
    model.compile(optimizer="sgd", jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.perf_counter()
    model.train_on_batch(images, labels)
    first = time.perf_counter() - start
    start = time.perf_counter()
    losses = [float(model.train_on_batch(images, labels)) for _ in range(steps)]
    step_ms = 1000 * (time.perf_counter() - start) / steps
    finite = all(bool(np.isfinite(w.numpy()).all()) for w in model.weights)
    return {"first_step_s": first, "step_ms": step_ms, "last_loss": losses[-1],
            "weights_finite": finite}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.steps)))
        return
    print("| level | first step (compile) | step | last loss | weights finite |")
    print("| --: | --: | --: | --: | :-- |")
    for level in args.levels:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
               "XLA_FLAGS": f"--xla_backend_optimization_level={level}",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                            os.environ.get("PYTHONPATH")]))}
        out = subprocess.run([sys.executable, __file__, "--child", str(level), "--steps",
                              str(args.steps)], env=env, capture_output=True, text=True,
                             check=True).stdout
        found = json.loads(out.strip().splitlines()[-1])
        print(f"| {level} | {found['first_step_s']:.1f} s | {found['step_ms']:.0f} ms | "
              f"{found['last_loss']:.4f} | {'yes' if found['weights_finite'] else 'no'} |")


if __name__ == "__main__":
    main()
