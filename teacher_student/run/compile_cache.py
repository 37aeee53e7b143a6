"""Each training step compiled once per run, not once per process: on JAX, XLA's compiled
programs are kept in the run directory (`compile_cache/`), so the run after a preflight, a
resumed run and a rerun load the steps the first process compiled instead of compiling them
again. In the run directory, because that is what a Kaggle session's output carries to the
next session.

`JAX_COMPILATION_CACHE_DIR`, when set, wins (`bench distill` shares one cache between its
runs that way). TensorFlow keeps no compiled XLA program across processes: nothing to do there.
"""

from __future__ import annotations

import os

import keras

from teacher_student.run.directory import RunDir

ENVIRONMENT = "JAX_COMPILATION_CACHE_DIR"


def use_compile_cache(run_dir: RunDir) -> str | None:
    """Points JAX's persistent compilation cache at the run's folder; the folder in use, or
    None on another backend. Call it before the first step compiles."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    folder = os.environ.get(ENVIRONMENT) or str(run_dir.compile_cache)
    jax.config.update("jax_compilation_cache_dir", folder)
    return folder
