"""The Kaggle notebook, executed end to end on the CPU with the embedded dataset and the tiny
config, then executed again as in a new session: a fresh working folder, with RESUME_FROM
pointing at the first session's output attached like a dataset under /kaggle/input.

Both sessions run as on Kaggle in a competition: in a Python where the package is not installed,
with pip offline (PIP_NO_INDEX=1), from the working folder; the notebook's install cell installs
the package, in the first session from the repository folder, in the second from the wheel of
`make wheel`, each attached read-only as a dataset."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from test_install import (
    OFFLINE,
    build_wheel,
    python_without_the_package,
    read_only,
    repository_copy,
)

ROOT = Path(__file__).resolve().parent.parent
TENSORFLOW_LOG_PREFIXES = ("I0000", "W0000", "E0000", "WARNING: All log messages", "WARNING:absl",
                           "WARNING:tensorflow")
NOTEBOOK = ROOT / "notebooks" / "kaggle_t4.ipynb"


# The tiny config on the digits dataset; batches of 32, no XLA and the teacher's first phase
# alone (its later two at 0 epochs, done at once) keep the run short: XLA, the policies and the
# three phases are trained by the other tests.
OVERRIDES = ["data.channels=1", "data.batch_size=32", "phases.1.epochs=0", "phases.2.epochs=0",
             "distill.epochs=1", "jit_compile=false"]


def parameters(work: Path, resume_from: Path | None = None, **changed) -> str:
    values = {"DATASET": "digits", "CONFIG": "tiny", "OVERRIDES": OVERRIDES,
              "PRECISION": "float32", "WORK": str(work), "RUN_NAME": "teacher_student_run",
              "PACKAGE_SOURCE": "/kaggle/input/teacher-student",
              "RESUME_FROM": str(resume_from) if resume_from else None, "SESSION_HOURS": 12,
              "ALLOW_CPU": True, "IMAGENET_WEIGHTS": None, "TEST_DIR": None, **changed}
    return "\n".join(f"{name} = {value!r}" for name, value in values.items())


def kaggle_kernel(folder: Path) -> AsyncKernelManager:
    """A kernel as a Kaggle notebook's in a competition: a Python without the package (its own
    environment in `folder`, where pip installs), pip offline."""
    python = python_without_the_package(folder / "python")
    spec = folder / "kernels" / "kaggle"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Kaggle, no internet", "language": "python", "env": OFFLINE}))
    return AsyncKernelManager(kernel_name="kaggle", kernel_spec_manager=KernelSpecManager(
        kernel_dirs=[str(folder / "kernels")]))


def execute(work: Path, resume_from: Path | None = None, kernel: AsyncKernelManager | None = None,
            **changed) -> tuple[nbformat.NotebookNode, float]:
    """The notebook with its parameters cell replaced, executed in a fresh kernel, and how long
    that took: a `kaggle_kernel` from the working folder, as on Kaggle; without one, a python3
    kernel (the interpreter running the tests) from the repository root."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source = parameters(work, resume_from, **changed)
    start = time.monotonic()
    if kernel is None:
        NotebookClient(notebook, kernel_name="python3", timeout=900,
                       resources={"metadata": {"path": str(ROOT)}}).execute()
    else:
        NotebookClient(notebook, km=kernel, timeout=900,
                       resources={"metadata": {"path": str(work)}}).execute(cleanup_kc=True)
    return notebook, time.monotonic() - start


def stopped_at(work: Path, **changed) -> tuple[str, list[str]]:
    """Executes the notebook until a cell fails: that cell's source, and its error as IPython
    showed it."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source = parameters(work, **changed)
    client = NotebookClient(notebook, kernel_name="python3", timeout=900,
                            resources={"metadata": {"path": str(ROOT)}})
    with pytest.raises(CellExecutionError):
        client.execute()
    (failed,) = [c for c in notebook.cells if c.cell_type == "code" and
                 any(output.output_type == "error" for output in c.outputs)]
    (error,) = [output for output in failed.outputs if output.output_type == "error"]
    return failed.source, error.traceback


def outputs(notebook: nbformat.NotebookNode, mime: str | None = None) -> list:
    """Every output of every code cell, or the `mime` data of those that have it."""
    found = [output for cell in notebook.cells if cell.cell_type == "code"
             for output in cell.outputs]
    if mime is None:
        return found
    return [output.data[mime] for output in found if mime in output.get("data", {})]


def printed(notebook: nbformat.NotebookNode) -> str:
    return "".join(output.text for output in outputs(notebook) if output.output_type == "stream")


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory) -> dict[str, Path]:
    """The datasets the two sessions install from, read-only: the repository folder and a
    folder holding the wheel of `make wheel`; and the folder of each session's Python."""
    repository = repository_copy(tmp_path_factory.mktemp("repository") / "teacher-student")
    wheel = build_wheel(repository)
    datasets = tmp_path_factory.mktemp("kaggle_input")
    shutil.copytree(repository, datasets / "teacher-student",
                    ignore=shutil.ignore_patterns("dist", "*.egg-info"))
    (datasets / "teacher-student-wheel").mkdir()
    shutil.copy(wheel, datasets / "teacher-student-wheel")
    read_only(datasets)
    return {"folder": datasets / "teacher-student", "wheel": datasets / "teacher-student-wheel",
            "first": tmp_path_factory.mktemp("kaggle_python"),
            "second": tmp_path_factory.mktemp("kaggle_python_next")}


@pytest.fixture(scope="module")
def runs(kaggle, tmp_path_factory):
    work = tmp_path_factory.mktemp("kaggle_working")
    first = execute(work, kernel=kaggle_kernel(kaggle["first"]),
                    PACKAGE_SOURCE=str(kaggle["folder"]),
                    TEST_DIR=str(digit_scans(tmp_path_factory.mktemp("kaggle_test"))))
    # The first session's output, attached to the next one as /kaggle/input/<dataset>/...
    attached = tmp_path_factory.mktemp("kaggle_input") / "previous-version-output"
    shutil.copytree(work, attached)
    second = execute(tmp_path_factory.mktemp("kaggle_working_next"), resume_from=attached,
                     kernel=kaggle_kernel(kaggle["second"]), PACKAGE_SOURCE=str(kaggle["wheel"]))
    return work, first, second


def test_notebook_is_generated_from_its_script():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_notebook.py"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_notebook_trains_distils_and_exports_into_the_work_folder(runs):
    work, (notebook, _), _ = runs
    run_dir = work / "teacher_student_run"
    for name in ("teacher.keras", "student_distilled.keras", "student_scratch.keras",
                 "reports/comparison.md", "export/student_distilled_int8.tflite"):
        assert (run_dir / name).exists(), name
    text = printed(notebook)
    assert "dataset: digits" in text
    assert "precision float32 (as configured)" in text


# The teacher's and the students' curves, three confusion matrices, reliability, and accuracy
# against latency.
FIGURES = 7


def test_each_session_installs_the_package_offline_into_its_own_python(runs, kaggle):
    """The first session from the repository folder, the second from the wheel, each into the
    environment of its kernel's Python (nothing from the test environment's editable install)."""
    _, (first, _), (second, _) = runs
    (wheel,) = kaggle["wheel"].iterdir()
    assert (f"installed teacher_student from {kaggle['folder']} into "
            f"{kaggle['first'] / 'python'}") in printed(first)
    assert f"installed teacher_student from {wheel} into {kaggle['second'] / 'python'}" in printed(
        second)


def test_notebook_shows_curves_confusion_matrices_and_the_comparison_inline(runs):
    _, (notebook, _), _ = runs
    assert len(outputs(notebook, "image/png")) == FIGURES
    tables = "".join(outputs(notebook, "text/markdown"))
    first_cells = {line.split("|")[1].strip() for line in tables.splitlines()
                   if line.startswith("|")}
    for model in ("teacher", "student_scratch", "student_distilled",
                  "student_distilled (tflite int8)", "student_distilled (onnx)"):
        assert model in first_cells, model
    assert "Students: distilled against from scratch" in tables
    assert "Most frequent mistakes" in tables and "CPU ms/img" in tables
    assert "one thread, on the CPU (" in tables  # the CPU named under the comparison


def test_notebook_output_holds_no_tensorflow_log_line(runs):
    _, (notebook, _), _ = runs
    for line in printed(notebook).splitlines():
        assert not line.startswith(TENSORFLOW_LOG_PREFIXES), line
        assert not any(word in line for word in ("oneDNN", "cpu_feature_guard", "absl")), line


def test_notebook_in_a_new_session_continues_from_resume_from(runs):
    work, (first, first_seconds), (second, second_seconds) = runs
    assert "finished earlier, skipped" not in printed(first)
    assert not (work / "teacher_student_run" / "cache").exists()  # not kept in the output
    assert "continuing the run copied from" in printed(second)
    # the teacher's three phases, distillation and the baseline
    assert printed(second).count("finished earlier, skipped") == 5
    assert "exported before from the same model, the files kept" in printed(second)
    assert len(outputs(second, "image/png")) == FIGURES
    assert second_seconds < first_seconds


# A competition's test folder: real digit scans (scikit-learn's) and a file macOS left there.
TEST_IDS = ["test_0000", "test_0001", "test_0002", "test_0003", "test_0004"]


def digit_scans(folder: Path) -> Path:
    from PIL import Image

    from teacher_student.data.embedded import load_digits

    images, _ = load_digits()
    for index, name in enumerate(TEST_IDS):
        Image.fromarray(images[-index - 1]).save(folder / f"{name}.png")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return folder


def test_notebook_writes_the_submission_of_test_dir(runs):
    work, (first, _), (second, _) = runs
    submission = pd.read_csv(work / "submission.csv", dtype=str)
    assert list(submission.columns) == ["id", "label"]
    assert submission["id"].tolist() == TEST_IDS  # the file names without their extension
    assert set(submission["label"]) <= {str(digit) for digit in range(10)}
    assert (f"5 predictions written to {work / 'submission.csv'} (id: the file name without "
            "its extension); 1 skipped: .DS_Store (hidden file)") in printed(first)
    assert "submission: none; set TEST_DIR in the parameters cell" in printed(second)


def test_a_missing_dataset_stops_with_one_line_and_no_traceback(tmp_path):
    source, traceback = stopped_at(tmp_path, DATASET="no-such-dataset")
    assert "find_dataset(DATASET)" in source
    assert traceback == ["STOPPED: DATASET 'no-such-dataset' was not found. Attach your images "
                         "(Add Input) and set DATASET in the parameters cell to their folder, "
                         "or to 'digits' for the embedded dataset."]


def test_no_gpu_stops_unless_the_cpu_is_allowed(tmp_path):
    source, traceback = stopped_at(tmp_path, ALLOW_CPU=False)
    assert "list_physical_devices" in source
    (line,) = traceback
    assert line.startswith("STOPPED: no GPU: in the notebook's settings choose the "
                           "accelerator") and "set ALLOW_CPU = True" in line


def _online() -> bool:
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(_online(), reason="the stop is for a machine without internet")
def test_without_internet_imagenet_weights_must_be_given(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # nothing downloaded before
    source, traceback = stopped_at(tmp_path, CONFIG="kaggle_t4", OVERRIDES=[])
    assert "IMAGENET_WEIGHTS" in source
    (line,) = traceback
    assert line.startswith("STOPPED: no internet, and the teacher's trunk EfficientNetB0 starts "
                           "from ImageNet weights")
    assert "set IMAGENET_WEIGHTS to that folder" in line


def test_a_stop_for_time_ends_the_cell_cleanly_and_shows_what_finished(runs, tmp_path):
    """A session that runs out of time before the distillation: the teacher, from an earlier
    session, is shown; no cell fails; the way on is printed."""
    work, _, _ = runs
    attached = tmp_path / "input" / "teacher-only"
    shutil.copytree(work, attached)
    run = attached / "teacher_student_run"
    for name in ("student_distilled", "student_scratch", "export", "predictions"):
        shutil.rmtree(run / name, ignore_errors=True)
    for path in [*run.glob("student_*.keras"), *(run / "reports").glob("student_*"),
                 *(run / "reports").glob("comparison.*"),
                 run / "reports" / "reliability.png",
                 run / "reports" / "accuracy_vs_latency.png"]:
        path.unlink()
    # The notebook keeps 20 minutes of the session for the export and the output: 1,200.2 s
    # leave the jobs none.
    notebook, _ = execute(tmp_path / "working", resume_from=attached, SESSION_HOURS=0.3334)
    assert not [output for output in outputs(notebook) if output.output_type == "error"]
    text = printed(notebook)
    assert "time budget: stopped before distillation, everything saved" in text
    assert text.count("Next: this version's output (/kaggle/working) holds the run") == 2
    assert "export: after the distillation (not finished in this session)" in text
    assert len(outputs(notebook, "image/png")) == 2  # the teacher's curves and confusion
