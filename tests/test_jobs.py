"""The main job end to end on a real image folder: train-teacher, distill, evaluate, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile

import h5py
import pandas as pd
import pytest
from helpers import write_image_folder

from teacher_student import config as cfg
from teacher_student import jobs
from teacher_student.config import ConfigError
from teacher_student.run.config import resolve_run_config
from teacher_student.run.directory import RunDir

TINY = ["data.batch_size=4", "distill.epochs=2", "measure_latency=false"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny run of both jobs, shared by the tests that read what it wrote."""
    root = tmp_path_factory.mktemp("job")
    images = write_image_folder(root / "images")
    config = cfg.load("tiny", [f"data.source={images}", *TINY])
    run_dir = root / "run"
    # The preflight has its own tests (tests/training/test_preflight.py).
    teacher_row = jobs.train_teacher(config, RunDir(run_dir), preflight=False)
    rows = jobs.distill(config, RunDir(run_dir), preflight=False)
    return config, run_dir, teacher_row, rows


def test_teacher_phases_leave_checkpoints_history_and_a_final_model(trained_run):
    _, run_dir, teacher_row, _ = trained_run
    for phase in ("phase1_warmup", "phase2_main", "phase3_finetune"):
        folder = run_dir / "teacher" / phase
        for name in ("last.keras", "best.keras", "history.csv", "done.json"):
            assert (folder / name).exists(), f"{phase}/{name}"
        assert len(pd.read_csv(folder / "history.csv")) == 1
    assert (run_dir / "teacher.keras").exists()
    assert 0 <= teacher_row["accuracy"] <= 1


def test_run_directory_holds_config_split_and_reports(trained_run):
    config, run_dir, _, rows = trained_run
    saved = cfg.load(run_dir / "config.yaml")
    assert saved.teacher.num_classes == 3 and saved.teacher.input_shape == (32, 32, 3)
    split = pd.read_csv(run_dir / "split.csv")
    assert set(split["split"]) == {"train", "val", "test"} and len(split) == 36
    reports = run_dir / "reports"
    for name in ("teacher", "student_scratch", "student_distilled"):
        assert (reports / f"{name}_confusion.png").read_bytes()[:4] == b"\x89PNG"
        assert (reports / f"{name}_classification_report.txt").exists()
    assert (reports / "teacher_curves.png").exists()
    comparison = pd.read_csv(reports / "comparison.csv")
    assert list(comparison["model"]) == ["teacher", "student_scratch", "student_distilled",
                                        "always the majority class"]
    # The job returns the comparison as rows: the same as the file it wrote.
    assert [row["model"] for row in rows] == list(comparison["model"])
    assert [row["accuracy"] for row in rows] == pytest.approx(list(comparison["accuracy"]))


def test_rerun_skips_finished_work(trained_run, capsys):
    config, run_dir, _, _ = trained_run
    models = [run_dir / f"{name}.keras" for name in ("teacher", "student_distilled",
                                                    "student_scratch")]
    before = [(path.stat().st_mtime_ns, path.read_bytes()) for path in models]
    jobs.distill(config, RunDir(run_dir), preflight=False)
    out = capsys.readouterr().out
    assert "Epoch" not in out  # nothing was trained again
    assert "distillation: finished earlier, skipped" in out
    # Published once: the models are not written again (their digests key what was measured).
    assert [(path.stat().st_mtime_ns, path.read_bytes()) for path in models] == before


def test_a_rerun_publishes_again_a_finished_steps_model_that_is_gone(trained_run, capsys):
    config, run_dir, _, rows = trained_run
    (run_dir / "student_scratch.keras").unlink()
    again = jobs.distill(config, RunDir(run_dir), preflight=False)
    out = capsys.readouterr().out
    assert "baseline: finished earlier, skipped" in out and "Epoch" not in out
    assert zipfile.ZipFile(run_dir / "student_scratch.keras").testzip() is None
    accuracy = {row["model"]: row["accuracy"] for row in again}
    assert accuracy == pytest.approx({row["model"]: row["accuracy"] for row in rows})


def test_another_config_on_an_existing_run_is_an_error_naming_the_key(trained_run):
    config, run_dir, _, _ = trained_run
    changed = cfg.apply_overrides(config, ["teacher.fusion_width=16"])
    with pytest.raises(ConfigError, match="teacher.fusion_width: differs"):
        jobs.train_teacher(changed, RunDir(run_dir), preflight=False)


def test_precision_and_xla_may_change_on_an_existing_run(trained_run):
    config, run_dir, _, _ = trained_run
    changed = cfg.apply_overrides(config, ["precision=mixed_float16", "jit_compile=false"])
    resolved = resolve_run_config(changed, RunDir(run_dir))
    assert resolved.precision == "mixed_float16" and resolved.jit_compile is False
    assert resolved.teacher == cfg.load(run_dir / "config.yaml").teacher


def _command(images, run_dir) -> list[str]:
    return [sys.executable, "-m", "teacher_student", "train-teacher", "--config", "tiny",
            "--data", str(images), "--run-dir", str(run_dir), "--no-preflight",
            "--set", "data.batch_size=4",
            "--set", "phases.1.epochs=6", "--set", "phases.2.epochs=0",
            "--set", "jit_compile=true"]  # a real job under XLA, killed and resumed


@pytest.mark.slow  # 160 s; tests/training/test_interruptions.py kills mid-phase in CI
def test_sigkill_in_phase_two_then_rerun_resumes_in_phase_two(tmp_path):
    images = write_image_folder(tmp_path / "images")
    run_dir = tmp_path / "run"
    phase2 = run_dir / "teacher" / "phase2_main"
    process = subprocess.Popen(_command(images, run_dir), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not (phase2 / "resume" / "epoch-0002").exists():
            assert process.poll() is None, "training ended before it could be interrupted"
            assert time.time() < deadline, "phase 2 never reached epoch 2"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (phase2 / "done.json").exists()

    rerun = subprocess.run(_command(images, run_dir), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "teacher phase 1/3 'warmup': finished earlier, skipped" in rerun.stdout
    resumed_after = int(rerun.stdout.split("resuming phase2_main after epoch ")[1].split("/")[0])
    assert resumed_after >= 2
    history = pd.read_csv(phase2 / "history.csv")
    assert list(history["epoch"]) == list(range(1, 7))  # every epoch once, none lost
    assert (run_dir / "teacher" / "phase3_finetune" / "done.json").exists()
    assert (run_dir / "teacher.keras").exists()


def test_saved_models_carry_weights_but_no_optimizer_state(trained_run):
    _, run_dir, _, _ = trained_run
    for name in ("teacher.keras", "student_distilled.keras", "teacher/phase2_main/best.keras"):
        with zipfile.ZipFile(run_dir / name) as archive:
            with h5py.File(archive.open("model.weights.h5"), "r") as weights:
                assert "optimizer" not in weights, name


def test_bench_runs_times_every_step_of_the_plan(trained_run):
    from teacher_student.bench import runs

    _, run_dir, _, _ = trained_run
    rows = runs.step_rows(RunDir(run_dir))
    assert [row["step"] for row in rows] == [
        "teacher phase 1/3 'warmup'", "teacher phase 2/3 'main'", "teacher phase 3/3 'finetune'",
        "distillation", "baseline"]
    assert [row["epochs"] for row in rows] == [1, 1, 1, 2, 2]
    assert all(row["total_s"] > 0 and row["images_per_s"] > 0 for row in rows)
    # What the first epoch cost beyond a later one needs a later one.
    assert [row["compile_s"] is not None for row in rows] == [False, False, False, True, True]
