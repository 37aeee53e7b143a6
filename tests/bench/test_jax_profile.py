"""scripts/jax_profile.py's arithmetic: the time the GPU was busy is the union of the kernels'
intervals (overlapping kernels on two streams count once), and the kernel names an H100's
profile of our teacher step showed fall into their kinds."""

from __future__ import annotations

from helpers import load_script


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
