"""A built model's structure (its trunk's parts, its head's pool, a pretrained trunk's gates)
stays with it: saved and loaded safely, re-wrapped and renamed as a listed teacher is, rebuilt
under each precision policy; and freezing by it works on what comes back."""

from __future__ import annotations

import dataclasses

import keras
import pytest
from helpers import TINY_STUDENT, TINY_TEACHER

from teacher_student.config import POLICIES
from teacher_student.models.freezing import set_trainable, trainable_parts
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.models.structure import layer_at, structure_of
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher

MOBILENET = {"trunk": "MobileNetV3Small", "trunk_weights": None}
MODELS = {
    "teacher": (build_teacher, TINY_TEACHER),
    "student": (build_student, TINY_STUDENT),
    "mobilenet teacher": (build_teacher, dataclasses.replace(TINY_TEACHER, **MOBILENET)),
    "mobilenet student": (build_student, dataclasses.replace(TINY_STUDENT, **MOBILENET)),
}


def build(which: str, policy: PrecisionPolicy) -> keras.Model:
    builder, config = MODELS[which]
    return builder(config, policy)


def saved_and_loaded(model: keras.Model, tmp_path) -> keras.Model:
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    return keras.saving.load_model(path, safe_mode=True)


def frozen_as(model: keras.Model, trainable: str, unfreeze_top: int = 0):
    """What trains in a phase: each trunk part, and how many weights."""
    set_trainable(model, trainable, unfreeze_top)
    return trainable_parts(model), len(model.trainable_weights)


# Our trunks under each policy; a keras.applications one (a few seconds a rebuild) in the slow
# runs, and in the fast ones through the test below.
EVERY_POLICY = [pytest.param(which, name, marks=[pytest.mark.slow] if "mobilenet" in which else [])
                for which in MODELS for name in POLICIES]


@pytest.mark.parametrize("which, built_under", EVERY_POLICY)
def test_the_structure_survives_saving_rewrapping_and_rebuilding_under_each_policy(
        which, built_under, tmp_path):
    model = build(which, PrecisionPolicy(built_under))
    recorded = structure_of(model)
    loaded = saved_and_loaded(model, tmp_path)
    assert structure_of(loaded) == recorded
    for target in POLICIES:
        for float32_outputs in (False, True):
            # What `listed_teachers` does to a loaded teacher.
            wrapped = keras.Model(loaded.input, loaded.output, name="teacher0")
            rebuilt = PrecisionPolicy(target).rebuild(wrapped, float32_outputs=float32_outputs)
            assert structure_of(rebuilt) == recorded, (target, float32_outputs)
            for path in [*(p for part in recorded.trunk_parts for p in part),
                         recorded.head_pool, *recorded.pretrained_gates]:
                layer_at(rebuilt, path)  # every recorded layer is there


@pytest.mark.parametrize("which", MODELS)
def test_freezing_a_loaded_and_rebuilt_model_freezes_what_it_freezes_in_the_built_one(
        which, tmp_path):
    """Built under mixed_float16, loaded as a listed teacher is under float32: the casts the
    record must not name are gone."""
    model = build(which, PrecisionPolicy("mixed_float16"))
    loaded = saved_and_loaded(model, tmp_path)
    rebuilt = PrecisionPolicy("float32").rebuild(
        keras.Model(loaded.input, loaded.output, name="teacher0"), float32_outputs=True)
    assert structure_of(rebuilt) == structure_of(model)
    for phase in (("head",), ("top", 2), ("all",)):
        assert frozen_as(rebuilt, *phase) == frozen_as(model, *phase), phase


@pytest.mark.parametrize("which", ["teacher", "student"])
def test_our_trunk_records_the_same_layers_under_every_policy(which):
    """The policy's casts are left out of the parts: a rebuild under another policy adds or
    removes them, and freezing would look for layers that are gone."""
    recorded = {name: [set(part) for part in structure_of(build(which, PrecisionPolicy(name)))
                       .trunk_parts] for name in POLICIES}
    assert recorded["mixed_float16"] == recorded["mixed_bfloat16"] == recorded["float32"]


def test_a_model_without_a_record_says_how_to_get_one():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(inputs)
    plain = keras.Model(inputs, keras.layers.Dense(3)(x), name="plain")
    with pytest.raises(ValueError, match="'plain' has no recorded structure: build it with"):
        structure_of(plain)
