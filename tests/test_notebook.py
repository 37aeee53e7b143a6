"""The Kaggle notebook, executed end to end on the CPU with the embedded dataset and the tiny
config, then executed again as in a new session: a fresh working folder, with RESUME_FROM
pointing at the first session's output attached like a dataset under /kaggle/input."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

# Its shared fixture is built once: every test of the module runs in one worker.
pytestmark = pytest.mark.xdist_group("notebook")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "kaggle_t4.ipynb"


# The tiny config on the digits dataset; batches of 32 and no XLA keep the run short (XLA and
# the policies are trained by the other tests).
OVERRIDES = ["data.channels=1", "data.batch_size=32", "distill.epochs=1", "jit_compile=false"]


def parameters(work: Path, resume_from: Path | None = None) -> str:
    return "\n".join([
        'DATASET = "digits"',
        'CONFIG = "tiny"',
        f"OVERRIDES = {OVERRIDES!r}",
        'PRECISION = "float32"',
        f"WORK = {str(work)!r}",
        'RUN_NAME = "teacher_student_run"',
        'PACKAGE_SOURCE = "/kaggle/input/teacher-student"',
        f"RESUME_FROM = {str(resume_from) if resume_from else None!r}",
        "SESSION_HOURS = 12",
    ])


def execute(work: Path, resume_from: Path | None = None
            ) -> tuple[nbformat.NotebookNode, float]:
    """The notebook with its parameters cell replaced, executed in a fresh python3 kernel (the
    interpreter running the tests) from the repository root; and how long that took."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source = parameters(work, resume_from)
    start = time.monotonic()
    NotebookClient(notebook, kernel_name="python3", timeout=900,
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    return notebook, time.monotonic() - start


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
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("kaggle_working")
    first = execute(work)
    # The first session's output, attached to the next one as /kaggle/input/<dataset>/...
    attached = tmp_path_factory.mktemp("kaggle_input") / "previous-version-output"
    shutil.copytree(work, attached)
    second = execute(tmp_path_factory.mktemp("kaggle_working_next"), resume_from=attached)
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


def test_notebook_shows_curves_confusion_matrices_and_the_comparison_inline(runs):
    _, (notebook, _), _ = runs
    assert len(outputs(notebook, "image/png")) == 4  # curves and three confusion matrices
    tables = "".join(outputs(notebook, "text/markdown"))
    first_cells = {line.split("|")[1].strip() for line in tables.splitlines()
                   if line.startswith("|")}
    for model in ("teacher", "student_scratch", "student_distilled",
                  "student_distilled (tflite int8)"):
        assert model in first_cells, model


def test_notebook_in_a_new_session_continues_from_resume_from(runs):
    work, (first, first_seconds), (second, second_seconds) = runs
    assert "finished earlier, skipped" not in printed(first)
    assert not (work / "teacher_student_run" / "cache").exists()  # not kept in the output
    assert "continuing the run copied from" in printed(second)
    # the teacher's three phases, distillation and the baseline
    assert printed(second).count("finished earlier, skipped") == 5
    assert len(outputs(second, "image/png")) == 4
    assert second_seconds < first_seconds
