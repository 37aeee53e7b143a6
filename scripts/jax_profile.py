"""Where one of our training steps spends its GPU time: the step that `bench train` times (the
default teacher, student or distillation, 224 px, 100 classes, a stateless jitted step), or with
`--fit` the trainer's `fit` (what a job runs; with `--devices N` data parallel over N GPUs, as
`bench train --devices N`), traced with `jax.profiler` over a window of steps, each GPU's
kernels summed by name and by kind.

    KERAS_BACKEND=jax python3 scripts/jax_profile.py --model teacher --batch-size 64 [--rows 25]
    KERAS_BACKEND=jax python3 scripts/jax_profile.py --model distill --fit --devices 2

Prints per step: the wall time and images/s, and for each GPU the kernels' summed time, the
time it was busy (the union of the kernels' intervals; below the wall time, the GPU waited on
the host or on the other GPUs), the kernel count, the time by kind (convolutions and matmuls,
fusions, collectives, copies) and the costliest kernels. Where two GPUs scale short of 2x, the
idle time and the collectives say why. The PyTorch peer's own profile is `scripts/torch_peer.py
--profile ROWS`.
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
    if "nccl" in name or "all-reduce" in name or "all_reduce" in name:  # the replicas' sums
        return "collective"
    if "fusion" in name:  # XLA's own kernels, named by their ops ("loop_convert_fusion")
        return "reduction fusion" if "reduce" in name else "other fusion"
    if "memcpy" in name or "memset" in name:
        return "copy or set"
    if "padding" in name:  # cuDNN's channels padded for the tensor cores (nhwcAddPaddingKernel)
        return "channel padding"
    if any(word in name for word in CONVOLUTION_WORDS):
        return "convolution or matmul"
    return "other"


def device_kernels(trace_dir: str) -> dict[str, list[tuple[str, int, int]]]:
    """Each GPU's (name, start ns, duration ns) of every event on its stream lines."""
    from jax.profiler import ProfileData

    [path] = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    profile = ProfileData.from_file(path)
    kernels = {}
    for plane in profile.planes:
        if not plane.name.startswith("/device:GPU"):
            continue
        for line in plane.lines:
            if line.name.startswith("Stream"):
                kernels.setdefault(plane.name, []).extend(
                    (event.name, event.start_ns, event.duration_ns) for event in line.events)
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


def report(kernels: list, steps: int, rows: int) -> None:
    """One GPU's kernels over `steps` steps: their time, the busy time, by kind and by name."""
    per_step = 1e-6 / steps  # ns over the window to ms a step
    total = sum(d for _, _, d in kernels)
    print(f"per step: kernels {total * per_step:.2f} ms, GPU busy "
          f"{busy_ns(kernels) * per_step:.2f} ms, {len(kernels) / steps:.0f} kernels")
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


def stateless_step(model: str, spec, policy):
    """`bench train`'s jitted step, fed from the device: a function running `count` steps."""
    import jax

    from teacher_student.bench import jax_steps
    from teacher_student.bench.gpu import _host_batches, shaped_configs
    from teacher_student.models.student import build_student
    from teacher_student.models.teacher import build_teacher

    config, teacher_config, student_config = shaped_configs(spec)
    if model == "distill":
        step, state = jax_steps.distill_step(build_teacher(teacher_config, policy),
                                             build_student(student_config, policy), policy,
                                             config.distill, spec.steps)
    elif model == "teacher":
        step, state = jax_steps.classifier_step(build_teacher(teacher_config, policy), policy)
    else:
        step, state = jax_steps.classifier_step(build_student(student_config, policy), policy)
    batches = jax.device_put(_host_batches(spec))
    compiled = jax.jit(step, donate_argnums=0).lower(state, *batches[0]).compile()

    def run(count: int) -> None:
        nonlocal state
        for i in range(count):
            out, state = compiled(state, *batches[i % len(batches)])
        jax.block_until_ready(out)

    return run


def trainer_fit(model: str, spec, policy):
    """The trainer's `fit` of the `Trainee` or `Distiller` on `Batches`, data parallel over
    `spec.devices`: a function running one epoch of `count` steps."""
    import keras

    from teacher_student.bench import gpu
    from teacher_student.training.trainee import compile_trainee

    if spec.devices > 1:
        gpu.data_parallel(spec.devices)
    trainee = gpu.build_trainee(model, spec, policy)
    compile_trainee(trainee, keras.optimizers.Adam(), policy, jit_compile=True)
    batches = {}

    def run(count: int) -> None:
        if count not in batches:  # built outside the traced window
            batches[count] = gpu.trainer_batches(dataclasses.replace(spec, steps=count,
                                                                     windows=1))
        trainee.fit(batches[count], epochs=1, verbose=0)

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("teacher", "student", "distill"), default="teacher")
    parser.add_argument("--precision", default="mixed_float16")
    parser.add_argument("--batch-size", type=int, default=64, help="each device's")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=20, help="steps traced")
    parser.add_argument("--rows", type=int, default=25, help="costliest kernels shown")
    parser.add_argument("--fit", action="store_true",
                        help="the trainer's fit, not the stateless step")
    parser.add_argument("--devices", type=int, default=1,
                        help="the trainer's fit data parallel over this many devices")
    args = parser.parse_args(argv)

    import jax

    from teacher_student.bench.gpu import TrainBench
    from teacher_student.models.precision import PrecisionPolicy

    spec = TrainBench(batch_size=args.batch_size, image_size=args.image_size,
                      devices=args.devices)
    policy = PrecisionPolicy(args.precision)
    fit = args.fit or args.devices > 1
    run = (trainer_fit if fit else stateless_step)(args.model, spec, policy)
    run(args.steps)  # compiles; the first launches and autotuning are not traced
    run(args.steps)
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            start = time.perf_counter()
            run(args.steps)
            wall_s = time.perf_counter() - start
        kernels = device_kernels(trace_dir)
    images = args.steps * args.batch_size * args.devices
    what = "the trainer's fit" if fit else "the stateless step"
    print(f"{args.model}, {args.precision}, batch {args.batch_size} a device, {what} on "
          f"{args.devices} {jax.devices()[0].device_kind} device(s), {args.steps} steps traced: "
          f"wall {1000 * wall_s / args.steps:.2f} ms a step, {images / wall_s:.0f} img/s")
    if not kernels:
        print("no GPU kernels in the trace (no GPU here?)")
    for device, its_kernels in sorted(kernels.items()):
        print(f"\n{device}")
        report(its_kernels, args.steps, args.rows)


if __name__ == "__main__":
    main()
