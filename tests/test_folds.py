"""K-fold teachers (data.folds): each fold's teacher trained and validated on its own part of
the training and validation images, their out-of-fold answers, the teacher the run publishes
(their ensemble), and a student distilled from them; on real files, through the command line."""

from __future__ import annotations

import json

import keras
import pandas as pd
from helpers import write_image_folder

from teacher_student import cli

FOLDS = ["data.folds=2", "data.batch_size=4", "phases.1.epochs=0", "phases.2.epochs=0",
         "distill.baseline=false", "measure_latency=false"]


def test_fold_teachers_answer_out_of_fold_and_teach_the_student_as_one(tmp_path, capsys):
    images = write_image_folder(tmp_path / "images")
    run = tmp_path / "run"
    sets = [part for setting in FOLDS for part in ("--set", setting)]
    assert cli.main(["train-teacher", "--config", "tiny", "--data", str(images), *sets,
                     "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out

    # The preflight checked fold 1's phase; fold 2's, the same models, took its check.
    checked = {step["name"]: step for step in
               json.loads((run / "preflight.json").read_text())["steps"]}
    assert list(checked) == ["fold1_phase1_warmup", "fold2_phase1_warmup", "student_distilled"]
    assert checked["fold2_phase1_warmup"]["first_step_s"] == \
        checked["fold1_phase1_warmup"]["first_step_s"]
    assert "[1/7 fold 1/2 teacher phase 1/3 'warmup'] epoch 1/1" in out
    for fold in (1, 2):
        assert (run / "teacher" / f"fold{fold}" / "phase1_warmup" / "done.json").exists()
        assert (run / f"teacher_fold{fold}.keras").exists()

    # Every training and validation image answered once, by the teacher that never saw it.
    split = pd.read_csv(run / "split.csv")
    learnt = split[split["split"] != "test"]
    oof = pd.read_csv(run / "reports" / "out_of_fold.csv")
    assert sorted(oof["path"]) == sorted(learnt["path"]) and set(oof["fold"]) == {1, 2}
    assert oof[["class_0", "class_1", "class_2"]].sum(axis=1).round(4).eq(1).all()
    assert "out-of-fold accuracy" in out

    teacher = keras.saving.load_model(run / "teacher.keras")  # the folds' ensemble
    assert [layer.name for layer in teacher.layers][-1] == "probability_average"

    assert cli.main(["distill", "--run-dir", str(run), "--no-preflight"]) == 0
    out = capsys.readouterr().out
    assert "from the 2 folds' teachers" in out
    rows = pd.read_csv(run / "reports" / "comparison.csv").set_index("model")
    assert {"teacher_fold1", "teacher_fold2", "teacher", "student_distilled"} <= set(rows.index)
    assert rows.loc["student_distilled", "teacher_agreement"] >= 0

    # A variant of the run (another temperature) is taught by the same folds, not by new ones.
    assert cli.main(["distill", "--run-dir", str(run), "--no-preflight",
                     "--set", "distill.temperature=2"]) == 0
    variants = [path for path in (run / "variants").iterdir() if path.is_dir()]
    assert len(variants) == 1 and "from the 2 folds' teachers" in capsys.readouterr().out
    for fold in (1, 2):
        assert (variants[0] / f"teacher_fold{fold}.keras").read_bytes() == \
            (run / f"teacher_fold{fold}.keras").read_bytes()
    assert not (variants[0] / "teacher").exists()
