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


def package_in(source):
    """What pip installs from `source`: the wheel itself; else a teacher_student wheel in the
    folder or a folder inside it (a dataset of `make wheel`'s file); else the project (its
    pyproject.toml) in the folder or a folder or two inside it (an uploaded repository), copied
    out of read-only /kaggle/input, as pip builds a source folder in place."""
    if source.is_file():
        return source
    wheels = sorted(path for pattern in ("teacher_student-*.whl", "*/teacher_student-*.whl")
                    for path in source.glob(pattern))
    if wheels:
        return wheels[-1]
    projects = [p for p in (source, *sorted(source.glob("*")), *sorted(source.glob("*/*")))
                if (p / "pyproject.toml").is_file()]
    if not projects:
        raise Stop(f"PACKAGE_SOURCE {str(source)!r} holds no teacher_student wheel and no "
                   "pyproject.toml: attach the repository or its wheel (make wheel) as a dataset")
    copy = Path(tempfile.mkdtemp()) / "teacher_student"
    shutil.copytree(projects[0], copy, ignore=shutil.ignore_patterns(
        ".git", ".venv", "runs", "build", "dist", "*.egg-info", "__pycache__"))
    return copy


if importlib.util.find_spec("teacher_student") is None:
    source = Path(PACKAGE_SOURCE)
    if not source.exists():
        inputs = Path("/kaggle/input")
        attached = sorted(p.name for p in inputs.iterdir()) if inputs.is_dir() else []
        raise Stop(f"PACKAGE_SOURCE {str(source)!r} does not exist"
                   + (f" (attached under /kaggle/input: {', '.join(attached)})" if attached else "")
                   + ": attach the package's wheel (make wheel) or the repository as a dataset "
                   "(Add Input) and set PACKAGE_SOURCE to it")
    package = package_in(source)
    # No internet on Kaggle in a competition: --no-deps keeps the image's TensorFlow and Keras,
    # and a folder is built by the image's own setuptools (--no-build-isolation), not by one that
    # pip would download first. A wheel needs no build at all.
    try:
        pip_install("--no-deps", "--no-build-isolation", str(package))
    except subprocess.CalledProcessError as error:
        hint = "" if package.is_file() else (": attach the wheel that `make wheel` writes "
                                             "instead of the folder, it needs no build")
        raise Stop(f"pip could not install {package} (exit status {error.returncode}, pip's "
                   f"lines above){hint}") from None
    importlib.invalidate_caches()
    installed = Path(importlib.util.find_spec("teacher_student").origin).parent
    print(f"installed teacher_student from {source if package.is_dir() else package} into "
          f"{installed.parent}")
else:
    print("teacher_student is already installed")
if importlib.util.find_spec("yaml") is None:  # Kaggle's images have it; pip needs internet
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    raise Stop("PyYAML, which teacher_student reads its configs with, is not installed in this "
               "Python, and without internet pip cannot download it. Attach its wheel as a "
               f"dataset (PyYAML's .whl for Python {version} on this platform, from "
               "pypi.org/project/PyYAML/#files) and, in a cell before this one, run "
               "!pip install --no-index --no-deps /kaggle/input/<dataset>/<the .whl>; or "
               "turn the notebook's internet on and run !pip install pyyaml")

from teacher_student.quiet import quiet_logs

quiet_logs()  # the tensorflow and absl loggers too
