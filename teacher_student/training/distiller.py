"""The distiller: trains a student on labels and on a frozen teacher's softened logits.

    loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T)

A `keras.Model` that overrides only `call` and `compute_loss`, so gradients, the optimizer and
loss scaling stay with Keras and it runs on every backend. Evaluation (`training=False`) skips
the teacher and reports the student alone.
"""

from __future__ import annotations

import keras
from keras import ops

from teacher_student.training.losses import classification_loss, distillation_loss


class Distiller(keras.Model):
    def __init__(self, teacher: keras.Model, student: keras.Model, alpha: float,
                 temperature: float, **kwargs):
        super().__init__(name=kwargs.pop("name", "distiller"), **kwargs)
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.teacher = teacher
        self.student = student
        self.teacher.trainable = False  # takes effect at the next compile()
        self.alpha = alpha
        self.temperature = temperature
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        # Teacher and student are built functional models: nothing is left to create, and a
        # resumed run can load its checkpoint before the first step.
        self.built = True

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        student_loss = classification_loss(y, y_pred, sample_weight)
        self.student_loss_tracker.update_state(student_loss)
        if not training:
            return student_loss
        # BatchNorm in inference mode, and no backward pass through the frozen teacher.
        teacher_logits = ops.stop_gradient(self.teacher(x, training=False))
        soft_loss = distillation_loss(teacher_logits, y_pred, self.temperature)
        self.distillation_loss_tracker.update_state(soft_loss)
        return self.alpha * student_loss + (1 - self.alpha) * soft_loss

    @property
    def metrics(self):
        return [*super().metrics, self.student_loss_tracker, self.distillation_loss_tracker]
