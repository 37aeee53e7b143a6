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
