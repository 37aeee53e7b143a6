"""Which weights train in each phase: the trunk frozen, its top parts, or everything."""

from __future__ import annotations

import dataclasses

from helpers import TINY_TEACHER

from teacher_student.models.freezing import set_trainable, trainable_parts, trunk_parts
from teacher_student.models.layers import GradientGate
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.teacher import build_teacher


def trainable_names(model) -> set[str]:
    return {w.path.split("/")[0] for w in model.trainable_weights}


def test_own_trunk_parts_are_stem_and_stages_each_ending_in_a_gate():
    model = build_teacher(TINY_TEACHER, PrecisionPolicy())
    parts = trunk_parts(model)
    assert [part[0].name.split("_")[0] for part in parts] == ["stem", "stage1", "stage2",
                                                              "stage3"]
    assert all(isinstance(part[-1], GradientGate) for part in parts)


def test_head_phase_trains_only_fusion_and_head():
    model = build_teacher(TINY_TEACHER, PrecisionPolicy())
    set_trainable(model, "head")
    assert trainable_parts(model) == [False] * 4
    assert trainable_names(model) and all(
        name.startswith(("fusion", "head", "logits")) for name in trainable_names(model))
    assert not any(gate.trainable for gate in model.layers if isinstance(gate, GradientGate))


def test_top_phase_unfreezes_the_top_parts_then_all_unfreezes_everything():
    model = build_teacher(TINY_TEACHER, PrecisionPolicy())
    set_trainable(model, "top", unfreeze_top=2)
    assert trainable_parts(model) == [False, False, True, True]
    assert any(name.startswith("stage3") for name in trainable_names(model))
    assert not any(name.startswith(("stem", "stage1")) for name in trainable_names(model))
    set_trainable(model, "all")
    assert len(model.trainable_weights) == len([w for w in model.weights if w.trainable])
    assert trainable_parts(model) == [True] * 4


def test_applications_trunk_freezes_whole_and_keeps_batchnorm_frozen_in_top_phase():
    config = dataclasses.replace(TINY_TEACHER, trunk="EfficientNetB0")
    model = build_teacher(config, PrecisionPolicy())
    trunk = model.get_layer("trunk")
    set_trainable(model, "head")
    assert not trunk.trainable_weights
    set_trainable(model, "top", unfreeze_top=5)
    trained = [layer for layer in trunk.layers if layer.trainable_weights]
    assert 0 < len(trained) <= 5
    assert not any(layer.__class__.__name__ == "BatchNormalization" for layer in trained)
    gates = [layer for layer in model.layers if isinstance(layer, GradientGate)]
    assert gates and all(gate.trainable for gate in gates)
