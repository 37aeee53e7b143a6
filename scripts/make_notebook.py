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

QUIET = '''\
import os

# TensorFlow reads its log settings once, when it is first imported: here, before anything does.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # its C++ lines (I0000, W0000, E0000)
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # the oneDNN line ignores the log level


class Stop(Exception):
    """Ends "Run All" at this cell with its message alone, no traceback: something to set."""

    def _render_traceback_(self):  # what IPython shows instead of a traceback
        return [f"STOPPED: {self}"]
'''

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
ALLOW_CPU = False  # True: train without a GPU on purpose (minutes for digits, days at 224 px)
# The config's trunk_weights "imagenet" (kaggle_t4) are downloaded from the internet. In a
# competition without internet, attach Keras' weights file for the trunk as a dataset (for
# EfficientNetB0: efficientnetb0_notop.h5, from storage.googleapis.com/keras-applications)
# and give the file or its folder here: it is copied where Keras keeps its downloads.
IMAGENET_WEIGHTS = None
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

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # two T4s through tf.distribute; exports


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

from teacher_student.quiet import quiet_logs

quiet_logs()  # the tensorflow and absl loggers too
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
    attached = sorted(p.name for p in KAGGLE_INPUT.iterdir()) if KAGGLE_INPUT.is_dir() else []
    raise Stop(f"DATASET {DATASET!r} was not found"
               + (f" (attached under /kaggle/input: {', '.join(attached)})" if attached else "")
               + ". Attach your images (Add Input) and set DATASET in the parameters cell to "
               "their folder, or to 'digits' for the embedded dataset.")
print(f"dataset: {source}")
'''

CONFIG_CELL = '''\
from teacher_student import config as config_module
from teacher_student.run.directory import RunDir
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
if not gpus and not ALLOW_CPU:
    raise Stop("no GPU: in the notebook's settings choose the accelerator 'GPU T4 x2' (or "
               "P100) and run all cells again; or set ALLOW_CPU = True to train on the CPU "
               "on purpose (minutes for the digits, days for kaggle_t4 at 224 px).")
if not gpus:
    print("no GPU: training runs on the CPU (ALLOW_CPU)")
elif len(gpus) > 1:
    print(f"{len(gpus)} GPUs: the jobs train on all of them (MirroredStrategy)")
policy, why = resolve(config.precision)
print(why)

import socket

KERAS_DOWNLOADS = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def online():
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=5).close()
        return True
    except OSError:
        return False


if IMAGENET_WEIGHTS:  # copied where Keras looks before it downloads
    given = Path(IMAGENET_WEIGHTS)
    KERAS_DOWNLOADS.mkdir(parents=True, exist_ok=True)
    for weights in [given] if given.is_file() else sorted(given.rglob("*.h5")):
        shutil.copy(weights, KERAS_DOWNLOADS / weights.name)
        print(f"ImageNet weights: {weights.name} from {weights.parent}")


def squeezed(name):
    return name.lower().replace("_", "").replace("-", "")


def weights_kept(trunk):
    """Whether Keras' downloads hold a weights file of `trunk` (efficientnetb0_notop.h5 for
    EfficientNetB0, weights_mobilenet_v3_small_...h5 for MobileNetV3Small)."""
    return KERAS_DOWNLOADS.is_dir() and any(
        squeezed(trunk) in squeezed(path.name) for path in KERAS_DOWNLOADS.iterdir())


for model, part in (("teacher", config.teacher), ("student", config.student)):
    if (part.trunk and part.trunk_weights == "imagenet" and not weights_kept(part.trunk)
            and not online()):
        raise Stop(f"no internet, and the {model}'s trunk {part.trunk} starts from ImageNet "
                   "weights that Keras downloads: attach Keras' weights files as a dataset "
                   "(for EfficientNetB0 efficientnetb0_notop.h5, for MobileNetV3Small "
                   "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5, from "
                   "storage.googleapis.com/keras-applications/ and .../mobilenet_v3/) and set "
                   "IMAGENET_WEIGHTS to that folder, or turn the notebook's internet on.")
'''

TRAIN = '''\
import dataclasses

from teacher_student import jobs
from teacher_student.errors import TimeBudgetReached
from teacher_student.run.directory import RunDir

run = RunDir(run_dir)
MARGIN_S = 20 * 60  # for the export, the reports and saving the output
stopped_for_time = None  # the time budget's message, once a job has stopped for it
NEXT_SESSION = (
    "Next: this version's output (/kaggle/working) holds the run. In a new session, attach "
    "that output as a dataset (Add Input > Your Work), set RESUME_FROM to it and run all "
    "cells again: finished epochs are kept, training goes on from the last one.")


def run_job(job):
    """`job` with what is left of the session as its time budget; None when it stops for
    time (the cell ends cleanly, the next cells show what finished). Then the decoded-image
    cache goes (the next session rebuilds it) and the run directory is the output to continue
    from."""
    global stopped_for_time
    if stopped_for_time:
        return None
    budget = None
    if SESSION_HOURS:
        budget = int(SESSION_HOURS * 3600 - MARGIN_S - (time.time() - SESSION_START))
    try:
        limit = None if budget is None else max(budget, 1)  # 0 s left is no time, not no limit
        return job(dataclasses.replace(config, time_budget=limit), run)
    except TimeBudgetReached as stop:
        shutil.rmtree(run_dir / "cache", ignore_errors=True)
        stopped_for_time = str(stop)
        print(f"\\n{stop}\\n{NEXT_SESSION}")
        return None


teacher_row = run_job(jobs.train_teacher)
'''

DISTILL = '''\
comparison = run_job(jobs.distill)  # None when the session's time ran out before it ended
'''

CURVES = '''\
from IPython.display import Image, Markdown, display

from teacher_student.outputs import plots

# Drawn again from the histories: after a stop for time, the epochs that finished.
phases = {phase.name: run.teacher_phase(i, phase.name).read_history()
          for i, phase in enumerate(config.phases, start=1)}
if any(not frame.empty for frame in phases.values()):
    display(Image(filename=str(plots.plot_curves(phases, reports_dir / "teacher_curves.png"))))
students = {"distilled": run.distillation.read_history(),
            "scratch": run.baseline.read_history()}
if any(not frame.empty for frame in students.values()):
    path = plots.plot_student_curves(students, teacher_row["accuracy"] if teacher_row else None,
                                     reports_dir / "student_curves.png")
    display(Markdown("**Students: distilled against from scratch**"), Image(filename=str(path)))
'''

CONFUSION = '''\
from teacher_student.run.directory import MODEL_NAMES

for name in MODEL_NAMES:
    path = reports_dir / f"{name}_confusion.png"
    if path.exists():  # no student_scratch when distill.baseline is false
        display(Markdown(f"**{name}**"), Image(filename=str(path)),
                Markdown("Most frequent mistakes:\\n\\n"
                         + (reports_dir / f"{name}_top_confusions.md").read_text()))
'''

CALIBRATION = '''\
for name, title in (("reliability.png", "Calibration: reliability of every model"),
                    ("accuracy_vs_latency.png", "Accuracy against CPU latency")):
    if (reports_dir / name).exists():
        display(Markdown(f"**{title}**"), Image(filename=str(reports_dir / name)))
'''

EXPORT = '''\
from teacher_student.outputs import export

if comparison is not None:
    display(Markdown(export.export_run(run)))
else:
    print("export: after the distillation (not finished in this session)")
'''

COMPARISON = '''\
shutil.rmtree(run_dir / "cache", ignore_errors=True)  # decoded images: not worth keeping
if (reports_dir / "comparison.md").exists():
    display(Markdown((reports_dir / "comparison.md").read_text()))
print(f"everything is in {run_dir}:")
exported = sorted((run_dir / "export").iterdir()) if (run_dir / "export").is_dir() else []
for path in sorted(run_dir.glob("*.keras")) + exported:
    print(f"  {path.relative_to(run_dir)}")
if stopped_for_time:
    print(f"\\nStopped for time: {stopped_for_time}\\n{NEXT_SESSION}")
'''

CELLS = [
    ("markdown", """\
# Teacher and student on a Kaggle T4

Trains the multi-scale CNN teacher (CBAM attention) in three phases, distils it into a small
student, trains the same student from scratch as a baseline, compares all three and exports the
student. Run all cells: on a T4 (or two) it trains in `mixed_float16`, on a CPU in `float32`.

Everything goes to `WORK/RUN_NAME` (by default `/kaggle/working/teacher_student_run`): the
checkpoints, the reports and the exported models. Edit the parameters cell only (the one after
next). The notebook stops with one line saying what to set, without a traceback, when
`DATASET` cannot be found, when there is no GPU (unless `ALLOW_CPU`), or when the trunk's
ImageNet weights cannot be downloaded (then `IMAGENET_WEIGHTS`); and when the session's time
runs out, the training cell ends cleanly, the cells below show what finished, and the last one
says how to continue."""),
    ("markdown", """\
## Quiet logs

TensorFlow reads its log settings when it is first imported: this cell sets them before
anything imports it, so that the output below is the run's own."""),
    ("code", QUIET),
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
`test/` folders of class folders; a bare name is looked for under `/kaggle/input`, and
`digits` or `mnist` name the embedded datasets. When it cannot be found, the notebook stops
here, listing what is attached."""),
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
## Environment, precision and ImageNet weights

Without a GPU the notebook stops here, unless `ALLOW_CPU = True` says that the CPU is meant.
A pretrained trunk (`kaggle_t4`) downloads its ImageNet weights; without internet (a
competition's notebook), attach Keras' weights file as a dataset and set `IMAGENET_WEIGHTS`.
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
float16 overflow); any other change is refused, naming the key: use a new `RUN_NAME` for it.

**When the session's time runs out** (`SESSION_HOURS`), the job stops after the epoch after
which the next would not fit, everything saved; the cell prints where it stopped and what to do
next, and the cells below show what finished."""),
    ("code", TRAIN),
    ("markdown", """\
## Distillation

The student learns from the labels and from the frozen teacher's softened outputs:
`alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T)`. The same student
is then trained from scratch with the same budget, so that the gain from distillation is
measured, and all three models are evaluated on the held-out test split."""),
    ("code", DISTILL),
    ("markdown", """\
## Training curves

The teacher's phases end to end; then the distilled student against the same student trained
from scratch, epoch by epoch, with the teacher's test accuracy as a line: what distillation
bought."""),
    ("code", CURVES),
    ("markdown", """\
## Confusion matrices on the test split

Normalised by true class (each row sums to 100%); beyond 30 classes drawn without cell text,
with each model's most frequent mistakes listed below it."""),
    ("code", CONFUSION),
    ("markdown", """\
## Calibration and speed

The reliability diagram: accuracy against confidence in 15 bins, for every model (ECE in the
legend; the diagonal is a calibrated model). Then test accuracy against CPU latency per image."""),
    ("code", CALIBRATION),
    ("markdown", """\
## Export

The distilled student as `.keras`, TensorFlow SavedModel, TFLite (float32, float16, int8) and
ONNX (where `tf2onnx` and `onnxruntime` are installed: `pip install tf2onnx onnxruntime`),
each checked against the Keras model on the test split: agreement of the top-1 classes, largest
probability difference, accuracy, calibration, size and CPU latency."""),
    ("code", EXPORT),
    ("markdown", """\
## Comparison

Test accuracy, balanced accuracy, macro-F1, calibration (ECE), agreement with the teacher,
parameters, size on disk and CPU latency per image (batch 1, one thread, in a process that
sees no GPU) of every model and export. Everything listed below is in `/kaggle/working`, kept
as the notebook's output. To classify new images with the student:
`python -m teacher_student predict IMAGES --run-dir /kaggle/working/teacher_student_run --out
submission.csv`."""),
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
