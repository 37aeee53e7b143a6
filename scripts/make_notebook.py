"""Writes notebooks/kaggle_t4.ipynb from the cells below, so the notebook is reviewed as code.

    python scripts/make_notebook.py           # (re)write the notebook
    python scripts/make_notebook.py --check   # exit 1 if the notebook differs from these cells

Edit the cells here, never the .ipynb by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "kaggle_t4.ipynb"

PARAMETERS = '''\
# Parameters: the only cell to edit (tagged "parameters": papermill -p sets them too).
DATASET = "/kaggle/input/your-dataset"  # class folders, or train/ val/ test/ of class folders
CONFIG = "kaggle_t4"  # a packaged config (kaggle_t4, default, tiny) or a YAML file
OVERRIDES = []  # "key=value" strings, as with --set, e.g. ["phases.0.epochs=5"]
PRECISION = "auto"  # auto: mixed_float16 on a T4, float32 on a CPU; None keeps the config's
WORK = "/kaggle/working"  # Kaggle keeps this folder as the notebook's output
RUN_NAME = "teacher_student_run"  # the run directory: keep it to resume after a restart
PACKAGE_SOURCE = "/kaggle/input/teacher-student"  # the repository, attached as a dataset
# A previous session's output holding RUN_NAME (attach that version's output as a dataset,
# e.g. "/kaggle/input/my-notebook-output"): copied into WORK, and the run continues from it.
RESUME_FROM = None
SESSION_HOURS = 12  # Kaggle's limit: the jobs stop in time, everything saved; None: no limit
'''

INSTALL = '''\
import time

SESSION_START = time.time()  # the time budget counts from here
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the jobs read images with tf.data


def pip_install(*args):
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])


def writable_copy(folder):
    """The project folder (the attached one or a folder in it), copied out of read-only
    /kaggle/input: pip builds a source folder in place."""
    projects = [p for p in (folder, *sorted(folder.iterdir())) if (p / "pyproject.toml").is_file()]
    if not projects:
        raise FileNotFoundError(f"no pyproject.toml in {folder} or in a folder inside it")
    copy = Path(tempfile.mkdtemp()) / "teacher_student"
    shutil.copytree(projects[0], copy,
                    ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__"))
    return copy


if importlib.util.find_spec("teacher_student") is None:
    source = Path(PACKAGE_SOURCE)
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist: attach the repository (a folder or a "
                                "wheel) as a dataset and set PACKAGE_SOURCE to it")
    # --no-deps: the image's TensorFlow and Keras stay as they are.
    pip_install("--no-deps", str(writable_copy(source) if source.is_dir() else source))
    importlib.invalidate_caches()
    print(f"installed teacher_student from {source}")
else:
    print("teacher_student is already installed")
if importlib.util.find_spec("yaml") is None:
    pip_install("pyyaml")
'''

VERSIONS = '''\
import keras
import tensorflow as tf

# What the project is tested with (requirements.txt): Keras 3, TensorFlow 2.16 or later.
keras_version = tuple(int(part) for part in keras.__version__.split(".")[:2])
tf_version = tuple(int(part) for part in tf.__version__.split(".")[:2])
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
if keras_version[0] != 3 or tf_version < (2, 16):
    raise RuntimeError(
        f"teacher_student needs Keras 3 and TensorFlow >= 2.16, found Keras {keras.__version__} "
        f"and TensorFlow {tf.__version__}: in the notebook's settings choose the latest "
        "environment, or run: pip install -q 'keras>=3.8' 'tensorflow>=2.16' and restart")
'''

RESUME = '''\
run_dir = Path(WORK) / RUN_NAME


def previous_run(folder):
    """The run directory `RUN_NAME` inside `folder` (an attached output may sit a level or two
    deeper), or `folder` itself when it is one."""
    for candidate in (folder, *sorted(folder.glob(f"**/{RUN_NAME}"))):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"no run directory ({RUN_NAME}/config.yaml) in {folder}")


if RESUME_FROM and not (run_dir / "config.yaml").exists():
    previous = previous_run(Path(RESUME_FROM))
    shutil.copytree(previous, run_dir, ignore=shutil.ignore_patterns("cache", ".lock"))
    print(f"continuing the run copied from {previous}")
elif RESUME_FROM:
    print(f"{run_dir} exists: continuing it (RESUME_FROM is not copied over it)")
'''

DATASET_CELL = '''\
from teacher_student.data import embedded

KAGGLE_INPUT = Path("/kaggle/input")


def find_dataset(name):
    """`name` itself if it is an embedded dataset or an existing path, else the first folder of
    that name under /kaggle/input (attached datasets may sit a level or two deeper), or None."""
    if name in embedded.EMBEDDED or Path(name).exists():
        return name
    if KAGGLE_INPUT.is_dir():
        for pattern in ("*", "*/*", "*/*/*"):
            for path in sorted(KAGGLE_INPUT.glob(pattern)):
                if path.name == Path(name).name and path.is_dir():
                    return str(path)
    return None


source = find_dataset(DATASET)
if source is None:
    print(f"DATASET {DATASET} was not found.")
    if KAGGLE_INPUT.is_dir():
        print("Attached under /kaggle/input:", *sorted(p.name for p in KAGGLE_INPUT.iterdir()))
    print("Using the embedded 'digits' dataset instead, so that the notebook still runs; "
          "set DATASET in the first cell to train on your images.")
    source = "digits"
print(f"dataset: {source}")
'''

CONFIG_CELL = '''\
from teacher_student import config as config_module
from teacher_student.run_dir import RunDir
from teacher_student.training.steps import plan_steps

# The source and precision are set as written (a folder named 2024 stays text); OVERRIDES are
# YAML values, as with --set.
texts = {"data.source": str(source), **({"precision": PRECISION} if PRECISION else {})}
config = config_module.load(CONFIG, OVERRIDES, texts)
reports_dir = run_dir / "reports"

print(f"config {CONFIG}: {config.data.image_size} px, {config.data.channels} channels, "
      f"batch {config.data.batch_size} per replica, trunk {config.teacher.trunk or 'none'}, "
      f"distillation {config.distill.method} (alpha {config.distill.alpha}, temperature "
      f"{config.distill.temperature})")
for step in plan_steps(config, RunDir(run_dir)):
    print(f"  {step.label}: {step.epochs} epochs")
print(f"run directory: {run_dir}")
'''

ENVIRONMENT = '''\
import keras
import tensorflow as tf

from teacher_student.models.precision import resolve

print(f"TensorFlow {tf.__version__}, Keras {keras.__version__} "
      f"(backend {keras.backend.backend()})")
gpus = tf.config.list_physical_devices("GPU")
for gpu in gpus:
    details = tf.config.experimental.get_device_details(gpu)
    capability = ".".join(str(n) for n in details.get("compute_capability", ()))
    print(f"{gpu.name}: {details.get('device_name', 'GPU')}, compute capability {capability}")
if not gpus:
    print("no GPU: training runs on the CPU")
elif len(gpus) > 1:
    print(f"{len(gpus)} GPUs: the jobs train on all of them (MirroredStrategy)")
policy, why = resolve(config.precision)
print(why)
'''

TRAIN = '''\
import dataclasses

from teacher_student import jobs
from teacher_student.errors import TimeBudgetReached
from teacher_student.run_dir import RunDir

run = RunDir(run_dir)
MARGIN_S = 20 * 60  # for the export, the reports and saving the output


def run_job(job):
    """`job` with what is left of the session as its time budget. When it stops for time, the
    decoded-image cache goes (the next session rebuilds it) and the run directory is the
    output to continue from: set RESUME_FROM to it in the next version."""
    budget = None
    if SESSION_HOURS:
        budget = int(SESSION_HOURS * 3600 - MARGIN_S - (time.time() - SESSION_START))
    try:
        return job(dataclasses.replace(config, time_budget=max(budget, 1) if budget else None),
                   run)
    except TimeBudgetReached:
        shutil.rmtree(run_dir / "cache", ignore_errors=True)
        raise


teacher_row = run_job(jobs.train_teacher)
'''

DISTILL = '''\
comparison = run_job(jobs.distill)
'''

CURVES = '''\
from IPython.display import Image, Markdown, display

display(Image(filename=str(reports_dir / "teacher_curves.png")))
'''

CONFUSION = '''\
from teacher_student.run_dir import MODEL_NAMES

for name in MODEL_NAMES:
    path = reports_dir / f"{name}_confusion.png"
    if path.exists():  # no student_scratch when distill.baseline is false
        display(Markdown(f"**{name}**"), Image(filename=str(path)))
'''

EXPORT = '''\
from teacher_student.outputs import export

display(Markdown(export.export_run(run)))
'''

COMPARISON = '''\
shutil.rmtree(run_dir / "cache", ignore_errors=True)  # decoded images: not worth keeping
display(Markdown((reports_dir / "comparison.md").read_text()))
print(f"everything is in {run_dir}:")
for path in sorted(run_dir.glob("*.keras")) + sorted((run_dir / "export").iterdir()):
    print(f"  {path.relative_to(run_dir)}")
'''

CELLS = [
    ("markdown", """\
# Teacher and student on a Kaggle T4

Trains the multi-scale CNN teacher (CBAM attention) in three phases, distils it into a small
student, trains the same student from scratch as a baseline, compares all three and exports the
student. Run all cells: on a T4 (or two) it trains in `mixed_float16`, on a CPU in `float32`.

Everything goes to `WORK/RUN_NAME` (by default `/kaggle/working/teacher_student_run`): the
checkpoints, the reports and the exported models. Edit the next cell only."""),
    ("parameters", PARAMETERS),
    ("markdown", """\
## Install

The repository, attached as a Kaggle dataset (`PACKAGE_SOURCE`), is installed with
`pip install --no-deps`: the TensorFlow and Keras of the Kaggle image are used as they are.
Where `teacher_student` is already installed, nothing happens."""),
    ("code", INSTALL),
    ("markdown", """\
## Versions

The project needs Keras 3 and TensorFlow 2.16 or later; this cell says what to do otherwise."""),
    ("code", VERSIONS),
    ("markdown", """\
## Dataset

`DATASET` is a folder with one subfolder per class, or Kaggle's `train/`, `val/` (or `valid/`),
`test/` folders of class folders; a bare name is looked for under `/kaggle/input`. When it
cannot be found, the notebook says so and uses the embedded `digits` dataset instead, so that it
runs anywhere."""),
    ("code", DATASET_CELL),
    ("markdown", """\
## Continuing an earlier session

A Kaggle session ends after 12 hours, and `/kaggle/working` is kept only as a saved version's
output. The jobs stop before the session limit with everything saved (`SESSION_HOURS`). To
continue in a new session, attach the previous version's output as a dataset and set
`RESUME_FROM` to it: the run directory is copied into `WORK` and training goes on from its
last finished epoch; finished phases are skipped."""),
    ("code", RESUME),
    ("markdown", """\
## Configuration

The packaged config `kaggle_t4` fine-tunes an ImageNet-pretrained EfficientNetB0 trunk at 224 px.
`OVERRIDES` change any key (`phases.0.epochs=5`, `data.batch_size=32`); a wrong key or value
stops here with a message naming it."""),
    ("code", CONFIG_CELL),
    ("markdown", """\
## Environment and precision

`auto` picks `mixed_float16` on a GPU of compute capability 7.0 or more (a T4 is 7.5) and
`float32` otherwise. Mixed precision is safe here: every layer gets its dtype from one policy,
each merge is fed one dtype through named cast layers, bilinear resizes and the logits compute
in float32, frozen parts stop their gradient and float16 always gets loss scaling. The README's
section "Mixed precision that trains under XLA" explains why each of these is needed, and
`python -m teacher_student check-dtypes --precision mixed_float16` audits the built models."""),
    ("code", ENVIRONMENT),
    ("markdown", """\
## Teacher: three phases

With a pretrained trunk: phase 1 trains the head on the frozen trunk, phase 2 unfreezes the top
blocks, phase 3 trains everything at a low learning rate (from scratch: warm-up, main training,
fine-tune). Each phase checkpoints `last.keras` and `best.keras` after every epoch.

First, a **preflight** builds every step still to train (the three phases, distillation, the
baseline), trains each on one real batch on this GPU and prints the step times, the peak GPU
memory and an estimate of the whole plan, in a few minutes. A step that fails under XLA or
float16 runs with XLA off (or in float32) instead, and the line says so; an out-of-memory stops
here, before hours are spent, naming the step.

**After a kernel restart or a time-out**, run all cells again with the same `WORK` and
`RUN_NAME`: finished phases print "finished earlier, skipped", an interrupted phase continues
after its last finished epoch with its optimizer state, and distillation resumes the same way.
Only `PRECISION` may change on an existing run (`float32` continues a phase that stopped on a
float16 overflow); any other change is refused, naming the key: use a new `RUN_NAME` for it."""),
    ("code", TRAIN),
    ("markdown", """\
## Distillation

The student learns from the labels and from the frozen teacher's softened outputs:
`alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T)`. The same student
is then trained from scratch with the same budget, so that the gain from distillation is
measured, and all three models are evaluated on the held-out test split."""),
    ("code", DISTILL),
    ("markdown", "## Training curves of the teacher's phases"),
    ("code", CURVES),
    ("markdown", "## Confusion matrices on the test split"),
    ("code", CONFUSION),
    ("markdown", """\
## Export

The distilled student as `.keras`, TensorFlow SavedModel and TFLite (float32, float16, int8),
each checked against the Keras model on the test split: agreement of the top-1 classes, largest
probability difference, accuracy, size and CPU latency."""),
    ("code", EXPORT),
    ("markdown", """\
## Comparison

Test accuracy, macro-F1, parameters, size on disk and CPU latency per image of every model and
export. Everything listed below is in `/kaggle/working`, kept as the notebook's output."""),
    ("code", COMPARISON),
]


def build() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    for index, (kind, source) in enumerate(CELLS):
        cell_id = f"cell-{index:02d}"  # fixed ids: the file only changes when a cell does
        if kind == "markdown":
            notebook.cells.append(nbformat.v4.new_markdown_cell(source, id=cell_id))
        else:
            cell = nbformat.v4.new_code_cell(source.rstrip("\n"), id=cell_id)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the notebook differs from the cells of this script")
    args = parser.parse_args()
    text = nbformat.writes(build()) + "\n"
    if args.check:
        if not NOTEBOOK.exists() or NOTEBOOK.read_text() != text:
            print(f"{NOTEBOOK} is out of date: run python scripts/make_notebook.py",
                  file=sys.stderr)
            return 1
        return 0
    NOTEBOOK.parent.mkdir(parents=True, exist_ok=True)
    NOTEBOOK.write_text(text)
    print(f"wrote {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
