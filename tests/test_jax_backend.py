"""The whole job on JAX with TensorFlow not installed (the GPU machine has none): train-teacher,
distill (feature distillation with cutmix, in mixed_float16; the teacher with erasing, mixup,
label smoothing and weight averaging) and evaluate run end to end in a subprocess that cannot
import TensorFlow, and what truly needs TensorFlow says so in one line; and both jobs on two
devices, as on two GPUs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import write_image_folder

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]
# Runs the command line with every import of TensorFlow failing, as where it is not installed.
WITHOUT_TENSORFLOW = textwrap.dedent("""
    import importlib.abc, runpy, sys

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("tensorflow", "tensorboard"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, NotInstalled())
    sys.argv = ["teacher_student", *sys.argv[1:]]
    runpy.run_module("teacher_student", run_name="__main__", alter_sys=True)
""")
SETTINGS = ["--config", "tiny", "--precision", "mixed_float16", "--set", "data.batch_size=4",
            "--set", "phases.1.epochs=0", "--set", "phases.2.epochs=0",
            "--set", "distill.method=feature", "--set", "distill.mix=cutmix",
            # The teacher's recipe, weight averaging's swaps included.
            "--set", "phases.0.erasing=0.5", "--set", "phases.0.mix=mixup",
            "--set", "phases.0.label_smoothing=0.1", "--set", "phases.0.ema_momentum=0.9",
            "--set", "distill.ema_momentum=0.9"]


def without_tensorflow(*arguments: str, devices: int = 1) -> subprocess.CompletedProcess:
    """The command line on JAX's CPU, split into `devices` devices (XLA's host platform)."""
    # Every compiled program goes to the run's compilation cache, however fast it compiled.
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    if devices > 1:
        env["XLA_FLAGS"] = " ".join(filter(None, [
            env.get("XLA_FLAGS"), f"--xla_force_host_platform_device_count={devices}"]))
    return subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, *arguments], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_the_jobs_run_on_jax_without_tensorflow(tmp_path):
    images = write_image_folder(tmp_path / "images")
    run_dir = tmp_path / "run"
    # train-teacher's preflight checks the distillation and baseline steps too.
    compiled_steps = {}
    for job, checks in (("train-teacher", []), ("distill", ["--no-preflight"]),
                        ("evaluate", [])):
        done = without_tensorflow(job, "--data", str(images), "--run-dir", str(run_dir),
                                  *SETTINGS, *checks)
        assert done.returncode == 0, (job, done.stdout[-2000:], done.stderr[-3000:])
        compiled_steps[job] = sorted(path.name for path in
                                     (run_dir / "compile_cache").glob("jit_*_step-*"))
    # The preflight compiled every step of the plan (the teacher's phase, the distillation, the
    # baseline: training, validation, prediction), and the distill job, a new process, found
    # them all in the run's compilation cache.
    assert sum(name.startswith("jit_train_step") for name in compiled_steps["train-teacher"]) == 3
    assert compiled_steps["distill"] == compiled_steps["train-teacher"]
    assert "method: feature" in (run_dir / "config.yaml").read_text()
    comparison = pd.read_csv(run_dir / "reports" / "comparison.csv")
    assert list(comparison["model"]) == ["teacher", "student_scratch", "student_distilled",
                                        "always the majority class"]
    assert (comparison["accuracy"] >= 0).all()
    history = pd.read_csv(run_dir / "student_distilled" / "history.csv")
    assert {"distillation_loss", "label_loss", "train_images_per_s"} <= set(history.columns)

    exported = without_tensorflow("export", "--run-dir", str(run_dir))
    assert exported.returncode == 2
    assert exported.stderr.strip().splitlines()[-1] == (
        "error: export (SavedModel and TFLite files) needs TensorFlow, which is not installed "
        "here: pip install tensorflow (tensorflow-cpu on a machine without a GPU)")


def test_two_devices_train_fold_teachers_and_the_student_and_answer_every_image(tmp_path):
    """What two GPUs run (keras.distribution.DataParallel), on two CPU devices: each job splits
    every batch over both, the batch size in the config being each device's."""
    images = write_image_folder(tmp_path / "images")
    run_dir = tmp_path / "run"
    settings = ["--config", "tiny", "--set", "data.batch_size=2", "--set", "data.folds=2",
                "--set", "phases.1.epochs=0", "--set", "phases.2.epochs=0",
                "--set", "distill.baseline=false", "--set", "measure_latency=false",
                "--no-preflight"]
    for job in ("train-teacher", "distill"):
        done = without_tensorflow(job, "--data", str(images), "--run-dir", str(run_dir),
                                  *settings, devices=2)
        assert done.returncode == 0, (job, done.stdout[-2000:], done.stderr[-3000:])
        assert "distribution jax DataParallel: 2 replicas, global batch 4" in done.stdout
    for step in ("teacher/fold1/phase1_warmup", "teacher/fold2/phase1_warmup",
                 "student_distilled"):
        history = pd.read_csv(run_dir / step / "history.csv")
        assert len(history) == 1 and np.isfinite(history["loss"]).all(), step
    # Every image answered, as on one device: the splits do not divide into batches of 4, and
    # their ragged last batches were filled up, not left out.
    split = pd.read_csv(run_dir / "split.csv")
    learnt = split[split["split"] != "test"]
    out_of_fold = pd.read_csv(run_dir / "reports" / "out_of_fold.csv")
    assert sorted(out_of_fold["path"]) == sorted(learnt["path"]) and len(learnt) % 4
    answered = pd.read_csv(run_dir / "reports" / "test_answers.csv")
    tested = split[split["split"] == "test"]
    assert answered["label"].tolist() == tested["label"].tolist() and len(tested) % 4
    comparison = pd.read_csv(run_dir / "reports" / "comparison.csv").set_index("model")
    assert {"teacher_fold1", "teacher", "student_distilled"} <= set(comparison.index)
    assert comparison.loc["always the majority class", "accuracy"] == pytest.approx(
        tested["label"].value_counts().max() / len(tested))
