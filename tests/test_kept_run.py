"""A run that nothing outside it can corrupt: its split, classes, config and models are its own,
kept by every later job; damage is reported and rebuilt where the run can; a refused command
changes no file of the run directory. Real files, the real command line."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import write_image_folder
from PIL import Image

from teacher_student import cli
from teacher_student.run.directory import RunDir

SETTINGS = ["data.batch_size=4", "phases.1.epochs=0", "phases.2.epochs=0", "distill.epochs=1",
            "measure_latency=false"]


def argv(command: str, run, *more: str) -> list[str]:
    sets = [part for setting in SETTINGS for part in ("--set", setting)]
    return [command, "--config", "tiny", *sets, "--run-dir", str(run), *more]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run with a trained teacher and its images, made once; tests work on copies."""
    root = tmp_path_factory.mktemp("kept")
    images = write_image_folder(root / "images")
    run = root / "run"
    assert cli.main([*argv("train-teacher", run, "--no-preflight"), "--data",
                     str(images)]) == 0
    return images, run


@pytest.fixture
def copy(trained, tmp_path):
    """The trained run and its images copied elsewhere, the run pointing at the copy."""
    images, run = trained
    new_images, new_run = tmp_path / "images", tmp_path / "run"
    shutil.copytree(images, new_images)
    shutil.copytree(run, new_run, ignore=shutil.ignore_patterns(".lock"))
    for name in ("config.yaml", "split.csv"):
        path = new_run / name
        path.write_text(path.read_text().replace(str(images), str(new_images)))
    digest = hashlib.sha256((new_run / "split.csv").read_bytes()).hexdigest()
    (new_run / "split.csv.sha256").write_text(f"{digest}  split.csv\n")
    return new_images, new_run


def snapshot(run) -> dict[str, str]:
    """Every file of the run directory and its content's digest."""
    return {str(path.relative_to(run)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(run.rglob("*")) if path.is_file() and path.name != ".lock"}


def add_image(folder, name: str, value: int = 200):
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 20), (value, value, value)).save(folder / name)


def test_images_added_since_the_split_are_left_out_and_the_split_is_kept(copy, capsys):
    images, run = copy
    split_before = (run / "split.csv").read_bytes()
    for i in range(3):
        add_image(images / "class_0", f"new{i}.png")
    assert cli.main(["evaluate", "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "3 files added to the source since the split was drawn: left out" in out
    assert (run / "split.csv").read_bytes() == split_before
    assert "new0.png" not in (run / "split.csv").read_text()


def test_a_missing_test_image_is_reported_and_a_class_with_none_left_stops_the_job(copy,
                                                                                  capsys):
    images, run = copy
    split = RunDir(run).read_split()
    test = split[split["split"] == "test"]
    Path(test["path"].iloc[0]).unlink()
    assert cli.main(["evaluate", "--run-dir", str(run)]) == 0
    assert "1 file listed in the split but missing or unreadable now" in capsys.readouterr().out
    before = snapshot(run)
    for path in test[test["class_name"] == "class_1"]["path"]:
        Path(path).unlink()
    assert cli.main(["evaluate", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "class 'class_1' has none of its test images" in err and "Traceback" not in err
    assert snapshot(run) == before


def test_a_class_added_after_the_teacher_is_an_error_naming_it_and_changes_nothing(copy,
                                                                                  capsys):
    images, run = copy
    for i in range(4):
        add_image(images / "zebra", f"{i}.png", 40 * i)
    before = snapshot(run)
    assert cli.main([*argv("distill", run, "--no-preflight"), "--data", str(images)]) == 2
    err = capsys.readouterr().err
    assert "new: zebra" in err and "new --run-dir" in err
    assert snapshot(run) == before


def test_a_run_without_its_config_is_an_error_and_changes_nothing(copy, capsys):
    images, run = copy
    (run / "config.yaml").unlink()
    before = snapshot(run)
    assert cli.main([*argv("distill", run, "--no-preflight"), "--data", str(images)]) == 2
    assert "has trained models but no config.yaml" in capsys.readouterr().err
    assert snapshot(run) == before


def test_a_truncated_teacher_is_rebuilt_from_its_checkpoints(copy, capsys):
    _, run = copy
    teacher = run / "teacher.keras"
    teacher.write_bytes(teacher.read_bytes()[:1000])
    assert cli.main(["evaluate", "--run-dir", str(run)]) == 0
    assert f"{teacher} was unreadable" in capsys.readouterr().out
    assert (run / "teacher.keras").stat().st_size > 1000


@pytest.mark.parametrize("cut", ["mid-line", "at a line"])
def test_a_truncated_split_is_an_error_naming_it(copy, capsys, cut):
    _, run = copy
    split = run / "split.csv"
    text = split.read_text()
    split.write_text(text[:30] if cut == "mid-line" else "".join(text.splitlines(True)[:13]))
    before = snapshot(run)
    assert cli.main(["evaluate", "--run-dir", str(run)]) == 2
    assert f"{split} is damaged" in capsys.readouterr().err
    assert snapshot(run) == before


@pytest.mark.parametrize("check", ["--preflight", "--no-preflight"])
def test_a_config_refused_before_training_can_be_corrected_on_the_same_run(tmp_path, capsys,
                                                                          check):
    images = write_image_folder(tmp_path / "images", per_class=6)
    run = tmp_path / "run"
    command = [*argv("train-teacher", run, check), "--data", str(images)]
    # 30 px is not a multiple of the teacher's stride: a config error, whatever checks run.
    assert cli.main([*command, "--set", "data.image_size=30"]) == 2
    assert "data.image_size: 30 must be a multiple of 4" in capsys.readouterr().err
    assert not (run / "config.yaml").exists() and not (run / "split.csv").exists()
    assert cli.main([*command, "--set", "data.image_size=28"]) == 0
    assert "image_size: 28" in (run / "config.yaml").read_text()


def test_ctrl_c_stops_with_one_line_and_status_130(tmp_path):
    images = write_image_folder(tmp_path / "images")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "teacher_student",
               *argv("train-teacher", run, "--no-preflight"), "--data", str(images),
               "--set", "phases.0.epochs=50"]
    with open(tmp_path / "stderr.txt", "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for line in process.stdout:  # the first epoch is saved, the second has started
            if line.startswith("Epoch 2/"):
                break
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=120)
    finally:
        process.kill()
    err = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert RunDir(run).teacher_phase(1, "warmup").resume_points()  # the finished epoch


def test_evaluate_waits_for_no_one_but_refuses_a_run_in_use(copy, capsys):
    _, run = copy
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom teacher_student.run import lock\n"
         "with lock.hold(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)",
         str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(run)
        assert cli.main(["evaluate", "--run-dir", str(run)]) == 2
        assert f"in use by process {holder.pid}" in capsys.readouterr().err
        assert snapshot(run) == before
    finally:
        holder.kill()
        holder.wait()


def test_evaluate_with_tta_adds_each_model_averaged_with_its_mirror(copy, capsys):
    _, run = copy
    assert cli.main(["evaluate", "--run-dir", str(run), "--tta"]) == 0
    out = capsys.readouterr().out
    assert "trained on no mirrored image (data.flip: false)" in out
    rows = pd.read_csv(run / "reports" / "comparison.csv").set_index("model")
    assert {"teacher", "teacher+tta"} <= set(rows.index)
    assert rows.loc["teacher+tta", "params"] == rows.loc["teacher", "params"]
    assert (run / "reports" / "teacher+tta_confusion.png").exists()
