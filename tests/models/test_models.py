"""Teacher and student under each precision policy: dtypes, audit, save/load, agreement."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
from helpers import TINY_STUDENT, TINY_TEACHER

from teacher_student.config import StudentConfig, TeacherConfig
from teacher_student.models.audit import audit_dtypes
from teacher_student.models.layers import CastTo, DropPath, OnePassBatchNormalization
from teacher_student.models.precision import PrecisionPolicy, is_resize, transfer_weights
from teacher_student.models.student import build_student
from teacher_student.models.teacher import build_teacher

BUILDERS = {"teacher": (build_teacher, TINY_TEACHER), "student": (build_student, TINY_STUDENT)}


def build(which: str, policy: PrecisionPolicy) -> keras.Model:
    builder, config = BUILDERS[which]
    return builder(config, policy)


def is_float32_island(layer) -> bool:
    """The layers a mixed model computes in float32 on purpose."""
    return (is_resize(layer) or layer.name == "logits"
            or (isinstance(layer, CastTo) and layer.target_dtype == "float32"))


@pytest.mark.parametrize("which", BUILDERS)
def test_audit_is_clean(which, policy):
    assert audit_dtypes(build(which, policy), policy.name) == []


@pytest.mark.parametrize("which", BUILDERS)
def test_every_layer_computes_in_the_policy_dtype_except_float32_islands(which, policy):
    model = build(which, policy)
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        expected = "float32" if is_float32_island(layer) else policy.compute_dtype
        assert layer.compute_dtype == expected, layer.name
    islands = [layer.name for layer in model.layers if is_float32_island(layer)]
    assert "logits" in islands
    if which == "teacher":
        assert any("_up" in name for name in islands)  # the bilinear upsampling path


@pytest.mark.parametrize("which", BUILDERS)
def test_variables_and_output_are_float32(which, policy):
    model = build(which, policy)
    assert {v.dtype for v in model.weights} == {"float32"}
    assert model.output.dtype == "float32"
    assert model.get_layer("logits").compute_dtype == "float32"


@pytest.mark.parametrize("which", BUILDERS)
def test_cast_layers_feed_every_merge_only_under_mixed_policies(which, policy):
    model = build(which, policy)
    casts = [layer for layer in model.layers if isinstance(layer, CastTo)]
    if not policy.is_mixed:
        assert casts == []
        return
    merges = [layer for layer in model.layers
              if isinstance(layer, (keras.layers.Add, keras.layers.Concatenate,
                                    keras.layers.Multiply))]
    for merge in merges:
        for tensor in merge.input if isinstance(merge.input, list) else [merge.input]:
            assert isinstance(tensor._keras_history.operation, CastTo), merge.name


def test_optimizer_is_wrapped_for_loss_scaling_exactly_under_mixed_float16(policy):
    optimizer = policy.wrap_optimizer(keras.optimizers.Adam())
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (policy.name == "mixed_float16")
    assert policy.wrap_optimizer(optimizer) is optimizer  # never wrapped twice


def test_builders_leave_the_global_policy_alone(policy):
    before = keras.config.dtype_policy().name
    build("teacher", policy)
    assert keras.config.dtype_policy().name == before == "float32"


def test_graph_is_the_same_every_time():
    names = [[layer.name for layer in build("teacher", PrecisionPolicy("mixed_float16")).layers]
             for _ in range(2)]
    assert names[0] == names[1]


def test_default_student_has_at_least_ten_times_fewer_parameters_than_the_default_teacher():
    teacher = build_teacher(TeacherConfig(), PrecisionPolicy())
    student = build_student(StudentConfig(), PrecisionPolicy())
    assert teacher.count_params() >= 10 * student.count_params()


@pytest.mark.parametrize("which", BUILDERS)
def test_save_and_load_with_safe_mode_predicts_the_same(which, policy, batch, tmp_path):
    model = build(which, policy)
    path = tmp_path / f"{which}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images, _ = batch
    np.testing.assert_allclose(loaded.predict_on_batch(images), model.predict_on_batch(images),
                               rtol=0, atol=0)
    assert audit_dtypes(loaded, policy.name) == []


# float16 keeps ~3 significant digits, bfloat16 ~2; logits of these tiny models are O(1).
TOLERANCE = {"mixed_float16": 2e-2, "mixed_bfloat16": 1e-1}


@pytest.mark.parametrize("which", BUILDERS)
@pytest.mark.parametrize("mixed", TOLERANCE)
def test_mixed_and_float32_outputs_of_the_same_weights_agree(which, mixed, batch):
    reference = build(which, PrecisionPolicy("float32"))
    model = build(which, PrecisionPolicy(mixed))
    transfer_weights(reference, model)
    images, _ = batch
    expected = reference.predict_on_batch(images)
    got = model.predict_on_batch(images)
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(got, expected, atol=TOLERANCE[mixed] * scale)


@pytest.mark.parametrize("change, message", [
    ({"widths": (8, 16)}, "at least 3 stages"),
    ({"input_shape": (34, 34, 3)}, "multiple of 4"),
    ({"trunk": "VGG16"}, "not supported"),
    ({"num_classes": 1}, "at least 2"),
])
def test_teacher_rejects_bad_arguments_saying_what_it_got(change, message):
    with pytest.raises(ValueError, match=message):
        build_teacher(dataclasses.replace(TINY_TEACHER, **change), PrecisionPolicy())


def test_applications_trunk_adopts_the_policy_and_its_weights(tmp_path):
    config = dataclasses.replace(TINY_TEACHER, trunk="EfficientNetB0")
    reference = build_teacher(config, PrecisionPolicy("float32"))
    model = build_teacher(config, PrecisionPolicy("mixed_float16"))
    assert audit_dtypes(model, "mixed_float16") == []
    trunk = model.get_layer("trunk")
    assert {layer.compute_dtype for layer in trunk.layers[1:]} <= {"float16", "float32"}
    assert len(reference.get_layer("trunk").get_weights()) == len(trunk.get_weights())


def test_the_width_multiplier_widens_every_stage_to_multiples_of_eight():
    from teacher_student.models.student import student_widths

    assert student_widths(StudentConfig(width_multiplier=1)) == (24, 48, 96, 192)
    assert student_widths(StudentConfig()) == (48, 96, 192, 384)  # the default, 2
    assert student_widths(StudentConfig(width_multiplier=1.5)) == (32, 72, 144, 288)
    small = build_student(TINY_STUDENT, PrecisionPolicy())
    wide = build_student(dataclasses.replace(TINY_STUDENT, width_multiplier=2),
                         PrecisionPolicy())
    assert wide.get_layer("stage2_pointwise_conv").filters == 32
    assert wide.count_params() > 2 * small.count_params()


@pytest.mark.parametrize("change, message", [
    ({"trunk": "VGG16"}, "not one of"),
    ({"trunk": "MobileNetV3Small", "trunk_weights": "imagenet",
      "input_shape": (32, 32, 1)}, "need 3 channels"),
    ({"widths": ()}, "at least one width"),
])
def test_student_rejects_bad_arguments_naming_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        build_student(dataclasses.replace(TINY_STUDENT, **change), PrecisionPolicy())


def test_a_mobilenet_student_keeps_the_contract(tmp_path):
    """uint8 in, float32 logits out, every layer's dtype from the policy, saved safely."""
    config = dataclasses.replace(TINY_STUDENT, trunk="MobileNetV3Small")
    model = build_student(config, PrecisionPolicy("mixed_float16"))
    assert model.input.dtype == "uint8" and model.output.dtype == "float32"
    assert audit_dtypes(model, "mixed_float16") == []
    assert {v.dtype for v in model.weights} == {"float32"}
    model.save(tmp_path / "student.keras")
    loaded = keras.saving.load_model(tmp_path / "student.keras", safe_mode=True)
    images = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(loaded.predict_on_batch(images), model.predict_on_batch(images))


def test_probability_average_is_the_mean_of_the_softened_probabilities():
    from teacher_student.models.layers import ProbabilityAverage

    rng = np.random.default_rng(0)
    logits = [rng.normal(size=(4, 5)).astype("float32") * 3 for _ in range(3)]
    temperature = 2.0
    combined = np.asarray(ProbabilityAverage(temperature)(logits))

    def softmax(z):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    expected = np.mean([softmax(z / temperature) for z in logits], axis=0)
    np.testing.assert_allclose(softmax(combined / temperature), expected, rtol=1e-5)


def test_an_applications_trunk_trained_from_scratch_forgets_its_initial_statistics_fast():
    """MobileNetV3's BatchNorm momentum of 0.999 left a small dataset's validation on the
    initial statistics (chance accuracy); from scratch it gets our blocks' momentum."""
    from teacher_student.models.blocks import BN_MOMENTUM

    config = dataclasses.replace(TINY_STUDENT, trunk="MobileNetV3Small")
    trunk = build_student(config, PrecisionPolicy()).get_layer("trunk")
    norms = [layer for layer in trunk.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and {layer.momentum for layer in norms} == {BN_MOMENTUM}


def test_a_teacher_of_another_input_sees_the_students_images_resized_to_its_own():
    from teacher_student.models.layers import ResizeTo
    from teacher_student.training.teachers import at_input

    flat = np.full((2, 16, 16, 3), [100, 50, 200], dtype=np.uint8)
    grey = np.asarray(ResizeTo(24, 24, 1)(flat))
    assert grey.shape == (2, 24, 24, 1) and grey.dtype == np.uint8
    assert np.all(grey == round(0.299 * 100 + 0.587 * 50 + 0.114 * 200))  # PIL's "L"
    ramp = np.tile(np.arange(0, 256, 16, dtype=np.uint8)[None, None, :, None], (1, 16, 1, 1))
    colour = np.asarray(ResizeTo(8, 8, 3)(ramp))
    assert colour.shape == (1, 8, 8, 3) and np.all(colour[..., 0] == colour[..., 2])
    assert np.all(np.diff(colour[0, 0, :, 0].astype(int)) > 0)  # still a ramp, at half size

    teacher = build_teacher(dataclasses.replace(TINY_TEACHER, input_shape=(24, 24, 1)),
                            PrecisionPolicy("float32"))
    taught = at_input(teacher, (16, 16, 3))
    assert taught.input_shape == (None, 16, 16, 3)
    np.testing.assert_allclose(taught.predict(flat, verbose=0),
                               teacher.predict(grey, verbose=0), rtol=1e-5, atol=1e-6)
    assert at_input(teacher, (24, 24, 1)) is teacher


def test_stochastic_depth_drops_whole_branches_in_training_only():
    drop = DropPath(0.5, seed=1)
    ones = np.ones((256, 2, 2, 3), "float32")
    dropped = keras.ops.convert_to_numpy(drop(ones, training=True))
    per_image = dropped.reshape(256, -1)
    # Each image's branch is kept whole (scaled by 2) or dropped whole.
    assert set(np.unique(per_image)) == {0.0, 2.0}
    assert (per_image == per_image[:, :1]).all()
    assert 0.35 < (per_image[:, 0] == 0).mean() < 0.65
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(drop(ones, training=False)), ones)


def test_a_teacher_with_stochastic_depth_is_the_plain_teacher_at_inference(policy):
    noisy = build_teacher(TINY_TEACHER, policy, stochastic_depth=0.5)
    assert audit_dtypes(noisy, policy.name) == []
    assert sum(isinstance(layer, DropPath) for layer in noisy.layers) == len(TINY_TEACHER.widths)
    plain = build_teacher(TINY_TEACHER, policy)
    transfer_weights(noisy, plain)
    images = np.random.default_rng(0).integers(0, 256, (4, *TINY_TEACHER.input_shape), "uint8")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(noisy(images, training=False)),
                               keras.ops.convert_to_numpy(plain(images, training=False)),
                               rtol=1e-5, atol=1e-5)


def conv_norm_net(normalization) -> keras.Model:
    keras.utils.set_random_seed(0)  # the same initial weights for either normalization
    inputs = keras.Input((6, 6, 3))
    x = normalization(momentum=0.9)(keras.layers.Conv2D(4, 3, padding="same")(inputs))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def test_one_pass_batch_norm_trains_as_keras_batch_norm():
    """Three steps of fit from the same weights on the same batches: the same weights and moving
    statistics after, so the gradients through the batch's statistics are Keras' too."""
    rng = np.random.default_rng(0)
    images = rng.normal(5.0, 2.0, (24, 6, 6, 3)).astype("float32")
    targets = rng.normal(size=(24, 2)).astype("float32")
    trained = []
    for normalization in (keras.layers.BatchNormalization, OnePassBatchNormalization):
        model = conv_norm_net(normalization)
        model.compile(keras.optimizers.SGD(0.1), "mse")
        model.fit(images, targets, batch_size=8, shuffle=False, verbose=0)
        trained.append(model.get_weights())
    assert any((a != b).any() for a, b in zip(trained[0], conv_norm_net(
        keras.layers.BatchNormalization).get_weights()))  # the steps changed the weights
    for keras_weight, ours in zip(*trained):
        np.testing.assert_allclose(ours, keras_weight, rtol=1e-4, atol=1e-5)


def test_one_pass_batch_norm_keeps_a_small_variance_far_from_zero():
    """Channels at 1000 +- 0.01: a mean square less a squared mean, unshifted, would lose the
    variance (1e-4) to float32's rounding of 1e6."""
    x = (1000 + 0.01 * np.random.default_rng(0).standard_normal((16, 4, 4, 2))).astype("float32")
    norm = OnePassBatchNormalization(momentum=0.0)  # moving statistics := the batch's
    norm(x, training=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm.moving_variance),
                               x.astype("float64").var(axis=(0, 1, 2)), rtol=1e-3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm.moving_mean),
                               x.astype("float64").mean(axis=(0, 1, 2)), rtol=1e-6)
