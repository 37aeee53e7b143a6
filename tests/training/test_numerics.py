"""Numerical faults: float16 overflow is absorbed by loss scaling; a NaN loss stops the phase,
keeps the last good checkpoint, and the phase can go on in float32."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from teacher_student.errors import NonFiniteLoss
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.run.checkpoints import CheckpointDir
from teacher_student.training.trainer import fit_resumable


def small_model(policy: PrecisionPolicy, gain: float = 1.0) -> keras.Model:
    inputs = keras.Input((8,), name="features")
    x = layers.Dense(16, activation="relu", dtype=policy.layer_dtype, name="hidden")(inputs)
    x = layers.Rescaling(gain, dtype=policy.layer_dtype, name="gain")(x)
    return keras.Model(inputs, policy.logits(x, 2), name="small")


def data(n: int = 64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def batches():
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(data()).batch(16)


def compile_model(model, policy, learning_rate=1e-2):
    model.compile(optimizer=policy.wrap_optimizer(keras.optimizers.SGD(learning_rate)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=True)


def test_float16_gradient_overflow_is_absorbed_by_loss_scaling():
    """Activations of ~1e3 give float16 gradients that overflow at the initial loss scale."""
    policy = PrecisionPolicy("mixed_float16")
    model = small_model(policy, gain=3000.0)
    compile_model(model, policy, learning_rate=1e-6)
    initial_scale = model.optimizer.initial_scale
    x, y = data()
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert float(model.optimizer.dynamic_scale) < initial_scale  # overflow seen and handled
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert np.isfinite(history.history["loss"][-1])


class ExplodeAtEpoch(keras.callbacks.Callback):
    """Sets an absurd learning rate from a given epoch on: the loss becomes NaN or infinite."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= self.epoch:
            self.model.optimizer.learning_rate.assign(1e30)


def test_nan_stops_the_phase_keeps_the_last_good_checkpoint_and_continues_in_float32(tmp_path):
    phase = CheckpointDir(tmp_path)
    mixed = PrecisionPolicy("mixed_float16")
    model = small_model(mixed)
    compile_model(model, mixed)
    with pytest.raises(NonFiniteLoss, match="--precision float32"):
        fit_resumable(model, batches(), batches(), epochs=4, directory=phase, policy=mixed,
                      deployable=model, callbacks=[ExplodeAtEpoch(1)], verbose=0)
    assert phase.latest_resume_point().name == "epoch-0001"  # the last good epoch
    assert not phase.is_done()
    kept = keras.saving.load_model(phase.last_model)
    assert all(np.isfinite(w).all() for w in kept.get_weights())

    full = PrecisionPolicy("float32")  # the same phase, continued in float32
    model = small_model(full)
    compile_model(model, full)
    progress = fit_resumable(model, batches(), batches(), epochs=4, directory=phase, policy=full,
                             deployable=model, verbose=0)
    assert progress.epochs_done == 4 and phase.is_done()
    assert [row["epoch"] for row in progress.history] == [1, 2, 3, 4]
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_best_checkpoint_is_the_best_accuracy_and_ties_go_to_the_lower_loss(tmp_path):
    from teacher_student.training.trainer import EpochCheckpoint, Progress

    policy = PrecisionPolicy("float32")
    model = small_model(policy)
    compile_model(model, policy)
    checkpoint = EpochCheckpoint(CheckpointDir(tmp_path), model, Progress(), policy)
    checkpoint.set_model(model)
    hidden = model.get_layer("hidden")
    epochs = [(0.80, 0.50), (0.90, 0.40), (0.90, 0.30), (0.90, 0.35), (0.85, 0.10)]
    for epoch, (accuracy, loss) in enumerate(epochs):
        kernel, bias = hidden.get_weights()
        hidden.set_weights([np.full_like(kernel, epoch), bias])  # marks the epoch's weights
        checkpoint.on_epoch_end(epoch, {"loss": 1.0, "val_accuracy": accuracy, "val_loss": loss})
    best = keras.saving.load_model(tmp_path / "best.keras", safe_mode=True)
    assert best.get_layer("hidden").get_weights()[0].flat[0] == 2  # 0.90 at the lowest loss
    assert checkpoint.progress.best == 0.90 and checkpoint.progress.best_loss == 0.30
