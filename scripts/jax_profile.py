"""Where one of our training steps spends its GPU time: the step that `bench train` times (the
default teacher or student, 224 px, 100 classes, a stateless jitted step) traced with
`jax.profiler` over a window of steps, its device kernels summed by name and by kind.

    KERAS_BACKEND=jax python3 scripts/jax_profile.py --model teacher --batch-size 64 [--rows 25]

Prints per step: the wall time, the kernels' summed time, the time the GPU was busy (the union
of the kernels' intervals; below the wall time, the GPU waited on the host), the kernel count,
the time by kind (convolutions and matmuls, fusions, copies) and the costliest kernels. The
PyTorch peer's own profile is `scripts/torch_peer.py --profile ROWS`.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Words in the names of cuDNN's and cuBLAS' convolution and matmul kernels ("nvjet": cuBLAS'
# matmuls on Hopper).
CONVOLUTION_WORDS = ("xmma", "gemm", "cudnn", "cutlass", "conv2d", "wgrad", "dgrad", "fprop",
                     "nvjet")


def kind_of(kernel: str) -> str:
    name = kernel.lower()
    if "fusion" in name:  # XLA's own kernels, named by their ops ("loop_convert_fusion")
        return "reduction fusion" if "reduce" in name else "other fusion"
    if "memcpy" in name or "memset" in name:
        return "copy or set"
    if "padding" in name:  # cuDNN's channels padded for the tensor cores (nhwcAddPaddingKernel)
        return "channel padding"
    if any(word in name for word in CONVOLUTION_WORDS):
        return "convolution or matmul"
    return "other"


def device_kernels(trace_dir: str) -> list[tuple[str, int, int]]:
    """(name, start ns, duration ns) of every event on the GPU's stream lines of the trace."""
    from jax.profiler import ProfileData

    [path] = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    profile = ProfileData.from_file(path)
    kernels = []
    for plane in profile.planes:
        if not plane.name.startswith("/device:GPU"):
            continue
        for line in plane.lines:
            if line.name.startswith("Stream"):
                kernels += [(event.name, event.start_ns, event.duration_ns)
                            for event in line.events]
    return kernels


def busy_ns(kernels: list[tuple[str, int, int]]) -> int:
    """The union of the kernels' intervals: time the GPU ran at least one kernel."""
    total, end = 0, None
    for _, start, duration in sorted(kernels, key=lambda k: k[1]):
        stop = start + duration
        if end is None or start >= end:
            total += duration
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def report(kernels: list, steps: int, wall_s: float, rows: int) -> None:
    per_step = 1e-6 / steps  # ns over the window to ms a step
    total = sum(d for _, _, d in kernels)
    print(f"per step: wall {1000 * wall_s / steps:.2f} ms, kernels {total * per_step:.2f} ms, "
          f"GPU busy {busy_ns(kernels) * per_step:.2f} ms, {len(kernels) / steps:.0f} kernels")
    by_kind, by_name = collections.Counter(), collections.defaultdict(list)
    for name, _, duration in kernels:
        by_kind[kind_of(name)] += duration
        by_name[name].append(duration)
    for kind, ns in by_kind.most_common():
        print(f"  {kind:<22} {ns * per_step:7.3f} ms  {100 * ns / total:5.1f}%")
    print(f"\n{'ms/step':>8} {'calls/step':>10} {'mean us':>8}  kernel")
    ranked = sorted(by_name.items(), key=lambda item: -sum(item[1]))
    for name, durations in ranked[:rows]:
        print(f"{sum(durations) * per_step:8.3f} {len(durations) / steps:10.1f} "
              f"{np.mean(durations) / 1000:8.1f}  {name[:110]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("teacher", "student"), default="teacher")
    parser.add_argument("--precision", default="mixed_float16")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="steps traced")
    parser.add_argument("--rows", type=int, default=25, help="costliest kernels shown")
    args = parser.parse_args(argv)

    import jax

    from teacher_student import config as config_module
    from teacher_student.bench import jax_steps
    from teacher_student.bench.gpu import TrainBench, _host_batches
    from teacher_student.models.precision import PrecisionPolicy
    from teacher_student.models.student import build_student
    from teacher_student.models.teacher import build_teacher

    spec = TrainBench(batch_size=args.batch_size)
    config = config_module.load(None, [])
    section = config.teacher if args.model == "teacher" else config.student
    model_config = dataclasses.replace(section, input_shape=(spec.image_size,) * 2 + (3,),
                                       num_classes=spec.num_classes)
    policy = PrecisionPolicy(args.precision)
    build = build_teacher if args.model == "teacher" else build_student
    step, state = jax_steps.classifier_step(build(model_config, policy), policy)
    batches = jax.device_put(_host_batches(spec))
    compiled = jax.jit(step, donate_argnums=0).lower(state, *batches[0]).compile()

    def run(count: int):
        nonlocal state
        for i in range(count):
            out, state = compiled(state, *batches[i % len(batches)])
        return jax.block_until_ready(out)

    run(10)  # warm-up: autotuning and the first launches are not traced
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            start = time.perf_counter()
            run(args.steps)
            wall_s = time.perf_counter() - start
        kernels = device_kernels(trace_dir)
    print(f"{args.model}, {args.precision}, batch {args.batch_size}, "
          f"{jax.devices()[0].device_kind}, {args.steps} steps traced")
    if not kernels:
        print("no GPU kernels in the trace (no GPU here?)")
        return
    report(kernels, args.steps, wall_s, args.rows)


if __name__ == "__main__":
    main()
