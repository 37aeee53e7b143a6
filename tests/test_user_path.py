"""A new user's path, as separate processes on the command line: train on an image folder,
distil, then `make evaluate`, `make export` and `make predict` with nothing but the run
directory, and the CSV of predictions. Every line the processes print is checked: none may
come from TensorFlow's or absl's logs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import write_image_folder

ROOT = Path(__file__).resolve().parent.parent
# One short phase, one distillation epoch; photos are flipped.
SETTINGS = ["phases.0.epochs=1", "phases.1.epochs=0", "phases.2.epochs=0", "distill.epochs=1",
            "data.flip=true", "data.batch_size=16"]
# What TensorFlow, absl and TFLite print when their logs are not set before they load.
LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages|WARNING:(absl|tensorflow):|"
                      r"INFO: Created TensorFlow Lite)|oneDNN|cpu_feature_guard|XLA service|"
                      r"fully_quantize|absl::")


def command_line(*args: str) -> subprocess.CompletedProcess:
    """`python -m teacher_student ARGS` in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "teacher_student", *args], cwd=ROOT,
                          env=_environment(), capture_output=True, text=True, timeout=600)


def make(target: str, **variables: str) -> subprocess.CompletedProcess:
    """`make TARGET VAR=...` with this interpreter for the project's .venv (STAMP empty: no
    install)."""
    settings = [f"{key}={value}" for key, value in variables.items()]
    return subprocess.run(["make", "-s", target, f"PY={sys.executable}", "STAMP=", *settings],
                          cwd=ROOT, env=_environment(), capture_output=True, text=True,
                          timeout=600)


def _environment() -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TF_CPP", "TF_ENABLE"))}  # as a user's shell has them
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    images = write_image_folder(root / "photos", per_class=20, size=24)
    run = root / "runs" / "mine"
    new = write_image_folder(root / "test_images", per_class=2, size=24)
    steps = {}
    for job in ("train-teacher", "distill"):
        steps[job] = command_line(job, "--data", str(images), "--config", "tiny",
                                  "--run-dir", str(run), *[f"--set={s}" for s in SETTINGS])
    steps["evaluate"] = make("evaluate", RUN=str(run))
    steps["export"] = make("export", RUN=str(run))
    steps["predict"] = make("predict", RUN=str(run), INPUT=str(new),
                            OUT=str(root / "submission.csv"), TOP="2", IDS="path", TTA="1")
    return run, root, steps


def test_every_step_of_the_path_succeeds(user):
    _, _, steps = user
    for name, result in steps.items():
        assert result.returncode == 0, f"{name}:\n{result.stdout}\n{result.stderr}"


def test_no_line_comes_from_tensorflow_or_absl(user):
    _, _, steps = user
    for name, result in steps.items():
        for line in (result.stdout + result.stderr).splitlines():
            assert not LOG_LINE.search(line), f"{name}: {line}"


def test_the_run_directory_holds_what_the_readme_lists(user):
    run, _, steps = user
    for name in ("config.yaml", "split.csv", "teacher.keras", "student_distilled.keras",
                 "student_scratch.keras", "student_distilled/history.csv",
                 "student_scratch/history.csv", "export/student_distilled_int8.tflite",
                 "export/student_distilled.onnx", "reports/comparison.md",
                 "reports/student_curves.png", "reports/reliability.png",
                 "reports/accuracy_vs_latency.png", "reports/teacher_top_confusions.md"):
        assert (run / name).exists(), name
    assert "augment light with flips" in steps["train-teacher"].stdout


def test_evaluate_and_export_need_only_the_run_directory(user):
    run, _, steps = user
    table = steps["evaluate"].stdout
    assert f"test split ({run}):" in table
    for model in ("teacher", "student_scratch", "student_distilled"):
        assert re.search(rf"^\| {model} ", table, re.MULTILINE), model
    assert "CPU ms/img" in table and "one thread, on the CPU (" in table
    assert "student_distilled (onnx)" in steps["export"].stdout
    comparison = pd.read_csv(run / "reports" / "comparison.csv").set_index("model")
    assert comparison.loc["student_distilled", "latency_ms"] > 0
    assert comparison.loc["student_distilled", "tflite_latency_ms"] > 0
    assert 0 <= comparison.loc["student_distilled", "teacher_agreement"] <= 1
    assert comparison.loc["student_distilled (onnx)", "agreement"] == 1.0


def test_predict_writes_a_submission_of_every_image(user):
    run, root, steps = user
    assert steps["predict"].stdout == ""  # nothing per row unless asked
    assert f"predicting with {run / 'export' / 'student_distilled.keras'}" in \
        steps["predict"].stderr
    assert "each image averaged with its left-right mirror (TTA)" in steps["predict"].stderr
    assert steps["predict"].stderr.splitlines()[-1] == (
        f"6 predictions written to {root / 'submission.csv'} (id: the path relative to the "
        "input folder)")
    written = pd.read_csv(root / "submission.csv")
    assert list(written.columns) == ["id", "label"]
    assert sorted(written["id"]) == sorted(path.relative_to(root / "test_images").as_posix()
                                           for path in (root / "test_images").rglob("*.png"))
    for labels in written["label"]:  # the two most likely classes
        first, second = labels.split(" ")
        assert first != second and {first, second} <= {"class_0", "class_1", "class_2"}


def test_help_says_what_the_program_does_and_where_to_read_more():
    """A user's first command: what the program does and its main path, not the command-line
    module's own docstring."""
    result = command_line("--help")
    assert result.returncode == 0 and result.stderr == ""
    assert "Train a CNN teacher on a folder of labelled images, distil it into a small, fast " \
           "student" in result.stdout
    for command in ("train-teacher --data IMAGES", "distill", "export", "predict TEST_IMAGES"):
        assert f"\n  {command} " in result.stdout
    assert "README.md" in result.stdout and "COMMAND --help" in result.stdout
    assert "thin call" not in result.stdout and "UserError" not in result.stdout
