"""A session that never loses a run: one process per run directory, and the time budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import pytest
from helpers import write_image_folder

from teacher_student import config as cfg
from teacher_student import jobs
from teacher_student.config.values import parse_duration
from teacher_student.errors import ConfigError, TimeBudgetReached
from teacher_student.run import lock
from teacher_student.run.directory import RunDir

HOLD = """
import sys, time
from teacher_student.run import lock
with lock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_second_process_on_a_locked_run_dir_stops_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.run(
            [sys.executable, "-m", "teacher_student", "train-teacher", "--config", "tiny",
             "--run-dir", str(run)], capture_output=True, text=True, timeout=300)
        assert second.returncode == 2
        assert f"in use by process {holder.pid}" in second.stderr
        assert holder.poll() is None  # the first goes on
        assert not (run / "config.yaml").exists()  # the second touched nothing
    finally:
        holder.kill()
        holder.wait()
    # The lock of a killed process is gone with it; its note is overwritten.
    with lock.hold(run):
        assert json.loads((run / lock.LOCK_FILE).read_text())["pid"] == os.getpid()


def test_the_lock_is_free_again_after_the_job(tmp_path):
    with lock.hold(tmp_path):
        pass
    with lock.hold(tmp_path):  # the same process, again: a notebook's next cell
        pass


def test_time_budget_stops_between_epochs_and_reruns_end_like_an_uninterrupted_run(tmp_path):
    images = write_image_folder(tmp_path / "images")
    config = cfg.load("tiny", [f"data.source={images}", "data.batch_size=4",
                               "phases.0.epochs=2", "time_budget=1s"])
    run_dir = RunDir(tmp_path / "run")
    stops = 0
    while True:  # each run: one epoch, then the next would not fit in one second
        try:
            jobs.train_teacher(config, run_dir, preflight=False)
            break
        except TimeBudgetReached as stop:
            assert "Run the same command again" in str(stop)
            assert json.loads(run_dir.status_file.read_text())["state"] == "stopped for time"
            stops += 1
            assert stops < 5
    assert stops == 3  # after phase 1's first epoch, before phase 2, before phase 3
    for index, phase in enumerate(config.phases, start=1):
        history = run_dir.teacher_phase(index, phase.name).read_history()
        assert history["epoch"].tolist() == list(range(1, phase.epochs + 1))
    status = json.loads(run_dir.status_file.read_text())
    assert (status["state"], status["step_number"], status["epoch"]) == ("done", 3, 1)
    assert status["overall"] == pytest.approx(4 / 6, abs=1e-4)  # 2+1+1 of 2+1+1+1+1 epochs


@pytest.mark.parametrize("text, seconds", [("11h30m", 41400), ("90m", 5400), ("3600", 3600),
                                           ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0", "-5m"])
def test_a_bad_time_budget_is_a_config_error_naming_the_key(text):
    with pytest.raises(ConfigError, match="^time_budget"):
        cfg.load("tiny", [f"time_budget={text}"])


def test_a_truncated_last_keras_is_set_aside_and_the_run_resumes_from_the_epoch_before(
        tmp_path, capsys):
    images = write_image_folder(tmp_path / "images")
    settings = [f"data.source={images}", "data.batch_size=4", "phases.0.epochs=3",
                "phases.1.epochs=0", "phases.2.epochs=0"]
    run_dir = RunDir(tmp_path / "run")
    phase = run_dir.teacher_phase(1, "warmup")
    for _ in range(2):  # one epoch per run: two resume points
        with pytest.raises(TimeBudgetReached):
            jobs.train_teacher(cfg.load("tiny", [*settings, "time_budget=1s"]), run_dir,
                               preflight=False)
    assert [p.name for p in phase.resume_points()] == ["epoch-0001", "epoch-0002"]
    content = phase.last_model.read_bytes()
    phase.last_model.write_bytes(content[:len(content) // 2])  # a copy cut short
    capsys.readouterr()

    jobs.train_teacher(cfg.load("tiny", settings), run_dir, preflight=False)

    out = capsys.readouterr().out
    assert f"{phase.last_model} cannot be read" in out
    assert "resuming phase1_warmup after epoch 1/3" in out
    assert sorted(p.name for p in (phase.path / "set_aside").iterdir()) == [
        "epoch-0002", "last.keras"]
    assert phase.read_history()["epoch"].tolist() == [1, 2, 3]
    keras.saving.load_model(phase.last_model)  # written again, whole


def test_the_first_epoch_of_a_process_is_checked_against_the_preflights_estimate(tmp_path):
    from teacher_student.training.steps import plan_steps
    from teacher_student.training.timekeeping import Timekeeper

    steps = plan_steps(cfg.load("tiny"), RunDir(tmp_path))
    clock = Timekeeper(steps, tmp_path / "status.json", budget_s=60)
    clock.check_room(steps[0].name)  # nothing measured yet: nothing to hold it against
    clock.expect(steps[0].name, 120.0)  # what the preflight measured on this machine
    with pytest.raises(TimeBudgetReached, match="before teacher phase 1/3 'warmup'"):
        clock.check_room(steps[0].name)
    clock.check_room(steps[1].name)
