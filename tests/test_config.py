"""Config: YAML -> frozen typed objects; every error names its key."""

from __future__ import annotations

import dataclasses

import pytest

from teacher_student import config as cfg
from teacher_student.config.values import parse_duration


def test_defaults_round_trip_through_yaml(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(cfg.to_yaml(cfg.Config()))
    assert cfg.load(path) == cfg.Config()


def test_overrides_reach_nested_and_listed_keys():
    config = cfg.load(None, ["phases.1.epochs=3", "teacher.widths=[16, 32, 48]",
                             "distill.alpha=0.5", "precision=mixed_float16"])
    assert config.phases[1].epochs == 3
    assert config.teacher.widths == (16, 32, 48)
    assert config.distill.alpha == 0.5 and config.precision == "mixed_float16"


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.Config().data.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize("overrides, message", [
    (["teacher.colour=red"], "teacher.colour: unknown key"),
    (["colour=red"], "colour: unknown key (known: data, distill, jit_compile, measure_latency, "),
    (["colour.shade=red"], "colour: unknown key (known: data, distill, jit_compile, measure_"),
    (["teacher.colour.shade=red"], "teacher.colour: unknown key (known: cbam, cbam_reduction, "),
    (["studnet.dropout=0.5"], "; did you mean student?"),
    (["student.dropout.rate=0.5"], "student.dropout.rate: unknown key (student.dropout is a "
                                   "value, 0.1, with no keys inside)"),
    (["phases.0.epochs.count=2"], "phases.0.epochs.count: unknown key (phases.0.epochs is a "
                                  "value"),
    (["data.batch_size=abc"], "data.batch_size: must be int"),
    (["phases.0.epochs=-1"], "phases.0.epochs: must be >= 0"),
    (["precision=fp8"], "precision: must be one of"),
    (["teacher.widths=[12, 24, 32]"], "teacher.widths: every width must be a positive multiple"),
    (["phases.5.epochs=1"], "phases.5: no such item"),
    (["distill.alpha=1.5"], "distill.alpha: must be in [0, 1]"),
    (["data.val_fraction=0.6", "data.test_fraction=0.5"],
     "val_fraction + test_fraction must be < 1"),
    (["nonsense"], "must look like key=value"),
    (["jit_compile=sometimes"], "jit_compile: must be true, false or 'auto'"),
    (["jit_compile=1"], "jit_compile: must be str, got int 1"),
    (["distill.method=crd"], "distill.method: must be one of ['kd', 'dkd', 'feature']"),
    (["distill.temperature=0"], "distill.temperature: must be > 0"),
    (["distill.kd.weight=-1"], "distill.kd.weight: must be > 0"),
    (["distill.dkd.beta=0"], "distill.dkd.beta: must be > 0"),
    (["distill.dkd_beta=0"], "distill.dkd.beta: must be > 0"),  # the flat key, deprecated
    (["distill.feature.weight=0"], "distill.feature.weight: must be > 0"),
    (["distill.dkd.gamma=1"], "distill.dkd.gamma: unknown key (known: alpha, beta, "
                              "warmup_epochs)"),
    (["distill.mix=blend"], "distill.mix: must be one of ['none', 'mixup', 'cutmix']"),
    (["distill.mix=mixup", "data.batch_size=1"], "distill.mix: mixup mixes the images of a batch"),
    (["data.cache=cloud"], "data.cache: must be one of ['auto', 'memory', 'disk']"),
    (["verbose=3"], "verbose: must be 0, 1, 2 or 'auto', got 3"),
    (["verbose=loud"], "verbose: must be 0, 1, 2 or 'auto', got 'loud'"),
    (["phases=[]"], "phases: at least one phase must train the teacher for 1 epoch or more; "
                    "found an empty list"),
    ([f"phases.{i}.epochs=0" for i in range(3)], "phases: at least one phase must train the "
                                                 "teacher for 1 epoch or more; found every phase "
                                                 "has 0 epochs"),
])
def test_bad_values_are_errors_naming_the_key(overrides, message):
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(None, overrides)
    assert message in str(err.value)


def test_errors_in_a_file_name_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("phases:\n  - name: warmup\n    epochs: two\n")
    with pytest.raises(cfg.ConfigError, match=r"bad.yaml: phases.0.epochs: must be int"):
        cfg.load(path)


def test_a_misspelt_top_level_key_in_a_file_lists_the_known_keys(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("studnet:\n  widths: [8, 16]\n")
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(path)
    assert str(err.value) == (
        f"{path}: studnet: unknown key (known: data, distill, jit_compile, measure_latency, "
        "phases, precision, scale_learning_rate, steps_per_execution, student, teacher, "
        "time_budget, verbose); did you mean student?")


def test_a_config_file_without_phases_names_the_key(tmp_path):
    path = tmp_path / "no_phases.yaml"
    path.write_text("phases: []\n")
    with pytest.raises(cfg.ConfigError, match=r"no_phases.yaml: phases: at least one phase"):
        cfg.load(path)
    path.write_text("phases:\n  - {name: only, epochs: 1}\n")
    assert [phase.name for phase in cfg.load(path).phases] == ["only"]


def test_yaml_is_read_with_the_safe_loader(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("precision: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(cfg.ConfigError, match="cannot read config"):
        cfg.load(path)


def test_with_dataset_fills_in_the_model_contract():
    config = cfg.load(None, ["data.image_size=64", "data.channels=3"]).with_dataset(5)
    assert config.teacher.input_shape == config.student.input_shape == (64, 64, 3)
    assert config.teacher.num_classes == config.student.num_classes == 5


def test_default_yaml_is_the_built_in_default():
    assert cfg.load("default") == cfg.Config()


@pytest.mark.parametrize("name", ["kaggle_t4", "tiny", "first_run"])
def test_packaged_configs_load(name):
    assert isinstance(cfg.load(name), cfg.Config)


@pytest.mark.parametrize("text, value", [("0", 0), ("2", 2), ("auto", "auto")])
def test_verbose_is_a_keras_verbosity_or_auto(text, value):
    assert cfg.load(None, [f"verbose={text}"]).verbose == value


@pytest.mark.parametrize("text, value", [("true", True), ("false", False), ("auto", "auto")])
def test_jit_compile_is_a_switch_or_auto(text, value):
    jit_compile = cfg.load(None, [f"jit_compile={text}"]).jit_compile
    assert jit_compile == value and type(jit_compile) is type(value)


def test_reduce_lr_needs_a_constant_schedule():
    with pytest.raises(cfg.ConfigError, match="phases.1.reduce_lr_patience"):
        cfg.load(None, ["phases.1.reduce_lr_patience=2"])


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("45m", 2700), ("11h30m", 41400),
                                           ("1.5h", 5400), ("1h0m30s", 3630), ("3600", 3600),
                                           ("2.5", 2.5), (90, 90)])
def test_durations_are_hours_minutes_seconds_or_plain_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1:30", "ten", "-5", "0", "0s", "", "30m1h", "11h30", "m",
                                  -5, 0, float("nan"), float("inf"), True])
def test_anything_else_is_not_a_duration(text):
    with pytest.raises(cfg.ConfigError, match=r"^time_budget: .* is not a positive duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["1:30", "ten", "-5", "0"])
def test_a_bad_time_budget_in_a_config_file_names_the_file_and_key(tmp_path, text):
    path = tmp_path / "budget.yaml"
    path.write_text(f"time_budget: {text}\n")
    with pytest.raises(cfg.ConfigError, match=rf"budget.yaml: time_budget: '?{text}'? is not"):
        cfg.load(path)


def test_a_time_budget_in_a_config_file_is_kept_as_written(tmp_path):
    path = tmp_path / "budget.yaml"
    path.write_text("time_budget: 11h30m\n")
    assert cfg.load(path).time_budget == "11h30m"
    path.write_text("time_budget: 5400.5\n")
    assert cfg.load(path).time_budget == 5400.5


def test_set_values_that_are_not_yaml_name_the_key():
    with pytest.raises(cfg.ConfigError, match=r"^data.batch_size: '\[' is not a YAML value"):
        cfg.load(None, ["data.batch_size=["])


def test_texts_are_set_as_written_while_set_values_are_yaml():
    config = cfg.load(None, ["data.batch_size=16", "precision=float32"],
                      {"data.source": "2024", "precision": "mixed_float16"})
    assert config.data.source == "2024" and config.data.batch_size == 16
    assert config.precision == "mixed_float16"  # the texts come after --set
    assert cfg.load(None, [], {"data.source": "x #1"}).data.source == "x #1"
    with pytest.raises(cfg.ConfigError, match="data.source: must be str, got int 2024"):
        cfg.load(None, ["data.source=2024"])
    with pytest.raises(cfg.ConfigError, match="data.source: must name"):
        cfg.load(None, [], {"data.source": " "})


def test_yaml_has_no_base_60_numbers(tmp_path):
    path = tmp_path / "source.yaml"
    path.write_text("data:\n  source: 1:30\n")
    assert cfg.load(path).data.source == "1:30"
    assert cfg.load(None, ["data.source=12:00"]).data.source == "12:00"
    path.write_text(cfg.to_yaml(cfg.load(path)))  # written as a string, read back as one
    assert cfg.load(path).data.source == "1:30"
