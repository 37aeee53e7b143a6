"""Fixtures shared by every test: each precision policy, and a batch shaped like the pipeline's.
Constants and helpers that tests import by name are in helpers.py.

A module's costly fixture (a trained run, an executed notebook) is module-scoped: the suite runs
with `--dist loadfile` (Makefile), so a module's tests run on one worker, one after another, and
the fixture is built once (`loadgroup` with `xdist_group` marks split the groups over both
workers in pytest-xdist 3.8, building each fixture twice)."""

from __future__ import annotations

import os

# Set before anything compiles. The suite compiles hundreds of small XLA programs on two cores
# and runs each for a few steps: LLVM's code generation at level 1 spends less on each than the
# default and computes the same. Not level 0: on TensorFlow's CPU backend it turned the float32
# teacher's gradients to NaN (BENCHMARKS.md, "The test suite's time"). Subprocesses of the tests
# inherit it.
os.environ["XLA_FLAGS"] = " ".join(filter(None, [
    os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=1"]))

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


# pytest-xdist hands whole files to its two workers in the order of the collection (Makefile:
# `--no-loadscope-reorder`, which would order them by their number of tests), a worker taking
# the next file when it has fewer than two: the longest files go first, so that neither worker
# is left alone with one of them at the end. Their seconds on two cores, 2026-12-06 (the suite's
# junit times; BENCHMARKS.md, "The test suite's time"); the other files follow in the
# collection's order.
LONGEST_FILES = (
    "tests/training/test_training_steps.py",  # 179 s
    "tests/test_distill_options.py",  # 166
    "tests/test_jax_backend.py",  # 162
    "tests/test_notebook.py",  # 146
    "tests/bench/test_bench.py",  # 145
    "tests/training/test_interruptions.py",  # 136
    "tests/test_user_path.py",  # 105
    "tests/training/test_preflight.py",  # 94
    "tests/training/test_distribute.py",  # 84
    "tests/training/test_sessions.py",  # 77
    "tests/test_kept_run.py",  # 66
    "tests/test_folds.py",  # 65
    "tests/test_jobs.py",  # 43
    "tests/outputs/test_export.py",  # 41
    "tests/models/test_models.py",  # 33
    "tests/training/test_distiller.py",  # 31
    "tests/test_self_training.py",  # 30
)


def _longest_first(item) -> int:
    path = item.nodeid.partition("::")[0]
    return LONGEST_FILES.index(path) if path in LONGEST_FILES else len(LONGEST_FILES)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if _slow(item.nodeid):
            item.add_marker(pytest.mark.slow)
    items.sort(key=_longest_first)  # stable: each file's tests keep their order
