"""Exports of a real trained tiny student: every format written, run and checked against Keras,
every one answering probabilities; and `predict` on real image files, good and bad, with every
format, test-time augmentation included."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import TINY_STUDENT, write_image_folder

from teacher_student import cli
from teacher_student import config as config_module
from teacher_student.data.decoding import Decoding
from teacher_student.data.images import decode_all
from teacher_student.data.labeled import read_source
from teacher_student.data.splits import split_table
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.student import build_student
from teacher_student.outputs import convert, export, predict, reports
from teacher_student.outputs.metrics import softmax
from teacher_student.run.directory import RunDir

FORMATS = ("keras", "savedmodel", "tflite_float32", "tflite_float16", "tflite_int8", "onnx")
EXPORTED_FILES = ("student_distilled.keras", "student_distilled_savedmodel/saved_model.pb",
                  "student_distilled_float32.tflite", "student_distilled_float16.tflite",
                  "student_distilled_int8.tflite", "student_distilled.onnx",
                  "student_distilled_meta.json", "exports.csv", "exports.md")
CLASSES = ["class_0", "class_1", "class_2"]


def trained_student(policy: PrecisionPolicy, images: np.ndarray,
                    labels: np.ndarray) -> keras.Model:
    """A tiny student fitted until its predictions differ from image to image."""
    keras.utils.set_random_seed(0)
    student = build_student(TINY_STUDENT, policy)
    student.compile(optimizer=policy.wrap_optimizer(keras.optimizers.Adam(3e-3)),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    jit_compile=False)
    student.fit(images, labels, batch_size=8, epochs=15, verbose=0)
    return student


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run directory as distill leaves it (config, split, trained student), then exported."""
    root = tmp_path_factory.mktemp("export")
    folder = write_image_folder(root / "images", per_class=24)
    config = config_module.load(None, [f"data.source={folder}", "data.image_size=32",
                                       "data.channels=3"]).with_dataset(3)
    run = RunDir(root / "run")
    run.write_config(config_module.to_yaml(config))
    table = read_source(str(folder), Decoding(32, 3))
    splits = split_table(table, val_fraction=0.15, test_fraction=0.3, seed=0)
    run.write_split(splits, table.class_names)
    images, labels = export.load_split_images(run.read_split(), "train", 32, 3)
    student = trained_student(PrecisionPolicy("float32"), images, labels)
    run.save_model(student, "student_distilled")
    table = export.export_run(run)
    run_dir = run.path
    rows = pd.read_csv(run_dir / "export" / "exports.csv").set_index("format")
    return run_dir, table, rows, (images, labels)


def test_every_format_is_written_with_its_meta(tiny_run):
    run_dir, table, rows, _ = tiny_run
    for name in EXPORTED_FILES:
        assert (run_dir / "export" / name).exists(), name
    assert list(rows.index) == list(FORMATS)
    meta = json.loads((run_dir / "export" / "student_distilled_meta.json").read_text())
    assert meta["class_names"] == ["class_0", "class_1", "class_2"]
    assert (meta["image_size"], meta["channels"], meta["input_dtype"]) == (32, 3, "uint8")
    keras_file = run_dir / "export" / "student_distilled.keras"
    assert meta["formats"]["keras"] == {"file": keras_file.name, "output": "probabilities",
                                        "sha256": hashlib.sha256(keras_file.read_bytes())
                                        .hexdigest()}
    assert {entry["output"] for entry in meta["formats"].values()} == {"probabilities"}
    assert "student_distilled (tflite int8)" in table


def test_float_exports_match_keras(tiny_run):
    _, _, rows, _ = tiny_run
    for name in ("keras", "savedmodel", "tflite_float32", "onnx"):
        assert rows.loc[name, "agreement"] == 1.0, name
        assert rows.loc[name, "max_prob_diff"] < 1e-4, name
    assert rows.loc["tflite_float16", "agreement"] >= 0.99
    assert rows.loc["tflite_float16", "max_prob_diff"] < 1e-2


def test_int8_export_is_full_integer_with_uint8_input(tiny_run):
    run_dir, _, rows, _ = tiny_run
    int8 = rows.loc["tflite_int8"]
    assert 0.0 <= int8["agreement"] <= 1.0
    assert int8["agreement"] >= 0.8
    assert (rows["latency_ms"] > 0).all() and (rows["accuracy"] > 0.5).all()
    interpreter = predict.tflite_interpreter(run_dir / "export" / "student_distilled_int8.tflite")
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    tensor_types = {detail["dtype"] for detail in interpreter.get_tensor_details()}
    assert np.int8 in tensor_types and np.float16 not in tensor_types


def test_exports_join_the_comparison_table(tiny_run):
    run_dir, _, _, _ = tiny_run
    comparison = pd.read_csv(run_dir / "reports" / "comparison.csv")
    assert "student_distilled (tflite float16)" in set(comparison["model"])
    assert {"agreement", "max_prob_diff"} <= set(comparison.columns)
    # A second export replaces its rows instead of adding more.
    rows = comparison.to_dict("records")
    reports.add_to_comparison(rows[:1], run_dir / "reports")
    assert len(pd.read_csv(run_dir / "reports" / "comparison.csv")) == len(rows)


def test_exporting_the_same_model_again_keeps_its_files(tiny_run, tmp_path, capsys):
    """A resumed session exports the same student again: the files are checked and kept (their
    latencies, kept by digest, are not measured twice); another model, or a damaged file, is
    exported anew."""
    run_dir, table, _, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    folder = copy / "export"
    written = {path: path.stat().st_mtime_ns for path in folder.glob("student_distilled*")}
    assert export.export_run(RunDir(copy)) == table
    assert "student_distilled: exported before from the same model, the files kept" in \
        capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in written} == written
    source = json.loads((folder / "student_distilled_meta.json").read_text())["source_sha256"]
    assert source == predict.content_digest(copy / "student_distilled.keras")
    assert export.kept_exports(folder, "student_distilled", source) is not None
    assert export.kept_exports(folder, "student_distilled", "0" * 64) is None
    (folder / "student_distilled_int8.tflite").write_bytes(b"cut short")
    assert export.kept_exports(folder, "student_distilled", source) is None


def test_predict_classifies_good_files_and_reports_bad_ones(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    folder = write_image_folder(tmp_path / "new", per_class=2)
    (folder / "class_1" / "broken.png").write_bytes(b"not an image")
    model = run_dir / "export" / "student_distilled_int8.tflite"
    assert cli.main(["predict", str(folder), "--model", str(model), "--top", "2", "--ids",
                     "path", "--print"]) == 0
    out, err = capsys.readouterr()
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert len(lines) == 6
    for image_id, first, p1, second, p2 in lines:
        assert image_id.startswith("class_") and image_id.endswith(".png")
        assert {first, second} <= {"class_0", "class_1", "class_2"}
        assert 1.0 >= float(p1) >= float(p2) >= 0.0
    assert "skipped class_1/broken.png: cannot decode" in err  # --print names each
    # beside the model, named after the folder: the same answers
    written = pd.read_csv(model.parent / "predictions" / "new.csv")
    assert list(written.columns) == ["id", "label"]
    assert written.values.tolist() == [[image_id, f"{first} {second}"]
                                       for image_id, first, _, second, _ in lines]
    assert err.splitlines()[-1].startswith(
        f"6 predictions written to {model.parent / 'predictions' / 'new.csv'} (id: the path "
        "relative to the input folder); 1 skipped: class_1/broken.png (cannot decode: ")


def test_predict_says_one_line_at_the_end_and_refuses_shared_ids(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    folder = write_image_folder(tmp_path / "test", per_class=2)
    model = str(run_dir / "export" / "student_distilled_float32.tflite")
    out = tmp_path / "submission.csv"
    # class_0/0.png, class_1/0.png...: the stems are not ids
    assert cli.main(["predict", str(folder), "--model", model, "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: 2 ids would name several images (first: '0', for class_0/0.png, class_1/0.png, "
        "class_2/0.png): --ids path names each by its path relative to the input folder")
    assert not out.exists()
    one = folder / "class_0" / "1.png"
    assert cli.main(["predict", str(one), "--model", model, "--out", str(out)]) == 0
    printed, err = capsys.readouterr()
    assert printed == "" and len(err.splitlines()) == 2  # which model, and the summary
    assert err.splitlines()[1] == (f"1 prediction written to {out} (id: the file name without "
                                   "its extension)")
    assert pd.read_csv(out, dtype=str)["id"].tolist() == ["1"]


@pytest.mark.parametrize("name", ["student_distilled.keras", "student_distilled_savedmodel",
                                  "student_distilled.onnx"])
def test_predict_reads_keras_saved_model_and_onnx_alike(tiny_run, name, capsys):
    run_dir, _, _, _ = tiny_run
    image = next((run_dir.parent / "images" / "class_2").glob("*.png"))
    assert cli.main(["predict", str(image), "--model", str(run_dir / "export" / name),
                     "--print"]) == 0
    image_id, class_name, probability = capsys.readouterr().out.strip().split("\t")
    assert image_id == image.stem and class_name in {"class_0", "class_1", "class_2"}
    assert 0.0 < float(probability) <= 1.0


def test_predict_exits_2_when_nothing_could_be_classified(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.png").write_text("text")
    model = run_dir / "export" / "student_distilled_float32.tflite"
    assert cli.main(["predict", str(tmp_path), "--model", str(model)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "a.jpg" in err and "b.png" in err


def test_a_mixed_float16_student_exports_in_float32(tiny_run, tmp_path):
    run_dir, _, _, (images, labels) = tiny_run
    student = trained_student(PrecisionPolicy("mixed_float16"), images, labels)
    records = export.export_model(student, tmp_path, "mixed", ["a", "b", "c"], 32, 3,
                                  images[:20])
    for record in records:
        row = export.verify_export(record, student, images, labels)
        assert row["agreement"] >= (0.8 if record.format == "tflite_int8" else 0.99), row
    exported = keras.saving.load_model(tmp_path / "mixed.keras", safe_mode=True)
    assert {layer.dtype_policy.name for layer in exported._flatten_layers()} == {"float32"}


@pytest.mark.parametrize("name", ["student_distilled.keras", "student_distilled_float32.tflite"])
def test_a_damaged_export_is_an_error_naming_the_file(tiny_run, tmp_path, name, capsys):
    run_dir, _, _, _ = tiny_run
    damaged = tmp_path / name
    shutil.copy(run_dir / "export" / name, damaged)
    shutil.copy(run_dir / "export" / "student_distilled_meta.json", tmp_path)
    damaged.write_bytes(damaged.read_bytes()[:500])
    image = next((run_dir.parent / "images" / "class_2").glob("*.png"))
    assert cli.main(["predict", str(image), "--model", str(damaged)]) == 2
    err = capsys.readouterr().err
    assert f"{damaged} cannot be read" in err and "Traceback" not in err


def test_a_damaged_run_model_is_refused_by_export_naming_it(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("export", ".lock"))
    model = copy / "student_distilled.keras"
    model.write_bytes(model.read_bytes()[:500])
    assert cli.main(["export", "--run-dir", str(copy)]) == 2
    assert f"{model} cannot be read" in capsys.readouterr().err
    assert not (copy / "export").exists()


def test_predict_with_a_run_uses_its_exported_student_and_says_so(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    folder = write_image_folder(tmp_path / "test_images", per_class=2)
    out = tmp_path / "submission.csv"
    assert cli.main(["predict", str(folder), "--run-dir", str(run_dir), "--out", str(out),
                     "--top", "3", "--ids", "path", "--columns", "image_id", "classes"]) == 0
    printed, err = capsys.readouterr()
    assert printed == ""  # the file alone
    assert f"predicting with {run_dir / 'export' / 'student_distilled.keras'}: the run's " \
           "distilled student as exported" in err
    written = pd.read_csv(out)
    assert list(written.columns) == ["image_id", "classes"]
    assert sorted(written["image_id"]) == sorted(
        path.relative_to(folder).as_posix() for path in folder.rglob("*.png"))
    for classes in written["classes"]:  # the three classes, most likely first
        assert sorted(classes.split(" ")) == ["class_0", "class_1", "class_2"]


def test_predict_with_a_run_without_exports_uses_its_own_student(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("export", ".lock"))
    image = next((run_dir.parent / "images" / "class_1").glob("*.png"))
    assert cli.main(["predict", str(image), "--run-dir", str(copy), "--probabilities"]) == 0
    out, err = capsys.readouterr()
    assert f"predicting with {copy / 'student_distilled.keras'}: the run's distilled student " \
           "(`export` writes a float32 copy" in err
    assert out == ""  # nothing per row without --print
    stem = image.stem
    own = pd.read_csv(copy / "predictions" / f"{stem}.csv", dtype={"id": str})
    assert own["id"].tolist() == [stem]
    # A run's .keras given as --model finds the run's classes and image size the same way.
    assert cli.main(["predict", str(image), "--model", str(copy / "student_distilled.keras"),
                     "--out", str(tmp_path / "one.csv"), "--probabilities"]) == 0
    assert pd.read_csv(tmp_path / "one.csv", dtype={"id": str}).equals(own)
    # The run's own model answers logits, its export probabilities: predict gives the same.
    assert cli.main(["predict", str(image), "--model",
                     str(run_dir / "export" / "student_distilled.keras"), "--out",
                     str(tmp_path / "exported.csv"), "--probabilities"]) == 0
    exported = pd.read_csv(tmp_path / "exported.csv", dtype={"id": str})
    assert np.allclose(exported[CLASSES].to_numpy(), own[CLASSES].to_numpy(), atol=1e-5)


def test_predict_reads_a_csv_of_paths_in_its_order_and_names_the_missing(tiny_run, tmp_path,
                                                                         capsys):
    run_dir, _, _, _ = tiny_run
    images = run_dir.parent / "images"
    shutil.copytree(images, tmp_path / "images")
    listed = ["images/class_2/0.png", "images/gone.png", "images/class_0/3.png"]
    pd.DataFrame({"id": [7, 8, 9], "path": listed}).to_csv(tmp_path / "test.csv", index=False)
    assert cli.main(["predict", str(tmp_path / "test.csv"), "--run-dir", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert "1 skipped: images/gone.png (cannot read: file not found (test.csv row 3))" in err
    written = pd.read_csv(run_dir / "predictions" / "test.csv", dtype=str)
    assert written["id"].tolist() == ["0", "3"]  # the stems of the paths the CSV writes


def test_every_exported_file_answers_probabilities(tiny_run):
    """The exported .keras too (it answered logits before), loaded with Keras alone."""
    run_dir, _, _, (images, _) = tiny_run
    own = keras.saving.load_model(run_dir / "student_distilled.keras", safe_mode=True)
    expected = softmax(keras.ops.convert_to_numpy(own(images[:16])))
    exported = keras.saving.load_model(run_dir / "export" / "student_distilled.keras",
                                       safe_mode=True)
    got = keras.ops.convert_to_numpy(exported(images[:16]))
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(got, expected, atol=1e-5)
    assert convert.with_probabilities(exported) is exported  # never a second softmax
    for name in EXPORTED_FILES[1:6]:
        path = run_dir / "export" / name.removesuffix("/saved_model.pb")
        answers = predict.load_predictor(path, "probabilities")(images[:16])
        assert np.allclose(answers.sum(axis=1), 1.0, atol=1e-2), name  # int8: steps of 1/256


@pytest.mark.parametrize("name", ["student_distilled.keras", "student_distilled_savedmodel",
                                  "student_distilled_float32.tflite",
                                  "student_distilled_int8.tflite", "student_distilled.onnx"])
def test_tta_averages_each_image_with_its_mirror_in_every_format(tiny_run, tmp_path, name):
    run_dir, _, _, _ = tiny_run
    folder = write_image_folder(tmp_path / "photos", per_class=2, size=32)
    paths = sorted(folder.rglob("*.png"))
    out = tmp_path / "tta.csv"
    assert cli.main(["predict", str(folder), "--model", str(run_dir / "export" / name),
                     "--tta", "--probabilities", "--ids", "path", "--out", str(out)]) == 0
    got = pd.read_csv(out).set_index("id").loc[
        [path.relative_to(folder).as_posix() for path in paths], CLASSES].to_numpy()
    # What the run's own Keras model answers for each image and its left-right mirror (the
    # int8 file's own answers: its quantised ones differ from Keras' by up to 0.2 here).
    pixels = decode_all([str(path) for path in paths], 32, 3, cache="memory").pixels
    if name.endswith("int8.tflite"):
        run = predict.load_predictor(run_dir / "export" / name, "probabilities")
    else:
        own = keras.saving.load_model(run_dir / "student_distilled.keras", safe_mode=True)
        run = lambda images: softmax(keras.ops.convert_to_numpy(own(images)))  # noqa: E731
    expected = (run(pixels) + run(np.ascontiguousarray(pixels[:, :, ::-1]))) / 2
    assert np.abs(got - expected).max() < 1e-4
    assert np.abs(run(pixels) - expected).max() > 1e-3  # the mirror changes the answers


def test_an_earlier_export_whose_keras_answers_logits_still_predicts_probabilities(
        tiny_run, tmp_path, capsys):
    """Before every format answered probabilities, the exported .keras answered logits (its
    meta file says so): predict still turns them into probabilities."""
    run_dir, _, _, _ = tiny_run
    earlier = shutil.copy(run_dir / "student_distilled.keras", tmp_path / "old.keras")
    record = export.ExportRecord("student_distilled", "keras", Path(earlier), "logits")
    export.write_meta(tmp_path / "old_meta.json", "student_distilled", [record],
                      ["class_0", "class_1", "class_2"], 32, 3)
    image = next((run_dir.parent / "images" / "class_0").glob("*.png"))
    answers = []
    for model in (earlier, run_dir / "export" / "student_distilled.keras"):
        out = tmp_path / f"{Path(model).stem}.csv"
        assert cli.main(["predict", str(image), "--model", str(model), "--probabilities",
                         "--out", str(out)]) == 0
        answers.append(pd.read_csv(out)[CLASSES].to_numpy())
    assert np.allclose(answers[0], answers[1], atol=1e-5)
    assert answers[0].sum() == pytest.approx(1.0, abs=1e-5)


def test_predict_without_a_usable_model_or_input_says_what_to_give(tiny_run, tmp_path, capsys):
    run_dir, _, _, _ = tiny_run
    image = next((run_dir.parent / "images" / "class_1").glob("*.png"))
    stray = tmp_path / "stray.keras"
    shutil.copy(run_dir / "student_distilled.keras", stray)
    assert cli.main(["predict", str(image), "--model", str(stray)]) == 2
    assert "no *_meta.json beside it lists this file, and no run directory" in \
        capsys.readouterr().err
    assert cli.main(["predict", str(image), "--run-dir", str(tmp_path / "none")]) == 2
    assert "holds no run (no config.yaml)" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("file,label\na.png,x\n")
    assert cli.main(["predict", str(tmp_path / "bad.csv"), "--run-dir", str(run_dir)]) == 2
    assert "needs a column 'path', has ['file', 'label']" in capsys.readouterr().err


def test_without_the_onnx_converter_export_says_what_to_install(tiny_run, tmp_path, capsys,
                                                                 monkeypatch):
    _, _, _, (images, _) = tiny_run
    monkeypatch.setattr(export, "missing_onnx_packages", lambda: ["tf2onnx"])
    student = build_student(TINY_STUDENT, PrecisionPolicy("float32"))
    records = export.export_model(student, tmp_path, "plain", ["a", "b", "c"], 32, 3,
                                  images[:8])
    assert "onnx" not in {record.format for record in records}
    assert not list(tmp_path.glob("*.onnx"))
    lines = [line for line in capsys.readouterr().out.splitlines() if "ONNX" in line]
    assert lines == ["ONNX: not written, tf2onnx not installed here: pip install tf2onnx "
                     "(Keras writes ONNX through tf2onnx on TensorFlow; onnxruntime checks it)"]
