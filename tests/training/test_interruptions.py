"""Interrupted runs: a real training subprocess is SIGKILLed at several points, then rerun.

Kill points: mid-epoch in each teacher phase, mid-epoch in distillation, and during a checkpoint
write (the process group is frozen with SIGSTOP the moment a temporary file or folder shows up,
then killed). Each time the same command is run again, and it must resume at the right phase
and epoch, finish, leave no temporary entry and no unreadable model, and end with metrics in
line with an uninterrupted run of the same configuration (shared by the module).

XLA is off here (`jit_compile=false`) to keep the runs short: resuming does not depend on it,
and tests/test_jobs.py kills a run under XLA.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras
import pandas as pd
import pytest
from helpers import write_image_folder

PHASES = ("phase1_warmup", "phase2_main", "phase3_finetune")
PHASE_NAMES = ("warmup", "main", "finetune")
EPOCHS = 3  # in every teacher phase: an epoch to kill in, and one after the resumed one
DISTILL_EPOCHS = 4
PER_CLASS = 20  # 60 images: 42 train, 9 val, 9 test
SETTINGS = [
    "data.batch_size=4",
    "measure_latency=false",
    "jit_compile=false",
    *(f"phases.{i}.epochs={EPOCHS}" for i in range(3)),
    # High enough for the tiny teacher to learn the task in a few epochs, so that the test
    # accuracies of two runs can be compared.
    "phases.0.learning_rate=0.01",
    "phases.1.learning_rate=0.01",
    "phases.2.learning_rate=0.003",
    f"distill.epochs={DISTILL_EPOCHS}",
]
ACCURACY_TOLERANCE = 0.2
WAIT_S = 600  # for a file to appear: a generous bound for a loaded machine, not a timing check
CPU_INTO_EPOCH_S = 0.5  # CPU time the process runs after an epoch's checkpoint, before the kill


# --------------------------------------------------------------------------- the harness


def _command(job: str, images: Path, run_dir: Path) -> list[str]:
    command = [sys.executable, "-m", "teacher_student", job, "--config", "tiny",
               "--data", str(images), "--run-dir", str(run_dir), "--no-preflight"]
    for setting in SETTINGS:
        command += ["--set", setting]
    return command


def _start(command: list[str], log: Path) -> subprocess.Popen:
    """The job in its own process group, its output in `log` (a pipe nobody reads could fill)."""
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _rerun(command: list[str]) -> str:
    """Runs `command` to the end; its stdout."""
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, (rerun.stdout[-2000:], rerun.stderr[-3000:])
    return rerun.stdout


def _wait_for(condition, process: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert process.poll() is None, f"the run ended before {what}:\n{_tail(log)}"
        assert time.monotonic() < deadline, f"no {what} after {WAIT_S} s:\n{_tail(log)}"
        time.sleep(0.02)


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of the process, all its threads together."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _let_run(process: subprocess.Popen, cpu_seconds: float, log: Path) -> None:
    """Lets the process work `cpu_seconds` more: into the next epoch, whatever the load."""
    start = _cpu_seconds(process.pid)
    deadline = time.monotonic() + WAIT_S
    while _cpu_seconds(process.pid) - start < cpu_seconds:
        assert process.poll() is None, f"the run ended before it could be killed:\n{_tail(log)}"
        assert time.monotonic() < deadline, "the process does not run"
        time.sleep(0.01)


def _has_resume_point(folder: Path):
    return lambda: any((folder / "resume").glob("epoch-*"))


def _kill_after_first_epoch(command: list[str], folder: Path, log: Path,
                            cpu_seconds: float = CPU_INTO_EPOCH_S) -> None:
    """Starts `command`, waits for `folder`'s first resume point, lets the next epoch begin and
    SIGKILLs the process group."""
    process = _start(command, log)
    try:
        _wait_for(_has_resume_point(folder), process, f"resume point in {folder}", log)
        _let_run(process, cpu_seconds, log)
    finally:
        _kill(process)


def _resumed_after(stdout: str, folder_name: str) -> int:
    """The epoch after which the rerun continued `folder_name` (it must say so once)."""
    found = re.findall(rf"resuming {folder_name} after epoch (\d+)/(\d+)", stdout)
    assert len(found) == 1, f"expected one 'resuming {folder_name}' line in:\n{stdout[-3000:]}"
    return int(found[0][0])


def _history(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "history.csv")


def _optimizer_steps(folder: Path) -> int:
    """The optimizer's step counter in the phase's latest resume point: it counts every step
    of the phase only if a resumed run continued with the saved optimizer state."""
    points = sorted((folder / "resume").glob("epoch-*"))
    assert points, f"no resume point in {folder}"
    with h5py.File(points[-1] / "state.weights.h5", "r") as state:
        iterations = state["optimizer"]["vars"]["0"][()]
    assert getattr(iterations, "shape", ()) == (), "the first optimizer variable is not a scalar"
    return int(iterations)


def _teacher_accuracy(stdout: str) -> float:
    found = re.findall(r"teacher test accuracy ([\d.]+)%", stdout)
    assert found, f"no teacher test accuracy in:\n{stdout[-3000:]}"
    return float(found[-1]) / 100


def _temporaries(folders: list[Path]) -> list[Path]:
    found = []
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                found += [Path(e.path) for e in entries if e.name.startswith(".tmp-")]
        except FileNotFoundError:
            pass
    return found


def _assert_every_model_loads(root: Path) -> list[Path]:
    models = sorted(p for p in root.rglob("*.keras") if not p.name.startswith(".tmp-"))
    for path in models:
        keras.saving.load_model(path, safe_mode=True)
    return models


@dataclass(frozen=True)
class Reference:
    """The uninterrupted run every interrupted one is compared with."""

    images: Path
    run_dir: Path
    accuracy: float
    optimizer_steps: tuple[int, ...]  # per teacher phase, at its end


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    """One uninterrupted train-teacher run, shared by the module, and by the workers of
    pytest-xdist (under a lock: the first to arrive runs it, the others read its result)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "interruptions-reference"
    with open(shared / "interruptions-reference.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        images, run_dir = root / "images", root / "run"
        result = root / "teacher_accuracy.txt"
        if not result.exists():
            shutil.rmtree(root, ignore_errors=True)
            write_image_folder(images, per_class=PER_CLASS)
            stdout = _rerun(_command("train-teacher", images, run_dir))
            assert "resuming" not in stdout
            result.write_text(str(_teacher_accuracy(stdout)))
    steps = tuple(_optimizer_steps(run_dir / "teacher" / p) for p in PHASES)
    return Reference(images, run_dir, float(result.read_text()), steps)


def _run_killed_as_phase_starts(reference: Reference, run_dir: Path, phase: int) -> None:
    """`run_dir` as a run of the reference's command leaves it when killed just as teacher phase
    `phase` starts: its config, split and finished earlier phases (the reference's, unchanged),
    nothing of later phases, no final model, no reports. Spares rerunning finished phases.
    For phase 1, `run_dir` is left as it is: not there, and the run starts from nothing."""
    if phase == 1:
        return
    run_dir.mkdir()
    for name in ("config.yaml", "split.csv", "skipped_files.csv"):
        shutil.copy2(reference.run_dir / name, run_dir / name)
    for name in PHASES[:phase - 1]:
        shutil.copytree(reference.run_dir / "teacher" / name, run_dir / "teacher" / name)


# --------------------------------------------------------------------------- the kill points


@pytest.mark.parametrize("phase", [pytest.param(1, marks=pytest.mark.slow),
                                   pytest.param(2, marks=pytest.mark.slow), 3])
def test_sigkill_mid_epoch_in_a_teacher_phase_then_rerun_resumes_there(
        phase, reference, tmp_path):
    run_dir = tmp_path / "run"
    _run_killed_as_phase_starts(reference, run_dir, phase)
    folders = [run_dir / "teacher" / name for name in PHASES]
    folder = folders[phase - 1]
    command = _command("train-teacher", reference.images, run_dir)
    _kill_after_first_epoch(command, folder, tmp_path / "killed.log")
    assert not (folder / "done.json").exists(), "the phase finished before the kill"
    for earlier in folders[:phase - 1]:
        assert (earlier / "done.json").exists()
    for later in folders[phase:]:
        assert not (later / "done.json").exists()
    assert not (run_dir / "teacher.keras").exists()

    stdout = _rerun(command)

    resumed = _resumed_after(stdout, folder.name)
    print(f"rerun resumed {folder.name} after epoch {resumed}/{EPOCHS}")
    assert 1 <= resumed < EPOCHS, f"resumed after epoch {resumed}, not within the phase"
    assert stdout.count("resuming") == 1  # only the interrupted phase continues
    for index in range(1, phase):
        assert (f"teacher phase {index}/3 '{PHASE_NAMES[index - 1]}': finished earlier, skipped"
                in stdout)
    assert f"teacher phase {phase}/3 '{PHASE_NAMES[phase - 1]}': {EPOCHS} epochs" in stdout
    for each in folders:  # every epoch once, none lost, none repeated
        assert list(_history(each)["epoch"]) == list(range(1, EPOCHS + 1)), each.name
        assert (each / "done.json").exists()
    assert (run_dir / "teacher.keras").exists()
    # The optimizer state came back: its step counter went on from the saved one; a fresh
    # optimizer would count only the steps taken after the resume.
    assert _optimizer_steps(folder) == reference.optimizer_steps[phase - 1]
    # The weights came back: a restart from freshly initialised weights (same seed, same data
    # order in a new process) would repeat the phase's untrained first-epoch loss exactly.
    first_loss = _history(folders[0])["loss"].iloc[0]
    resumed_loss = _history(folder)["loss"].iloc[resumed]  # the first epoch after the resume
    assert resumed_loss < first_loss
    assert _history(folders[-1])["loss"].iloc[-1] < first_loss
    # In line with the uninterrupted run (9 test images: the tolerance is one or two of them).
    accuracy = _teacher_accuracy(stdout)
    assert abs(accuracy - reference.accuracy) <= ACCURACY_TOLERANCE, (accuracy, reference)


@pytest.mark.slow
def test_sigkill_mid_epoch_in_distillation_then_rerun_resumes_the_distilled_student(
        reference, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference.run_dir, run_dir)  # the trained teacher, left as it is
    teacher_bytes = (run_dir / "teacher.keras").read_bytes()
    distilled, scratch = run_dir / "student_distilled", run_dir / "student_scratch"
    command = _command("distill", reference.images, run_dir)
    # A distillation epoch of the 795-parameter student is short: kill soon after the first.
    _kill_after_first_epoch(command, distilled, tmp_path / "killed.log", cpu_seconds=0.2)
    assert not (distilled / "done.json").exists(), "distillation finished before the kill"
    assert not (scratch / "done.json").exists()

    stdout = _rerun(command)

    resumed = _resumed_after(stdout, "student_distilled")
    print(f"rerun resumed student_distilled after epoch {resumed}/{DISTILL_EPOCHS}")
    assert 1 <= resumed < DISTILL_EPOCHS, f"resumed after epoch {resumed}"
    assert "resuming student_scratch" not in stdout and "teacher phase" not in stdout
    for folder in (distilled, scratch):
        assert list(_history(folder)["epoch"]) == list(range(1, DISTILL_EPOCHS + 1))
        assert (folder / "done.json").exists()
    assert (run_dir / "student_distilled.keras").exists()
    assert (run_dir / "student_scratch.keras").exists()
    assert (run_dir / "teacher.keras").read_bytes() == teacher_bytes
    steps_per_epoch = reference.optimizer_steps[0] // EPOCHS
    assert _optimizer_steps(distilled) == DISTILL_EPOCHS * steps_per_epoch
    assert _optimizer_steps(scratch) == DISTILL_EPOCHS * steps_per_epoch
    comparison = pd.read_csv(run_dir / "reports" / "comparison.csv")
    assert list(comparison["model"]) == ["teacher", "student_scratch", "student_distilled",
                                        "always the majority class"]
    teacher_row = comparison[comparison["model"] == "teacher"].iloc[0]
    assert teacher_row["accuracy"] == pytest.approx(reference.accuracy, abs=1e-6)
    _assert_every_model_loads(run_dir)


def test_sigkill_mid_epoch_in_distillation_with_unlabeled_images_resumes_exactly(
        reference, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference.run_dir, run_dir)
    # 18 images of their own (the same seed would repeat labeled ones), no labels read
    unlabeled = write_image_folder(tmp_path / "unlabeled", per_class=6, seed=2)
    command = [*_command("distill", reference.images, run_dir),
               "--set", f"distill.unlabeled={unlabeled}", "--set", "distill.baseline=false"]
    distilled = run_dir / "student_distilled"
    _kill_after_first_epoch(command, distilled, tmp_path / "killed.log", cpu_seconds=0.2)
    assert not (distilled / "done.json").exists(), "distillation finished before the kill"
    before_kill = _history(distilled)

    stdout = _rerun(command)

    resumed = _resumed_after(stdout, "student_distilled")
    assert 1 <= resumed < DISTILL_EPOCHS, f"resumed after epoch {resumed}"
    assert f"unlabeled images {unlabeled}: 18 used" in stdout
    history = _history(distilled)
    assert list(history["epoch"]) == list(range(1, DISTILL_EPOCHS + 1))
    # The epochs before the kill are kept as they were, and every epoch stepped over the
    # labeled training images and the unlabeled ones, once.
    pd.testing.assert_frame_equal(history.iloc[:resumed], before_kill.iloc[:resumed])
    split = pd.read_csv(run_dir / "split.csv")
    train = int((split["split"] == "train").sum())
    assert _optimizer_steps(distilled) == DISTILL_EPOCHS * ((train + 18) // 4)
    assert (run_dir / "student_distilled.keras").exists()
    assert not (run_dir / "student_scratch").exists()


def _freeze_during_a_write(process: subprocess.Popen, folders: list[Path], finished,
                           log: Path) -> Path:
    """Polls `folders` for a temporary entry and stops the process group the moment one is
    seen; returns an entry that still exists once the group is stopped (the write is then
    frozen half-way). Gives up when `finished()` (the phase ended) without having caught one."""
    deadline = time.monotonic() + WAIT_S
    while not finished():
        assert process.poll() is None, f"the run ended:\n{_tail(log)}"
        assert time.monotonic() < deadline, f"no write caught after {WAIT_S} s"
        if _temporaries(folders):
            os.killpg(process.pid, signal.SIGSTOP)
            caught = _temporaries(folders)
            if caught:
                return caught[0]
            os.killpg(process.pid, signal.SIGCONT)  # the write ended in between: next one
        time.sleep(0.001)
    pytest.fail(f"no checkpoint write could be caught in {EPOCHS - 1} epochs of {folders[0]} "
                "(every .tmp-* entry was gone before the process stopped)")


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_checkpoint(reference, tmp_path):
    run_dir = tmp_path / "run"
    _run_killed_as_phase_starts(reference, run_dir, 3)
    folder = run_dir / "teacher" / PHASES[2]
    command = _command("train-teacher", reference.images, run_dir)
    log = tmp_path / "killed.log"
    process = _start(command, log)
    try:
        # After the first epoch's checkpoint: the write to catch then replaces a previous one.
        _wait_for(_has_resume_point(folder), process, f"resume point in {folder}", log)
        caught = _freeze_during_a_write(process, [folder, folder / "resume"],
                                        (folder / "done.json").exists, log)
    finally:
        _kill(process)
    assert caught.exists(), f"{caught} vanished after the kill"
    print(f"killed while writing {caught.relative_to(run_dir)}")
    assert not (folder / "done.json").exists()
    # What the killed run left under its real names is whole: models load, resume points
    # have both their files. The half-written entry is only under its temporary name.
    _assert_every_model_loads(folder)
    for point in (folder / "resume").glob("epoch-*"):
        assert {p.name for p in point.iterdir()} == {"state.weights.h5", "progress.json"}
    saved_epochs = [int(p.name.split("-")[1]) for p in (folder / "resume").glob("epoch-*")]

    stdout = _rerun(command)

    assert saved_epochs, "the previous resume point is gone"
    resumed = _resumed_after(stdout, folder.name)
    print(f"rerun resumed {folder.name} after epoch {resumed}/{EPOCHS}")
    assert resumed == max(saved_epochs)
    assert _optimizer_steps(folder) == reference.optimizer_steps[2]
    assert "teacher phase 2/3 'main': finished earlier, skipped" in stdout
    assert not list(run_dir.rglob(".tmp-*")), "temporary entries left after the rerun"
    models = _assert_every_model_loads(run_dir)
    assert run_dir / "teacher.keras" in models
    assert folder / "last.keras" in models and folder / "best.keras" in models
    for name in PHASES:
        assert list(_history(run_dir / "teacher" / name)["epoch"]) == list(range(1, EPOCHS + 1))
    accuracy = _teacher_accuracy(stdout)
    assert abs(accuracy - reference.accuracy) <= ACCURACY_TOLERANCE, (accuracy, reference)
