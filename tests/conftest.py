"""Shared fixtures: tiny models (32x32, widths of 8) built under each precision policy."""

from __future__ import annotations

import numpy as np
import pytest

from teacher_student.config import StudentConfig, TeacherConfig
from teacher_student.precision import POLICIES, PrecisionPolicy

TINY_TEACHER = TeacherConfig(input_shape=(32, 32, 3), num_classes=3, widths=(8, 16, 24),
                             fusion_width=8, cbam_reduction=2)
TINY_STUDENT = StudentConfig(input_shape=(32, 32, 3), num_classes=3, widths=(8, 16))


@pytest.fixture(params=POLICIES)
def policy(request) -> PrecisionPolicy:
    return PrecisionPolicy(request.param)


@pytest.fixture
def batch():
    """Two uint8 images and their labels, the shape of what the pipeline feeds."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    return images, np.array([0, 2], dtype="int32")
