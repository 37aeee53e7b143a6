"""Atomic writes leave files and folders with the mode a plain write gives under the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import keras
import pandas as pd
import pytest

from teacher_student import atomic
from teacher_student.data import embedded


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    """The process's umask set for the test, and the modes that plain writes get under it."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def plain_modes(folder: Path) -> tuple[int, int]:
    """The modes of a file made by `open(..., "w")` and of a folder made by `mkdir`."""
    with open(folder / "plain.txt", "w") as file:
        file.write("x")
    (folder / "plain_dir").mkdir()
    return mode(folder / "plain.txt"), mode(folder / "plain_dir")


def test_written_files_follow_the_umask(tmp_path: Path, umask: int):
    file_mode, _ = plain_modes(tmp_path)
    assert file_mode == 0o666 & ~umask
    written = [
        atomic.write_text(tmp_path / "a.txt", "text"),
        atomic.write_json(tmp_path / "a.json", {"a": 1}),
        atomic.write_bytes(tmp_path / "a.bin", b"\0"),
        atomic.write_csv(pd.DataFrame({"a": [1]}), tmp_path / "a.csv"),
        atomic.replace_atomically(tmp_path / "a.dat", lambda tmp: Path(tmp).write_text("y")),
    ]
    assert {path.name: mode(path) for path in written} == {path.name: file_mode
                                                          for path in written}
    assert not list(tmp_path.glob(f"{atomic.TEMPORARY_PREFIX}*"))


def test_models_and_checkpoint_folders_follow_the_umask(tmp_path: Path, umask: int):
    file_mode, folder_mode = plain_modes(tmp_path)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    saved = atomic.save_model(model, tmp_path / "model.keras")
    assert mode(saved) == file_mode
    resume = atomic.publish_directory(lambda folder: model.save_weights(
        folder / "state.weights.h5"), tmp_path / "resume" / "epoch-0001")
    assert mode(resume) == folder_mode
    assert mode(resume / "state.weights.h5") == file_mode
    assert keras.saving.load_model(saved).count_params() == model.count_params()


def test_embedded_dataset_folders_follow_the_umask(tmp_path: Path, umask: int):
    _, folder_mode = plain_modes(tmp_path)
    folder = embedded.materialize("digits", tmp_path / "datasets")
    assert mode(folder) == folder_mode
