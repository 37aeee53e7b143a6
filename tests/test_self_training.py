"""Self-training rounds (teacher.self_training) through the real command line: each round is a
step of the plan, learns from the best teacher so far, on the unlabeled images too, and the
student learns from the best of all; a round killed mid-way resumes; what cannot run is
refused before anything trains."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import write_image_folder

from teacher_student import cli
from teacher_student import config as config_module
from teacher_student.config.checks import check_config
from teacher_student.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["data.batch_size=4", "phases.1.epochs=0", "phases.2.epochs=0", "distill.epochs=1",
            "measure_latency=false", "teacher.self_training.rounds=1",
            "teacher.self_training.epochs=1"]


def argv(command: str, run, images, *more: str) -> list[str]:
    sets = [part for setting in [*SETTINGS, *more] for part in ("--set", setting)]
    return [command, "--config", "tiny", "--data", str(images), *sets, "--run-dir", str(run)]


def test_a_round_learns_from_the_teacher_and_the_student_from_the_best(tmp_path, capsys):
    images = write_image_folder(tmp_path / "images")
    unlabeled = write_image_folder(tmp_path / "unlabeled", seed=5)
    run = tmp_path / "run"
    assert cli.main([*argv("train-teacher", run, images, f"data.unlabeled={unlabeled}",
                           "teacher.self_training.stochastic_depth=0.2"),
                     "--no-preflight"]) == 0
    out = capsys.readouterr().out
    assert "with augment light, stochastic depth 0.2" in out
    assert "self-training round 1/1: a fresh network of the teacher's, 1 epoch, learning the " \
           "labels (alpha 0.5) and teacher's soft labels" in out
    assert f"with the unlabeled images of {unlabeled}" in out
    record = json.loads((run / "self_training.json").read_text())
    accuracies = record["val_accuracy"]
    assert set(accuracies) == {"teacher", "teacher_round1"}
    best = "teacher_round1" if accuracies["teacher_round1"] > accuracies["teacher"] else "teacher"
    assert record["teaches"] == best and f"the student learns from {best}" in out
    history = pd.read_csv(run / "teacher" / "round1" / "history.csv")
    assert history["distillation_loss"].iloc[0] > 0  # the soft labels counted
    assert (run / "teacher_round1.keras").exists()

    assert cli.main([*argv("distill", run, images, f"data.unlabeled={unlabeled}",
                           "teacher.self_training.stochastic_depth=0.2",
                           "distill.baseline=false"),
                     "--no-preflight"]) == 0
    out = capsys.readouterr().out
    assert f"from {best}, with the unlabeled images of {unlabeled}" in out
    rows = pd.read_csv(run / "reports" / "comparison.csv").set_index("model")
    assert {"teacher", "teacher_round1", "student_distilled"} <= set(rows.index)
    # The students' agreement is with the teacher they learnt from: it has none of its own.
    assert pd.isna(rows.loc[best, "teacher_agreement"])


@pytest.mark.parametrize("settings, message", [
    (["teacher.self_training.rounds=1", "data.folds=2"], "with data.folds > 1 there are K"),
    (["teacher.self_training.rounds=1", "distill.teachers=[elsewhere]"],
     "the student learns from the listed distill.teachers"),
    (["data.unlabeled=a", "distill.unlabeled=b"], "distill.unlabeled: b differs from "
                                                  "data.unlabeled a"),
    (["teacher.self_training.augment=heavy"], "teacher.self_training.augment: must be one of"),
    (["teacher.self_training.rounds=1", "teacher.self_training.stochastic_depth=0.2",
      "teacher.trunk=MobileNetV3Small"], "teacher.self_training.stochastic_depth: drops the "
                                         "branches of the teacher's own residual stages"),
])
def test_rounds_that_cannot_run_are_refused_naming_the_key(settings, message):
    with pytest.raises(ConfigError, match=message):
        check_config(config_module.load("tiny", settings))


@pytest.mark.slow  # 2 minutes: the preflight, a real SIGKILL in a round, the rest of the job
def test_a_round_killed_mid_way_resumes_after_its_last_epoch(tmp_path):
    images = write_image_folder(tmp_path / "images")
    run = tmp_path / "run"
    command = [sys.executable, "-m", "teacher_student",
               *argv("train-teacher", run, images, "teacher.self_training.epochs=3")]
    log = tmp_path / "first.log"
    with open(log, "w") as stream:  # its preflight checks the round too
        job = subprocess.Popen(command, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT)
    round_folder = run / "teacher" / "round1"
    first_epoch = round_folder / "history.csv"
    deadline = time.monotonic() + 300
    while (not any((round_folder / "resume").glob("epoch-*")) and job.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.2)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert "  self-training round 1/1: " in log.read_text()  # a line of the preflight
    assert first_epoch.exists() and not (run / "teacher_round1.keras").exists()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming round1 after epoch" in done.stdout
    assert "teacher phase 1/3 'warmup': finished earlier, skipped" in done.stdout
    assert list(pd.read_csv(first_epoch)["epoch"]) == [1, 2, 3]
    assert (run / "teacher_round1.keras").exists()
