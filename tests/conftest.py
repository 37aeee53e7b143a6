"""Fixtures shared by every test: each precision policy, and a batch shaped like the pipeline's.
Constants and helpers that tests import by name are in helpers.py.

A module's costly fixture (a trained run, an executed notebook) is module-scoped: the suite runs
with `--dist loadfile` (Makefile), so a module's tests run on one worker, one after another, and
the fixture is built once (`loadgroup` with `xdist_group` marks split the groups over both
workers in pytest-xdist 3.8, building each fixture twice)."""

from __future__ import annotations

import os

# Set before anything compiles. The suite compiles hundreds of small XLA programs on two cores
# and runs each for a few steps: LLVM's code generation at level 0 takes about a tenth off the
# suite (BENCHMARKS.md, "The test suite's time") and leaves XLA's own passes, the dtypes and the
# programs as they are. Subprocesses of the tests inherit it.
os.environ["XLA_FLAGS"] = " ".join(filter(None, [
    os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from teacher_student.config import POLICIES  # noqa: E402
from teacher_student.models.precision import PrecisionPolicy  # noqa: E402


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state: a model's initial weights must not depend
    on which tests ran before it in the same worker (pytest-xdist changes that order)."""
    keras.utils.set_random_seed(0)


@pytest.fixture(params=POLICIES)
def policy(request) -> PrecisionPolicy:
    return PrecisionPolicy(request.param)


@pytest.fixture
def batch():
    """Two uint8 images and their labels, the shape of what the pipeline feeds."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    return images, np.array([0, 2], dtype="int32")


# A MobileNet student's compiled step costs 40-100 s on two cores. `make test` checks it in
# mixed_float16, the policy that breaks a stock network; the other policies run in `make
# test-all` (marked slow here, before `-m "not slow"` selects).
SLOW_IDS = ("[float32-student_mobilenet]", "[mixed_bfloat16-student_mobilenet]")


# `make test` compiles every model in every policy (test_compiled_step_with_everything_trainable).
# The steps built on those models (a frozen trunk, each distillation method, unlabeled images, an
# ensemble of teachers) it compiles in mixed_float16, the policy with loss scaling and the one
# that fails when a dtype is left to chance; in float32 and mixed_bfloat16 they run in `make
# test-all` (200 s of the suite's CPU time on two cores).
STEPS_MODULE = "tests/training/test_training_steps.py::"
EVERY_POLICY = "test_compiled_step_with_everything_trainable["


def _slow(nodeid: str) -> bool:
    if nodeid.endswith(SLOW_IDS):
        return True
    test = nodeid.removeprefix(STEPS_MODULE)
    return (nodeid.startswith(STEPS_MODULE) and not test.startswith(EVERY_POLICY)
            and ("[float32" in test or "[mixed_bfloat16" in test))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if _slow(item.nodeid):
            item.add_marker(pytest.mark.slow)
