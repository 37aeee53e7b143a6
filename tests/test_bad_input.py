"""Bad input through the command line: unusable files are skipped and listed, errors that make
training meaningless stop it before the first epoch with a message naming the file or key."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import write_image_folder

from teacher_student.cli import _config, build_parser, main

ONE_EPOCH = ["--config", "tiny", "--set", "data.batch_size=4", "--set", "phases.1.epochs=0",
             "--set", "phases.2.epochs=0", "--set", "measure_latency=false"]


def train(images, run_dir, *extra) -> int:
    return main(["train-teacher", "--data", str(images), "--run-dir", str(run_dir),
                 "--no-preflight", *ONE_EPOCH, *extra])


def test_unusable_files_are_skipped_listed_and_training_goes_on(tmp_path, capsys):
    images = write_image_folder(tmp_path / "images")
    (images / "class_0" / "empty.png").write_bytes(b"")
    (images / "class_1" / "notes.jpg").write_text("not an image")
    shutil.copy(images / "class_2" / "0.png", images / "class_2" / "cut.png")
    data = (images / "class_2" / "cut.png").read_bytes()
    (images / "class_2" / "cut.png").write_bytes(data[: len(data) // 3])
    with open(os.path.join(os.fsencode(images / "class_0"), b"bad\xff.png"), "wb") as file:
        file.write(data)  # a name that is not UTF-8
    shutil.copytree(images / "class_1", images / "__MACOSX" / "class_1")
    assert train(images, tmp_path / "run") == 0
    skipped = pd.read_csv(tmp_path / "run" / "skipped_files.csv")
    reasons = {p.rsplit("/", 1)[-1]: reason for p, reason in zip(skipped["path"],
                                                                   skipped["reason"])}
    assert {"empty.png", "notes.jpg", "cut.png"} <= set(reasons)
    assert reasons["bad\\xff.png"] == "file name is not valid UTF-8"
    assert reasons["__MACOSX"] == "system folder"
    assert all(isinstance(reason, str) and reason for reason in skipped["reason"])
    split = pd.read_csv(tmp_path / "run" / "split.csv")
    assert sorted(set(split["class_name"])) == ["class_0", "class_1", "class_2"]
    out = capsys.readouterr().out
    assert "unusable files" in out and "notes.jpg" in out and "bad\\xff.png" in out
    assert "ignored folders that hold no classes: __MACOSX (system folder)" in out
    assert (tmp_path / "run" / "teacher.keras").exists()


def test_a_single_class_stops_before_training_naming_the_source(tmp_path, capsys):
    images = write_image_folder(tmp_path / "images", classes=1)
    assert train(images, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert str(images) in err and "class" in err
    assert not (tmp_path / "run" / "teacher").exists()


def test_a_class_too_small_to_split_is_named(tmp_path, capsys):
    images = write_image_folder(tmp_path / "images")
    for extra in sorted((images / "class_1").iterdir())[1:]:
        extra.unlink()
    (images / "class_0" / "notes.txt").write_text("not an image")
    assert train(images, tmp_path / "run") == 2
    out, err = capsys.readouterr()
    assert "skipped 1 unusable file or ignored folder (listed in " in out  # one, not "1 files"
    assert "class 'class_1' has 1 image; a stratified split into 3 parts needs at least 3" in err
    assert not (tmp_path / "run" / "teacher").exists()


@pytest.mark.parametrize("kept, said", [
    (12, "its 12 files were all skipped (first: "),
    (1, "its only file was skipped ("),
])
def test_a_class_without_a_usable_image_is_named(tmp_path, capsys, kept, said):
    images = write_image_folder(tmp_path / "images")
    for extra in sorted((images / "class_1").iterdir())[kept:]:
        extra.unlink()
    for image in (images / "class_1").iterdir():
        image.write_bytes(image.read_bytes()[:40])  # every file cut short
    assert train(images, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert f"class 'class_1' has no usable image: {said}" in err
    assert not (tmp_path / "run" / "teacher").exists()


def test_a_npz_of_strips_is_refused_naming_the_file_and_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEACHER_STUDENT_CACHE", str(tmp_path / "cache"))
    np.savez(tmp_path / "strips.npz", images=np.zeros((40, 10), np.uint8),
             labels=np.arange(40) % 4)
    assert train(tmp_path / "strips.npz", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "strips.npz: 'images' has shape [40, 10], dtype uint8; need [N, H, W]" in err


@pytest.mark.parametrize("override, message", [
    ("teacher.colour=red", "teacher.colour: unknown key"),
    ("phases.0.epochs=-1", "phases.0.epochs: must be >= 0"),
    ("data.batch_size=many", "data.batch_size: must be int"),
    ("data.batch_size=[", "data.batch_size: '[' is not a YAML value"),
    ("time_budget=1:30", "time_budget: '1:30' is not a positive duration"),
    ("phases=[]", "phases: at least one phase must train the teacher"),
])
def test_config_errors_name_the_key(tmp_path, capsys, override, message):
    assert train(tmp_path, tmp_path / "run", "--set", override) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("folder", ["2024", "x #1", "1:30", "true"])
def test_a_data_folder_reaches_the_run_under_its_own_name(tmp_path, monkeypatch, capsys,
                                                        folder):
    monkeypatch.chdir(tmp_path)
    write_image_folder(tmp_path / folder, classes=1, per_class=2)
    assert train(folder, tmp_path / "run") == 2  # read as that folder: one class is too few
    assert f"{folder}: found only 1 class" in capsys.readouterr().err


def test_command_line_paths_and_names_are_text():
    args = build_parser().parse_args(["train-teacher", "--data", "2024", "--precision",
                                      "float32", "--time-budget", "90"])
    config = _config(args)
    assert (config.data.source, config.precision, config.time_budget) == ("2024", "float32", "90")


@pytest.mark.parametrize("budget", ["1:30", "ten", "-5", "0"])
def test_a_bad_time_budget_is_a_config_error(tmp_path, capsys, budget):
    assert train(tmp_path, tmp_path / "run", "--time-budget", budget) == 2
    err = capsys.readouterr().err
    assert f"time_budget: '{budget}' is not a positive duration" in err
    assert "Traceback" not in err


def test_unknown_precision_is_a_config_error(tmp_path, capsys):
    assert train(tmp_path, tmp_path / "run", "--precision", "float8") == 2
    assert "precision: must be one of" in capsys.readouterr().err


def test_a_run_directory_that_cannot_be_written_is_reported_first(tmp_path, capsys):
    images = write_image_folder(tmp_path / "images")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the run directory should be")
    assert train(images, blocked / "run") == 2
    assert "not writable" in capsys.readouterr().err


def test_a_run_directory_without_room_for_checkpoints_is_reported_first(tmp_path):
    from teacher_student.errors import RunDirError
    from teacher_student.run.directory import RunDir

    run_dir = RunDir(tmp_path / "run")
    run_dir.check_writable()  # this disk has room for the usual 200 MB
    petabyte = 2**30
    with pytest.raises(RunDirError, match=r"MB free; checkpoints need at least"):
        run_dir.check_writable(needed_mb=petabyte)


def test_imagenet_weights_without_internet_stop_the_preflight_naming_the_key(tmp_path):
    """A competition's notebook has no internet: Keras' download of the trunk's ImageNet
    weights really fails (nothing in an empty KERAS_HOME, every request sent to a closed local
    port), and the preflight stops with a config error naming the key, the file Keras wanted,
    where it looks for it, and the local-file way; exit status 2, nothing kept."""
    images = write_image_folder(tmp_path / "images", per_class=6)
    keras_home, closed = tmp_path / "keras", "http://127.0.0.1:9"
    env = {key: value for key, value in os.environ.items()
           if key.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    env.update(KERAS_HOME=str(keras_home), https_proxy=closed, HTTPS_PROXY=closed,
               http_proxy=closed, HTTP_PROXY=closed)
    done = subprocess.run(
        [sys.executable, "-m", "teacher_student", "train-teacher", "--data", str(images),
         "--run-dir", str(tmp_path / "run"), "--config", "tiny", "--set",
         "teacher.trunk=MobileNetV3Small", "--set", "teacher.trunk_weights=imagenet"],
        cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = [text for text in done.stderr.splitlines() if text.startswith("config error")]
    file = "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    assert line.startswith("config error: teacher.trunk_weights: imagenet: Keras could not "
                           f"download MobileNetV3Small's ImageNet weights, {file} (")
    assert f"at {keras_home / 'models' / file}, where Keras looks before downloading" in line
    assert f"or give a local weights file as the value: --set teacher.trunk_weights=" \
           f"/path/to/{file}" in line
    assert not (tmp_path / "run" / "config.yaml").exists()
