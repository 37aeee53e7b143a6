"""scripts/jax_profile.py's arithmetic: the time the GPU was busy is the union of the kernels'
intervals (overlapping kernels on two streams count once), and the kernel names an H100's
profile of our teacher step showed fall into their kinds; and its profile of the trainer's fit
over two devices runs (two JAX CPU devices here, which have no GPU kernels to list)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


def _profile_script():
    return load_script("jax_profile")


def test_busy_time_counts_overlapping_kernels_once():
    script = _profile_script()
    # (name, start ns, duration ns): b overlaps a, c lies inside b, d starts after a gap.
    kernels = [("d", 500, 100), ("a", 0, 100), ("b", 50, 150), ("c", 60, 10)]
    assert script.busy_ns(kernels) == 200 + 100
    assert script.busy_ns([]) == 0


def test_kernel_names_fall_into_their_kinds():
    script = _profile_script()
    assert script.kind_of("sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc") == (
        "convolution or matmul")
    assert script.kind_of("void cudnn::cnn::dgrad2d_grouped_direct_kernel<__half>") == (
        "convolution or matmul")
    assert script.kind_of("input_reduce_select_fusion_7") == "reduction fusion"
    assert script.kind_of("loop_convert_fusion_2") == "other fusion"  # a cast, not a conv
    assert script.kind_of("memcpy32_post") == "copy or set"
    assert script.kind_of("Memset 3") == "copy or set"
    assert script.kind_of("void nhwcAddPaddingKernel<__half>") == "channel padding"
    assert script.kind_of("nvjet_sm90_hsh_64x512_64x2_1x2_h_ssched_bx_coopB_bias_TNT") == (
        "convolution or matmul")
    # NCCL's all-reduce of the replicas' gradients, before "gemm"-like words could claim it
    assert script.kind_of("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage)") \
        == "collective"


def test_the_distillation_fit_profiles_data_parallel_over_two_devices():
    """What the two-GPU call runs, on two CPU devices: the Distiller's fit under DataParallel,
    timed, its images counted over both devices."""
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": " ".join(filter(None, [os.environ.get("XLA_FLAGS"),
                                               "--xla_force_host_platform_device_count=2"]))}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "jax_profile.py"), "--model", "distill",
         "--devices", "2", "--image-size", "32", "--batch-size", "2", "--steps", "2"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("distill")]
    assert "batch 2 a device, the trainer's fit on 2 cpu device(s), 2 steps traced" in line
    assert float(re.search(r"(\d+) img/s", line).group(1)) > 0
    assert "no GPU kernels in the trace" in done.stdout
