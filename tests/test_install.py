"""Installing the package as the Kaggle notebook does in a competition: no index (PIP_NO_INDEX=1),
the package not installed, the notebook's own install cell installing the wheel that `make
wheel` writes, or the repository folder, each attached as a dataset. tests/test_notebook.py
executes the whole notebook so; these take seconds.

The helpers here serve both modules."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CELLS = ROOT / "notebooks" / "kaggle_t4_cells"
OFFLINE = {"PIP_NO_INDEX": "1"}  # pip as on Kaggle in a competition: no index to download from


def offline_environment() -> dict[str, str]:
    return {**os.environ, **OFFLINE}


def read_only(folder: Path) -> None:
    """As /kaggle/input is."""
    for path in [*folder.rglob("*"), folder]:
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def repository_copy(target: Path) -> Path:
    """The repository's files as git lists them (tracked, and new ones it does not ignore): what
    a user uploads as a dataset."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():  # not one deleted in the working tree
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def build_wheel(repository: Path) -> Path:
    """`make wheel` in a writable copy of the repository, with no index: the wheel."""
    done = subprocess.run(["make", "-C", str(repository), "wheel", f"PY={sys.executable}",
                           "STAMP="], env=offline_environment(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (repository / "dist").glob("teacher_student-*.whl")
    return wheel


def python_without_the_package(env: Path) -> Path:
    """A Python like a fresh Kaggle image's: every package of the test environment but this one
    (its editable install's finder, a .pth file, is left out), and pip, run by it, installing
    into `env` itself. Its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path("
                                "'purelib'))"], capture_output=True, text=True, check=True
                               ).stdout.strip())
    folders = list(dict.fromkeys(Path(sysconfig.get_path(key)) for key in ("purelib", "platlib")))
    # First in the order of names, so that the other .pth files' imports find their modules.
    (site / "000_test_environment.pth").write_text("".join(f"{folder}\n" for folder in folders))
    for folder in folders:
        for pth in folder.glob("*.pth"):
            if pth.name.startswith("__editable__"):
                continue
            lines = [line if not line.strip() or line.startswith(("#", "import ", "import\t"))
                     else str(folder / line.strip()) for line in pth.read_text().splitlines()]
            (site / pth.name).write_text("".join(f"{line}\n" for line in lines))
    found = subprocess.run([python, "-c", "import importlib.util as u; "
                            "print(u.find_spec('teacher_student'))"], cwd=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == "None", f"teacher_student is importable without the editable install: {found}"
    return python


def install_cell(package_source: Path) -> str:
    """The notebook's install cell as a script, after its Stop class and PACKAGE_SOURCE."""
    return "\n".join([(CELLS / "01_quiet_logs.py").read_text(),
                      f"PACKAGE_SOURCE = {str(package_source)!r}",
                      (CELLS / "03_install.py").read_text()])


def run_install_cell(python: Path, package_source: Path) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-c", install_cell(package_source)], cwd=python.parent.parent,
                          env=offline_environment(), capture_output=True, text=True)


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    return repository_copy(tmp_path_factory.mktemp("repository") / "teacher-student")


@pytest.mark.parametrize("attached", ["wheel", "folder"])
def test_the_install_cell_installs_with_no_index(attached, repository, tmp_path):
    """A dataset holding the wheel of `make wheel`, or the repository folder (read-only): the
    install cell installs the package into the environment of its Python, which imports it from
    there, with its presets and its command; the test environment is left as it was."""
    dataset = tmp_path / "input" / "teacher-student"
    if attached == "wheel":
        source = repository.parent / "wheel-build"
        shutil.copytree(repository, source)
        dataset.mkdir(parents=True)
        shutil.copy(build_wheel(source), dataset)
    else:
        shutil.copytree(repository, dataset / "teacher_student-main")  # an uploaded zip's folder
    read_only(dataset)
    ours = Path(sysconfig.get_path("purelib"))
    before = sorted(path.name for path in ours.glob("*teacher_student*"))
    python = python_without_the_package(tmp_path / "kaggle_python")
    done = run_install_cell(python, dataset)
    assert done.returncode == 0, done.stdout + done.stderr
    env = tmp_path / "kaggle_python"
    assert f"into {env}" in done.stdout, done.stdout
    where = subprocess.run(
        [python, "-c", "import teacher_student, importlib.resources as r; "
         "print(teacher_student.__file__); "
         "print(r.files('teacher_student').joinpath('config/presets/tiny.yaml').is_file())"],
        cwd=env, capture_output=True, text=True, check=True).stdout.split()
    assert Path(where[0]).is_relative_to(env) and where[1] == "True", where
    assert (env / "bin" / "teacher-student").is_file()
    # The test environment's own (editable) install is untouched.
    assert sorted(path.name for path in ours.glob("*teacher_student*")) == before


def test_a_dataset_without_the_package_stops_in_one_line(tmp_path):
    (tmp_path / "notes").mkdir()
    done = run_install_cell(python_without_the_package(tmp_path / "kaggle_python"), tmp_path)
    assert done.returncode == 1
    assert (f"Stop: PACKAGE_SOURCE {str(tmp_path)!r} holds no teacher_student wheel and no "
            "pyproject.toml") in done.stderr


def test_a_folder_pip_cannot_build_stops_saying_to_attach_the_wheel(tmp_path):
    """An image whose setuptools cannot build the repository: the cell says what to attach."""
    project = tmp_path / "input" / "teacher-student"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "no_such_backend"\n')
    done = run_install_cell(python_without_the_package(tmp_path / "kaggle_python"), project)
    assert done.returncode == 1
    assert ("lines above): attach the wheel that `make wheel` writes instead of the folder, it "
            "needs no build") in done.stderr, done.stderr


def test_a_python_without_pyyaml_stops_saying_what_to_do_instead_of_calling_pip(tmp_path):
    """PyYAML missing (Kaggle's images have it; this Python hides it): pip cannot download it
    offline, so the cell stops with what to attach and run, and pip is not run."""
    hide_yaml = "import sys; sys.modules['yaml'] = None  # as if PyYAML were not installed\n"
    done = subprocess.run([sys.executable, "-c", hide_yaml + install_cell(tmp_path)], cwd=ROOT,
                          env=offline_environment(), capture_output=True, text=True)
    assert done.returncode == 1
    assert "teacher_student is already installed" in done.stdout
    (line,) = [text for text in done.stderr.splitlines() if text.startswith("Stop: ")]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert line == (
        "Stop: PyYAML, which teacher_student reads its configs with, is not installed "
        "in this Python, and without internet pip cannot download it. Attach its wheel as a "
        f"dataset (PyYAML's .whl for Python {version} on this platform, from "
        "pypi.org/project/PyYAML/#files) and, in a cell before this one, run !pip install "
        "--no-index --no-deps /kaggle/input/<dataset>/<the .whl>; or turn the notebook's "
        "internet on and run !pip install pyyaml")
    assert "pip" not in done.stdout.replace("!pip", "") and "Requirement" not in done.stdout
