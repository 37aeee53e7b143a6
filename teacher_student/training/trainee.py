"""The model being trained, with what happens to each training batch on the accelerator.

A `Trainee` wraps a built classifier (the teacher, or the student of the baseline). In training
its `call` augments the uint8 batch, erases boxes of it and mixes it (see data/augment.py),
inside the compiled step, then runs the classifier; `compute_loss` is the label loss, mixed as
the images were (and smoothed, when asked). In
evaluation and prediction it is the classifier alone. It overrides only `call`,
`compute_loss` and `compute_metrics`, so gradients, the optimizer and loss scaling stay with
Keras, on every backend. The `Distiller` is a Trainee with a teacher.

What gets deployed is the wrapped classifier; the Trainee's own weights (augmentation and
mixing seed states, a distiller's adapter) live only in the training checkpoints.
"""

from __future__ import annotations

import keras
from keras import ops

from teacher_student.data.augment import Erasing, Mixing, augmentation
from teacher_student.training.losses import label_loss


class Trainee(keras.Model):
    def __init__(self, model: keras.Model, augment: str = "none", mix: str = "none",
                 seed: int = 0, flip: bool = False, *, erasing: float = 0.0,
                 label_smoothing: float = 0.0, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{model.name}_trainee"), **kwargs)
        self.model = model
        # Separate seeds: the mixing and erasing streams do not depend on the augmentation
        # strength. `flip`: the data's (data.flip), added to any augmentation but "none"
        self.augmentation = augmentation(augment, seed, flip, name="augmentation")
        self.erasing = Erasing(erasing, seed + 2, name="erasing") if erasing else None
        self.mixing = Mixing(mix, seed + 1, name="mixing") if mix != "none" else None
        self.label_smoothing = label_smoothing
        # Built functional models inside: nothing is left to create, and a resumed run can
        # load its checkpoint before the first step.
        self.built = True

    def call(self, images, training=False):
        if not training:
            return self.model(images, training=False)
        outputs = self.transform(images)
        outputs["logits"] = self.model(outputs.pop("images"), training=True)
        return outputs

    def transform(self, images) -> dict:
        """The batch as the step trains on it: augmented, erased, then mixed; with each image's
        partner and the share of its own image when mixed."""
        if self.augmentation is not None:
            images = self.augmentation(images)
        if self.erasing is not None:
            images = self.erasing(images)
        if self.mixing is None:
            return {"images": images}
        images, partner, share = self.mixing(images)
        return {"images": images, "partner": partner, "share": share}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        if not isinstance(y_pred, dict):  # evaluation: the classifier's logits, unsmoothed
            return label_loss(y, y_pred, sample_weight)
        return label_loss(y, y_pred["logits"], sample_weight, y_pred.get("partner"),
                          y_pred.get("share"), self.label_smoothing)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        logits = y_pred["logits"] if isinstance(y_pred, dict) else y_pred
        # Accuracy over the labeled images: an unlabeled one (a negative label) weighs 0, every
        # other image 1 whatever its class weight (compile_trainee weights "accuracy" by this).
        labeled = ops.cast(ops.greater_equal(y, 0), "float32")
        return super().compute_metrics(x, y, logits, labeled)


def compile_trainee(trainee: keras.Model, optimizer, policy, jit_compile: bool,
                    steps_per_execution: int = 1) -> None:
    """The loss is the trainee's own (`compute_loss`); the optimizer gets loss scaling as the
    precision policy says.

    Every variable of the step (the optimizer's slots, the accuracy's totals) is created here,
    not in the step's first trace: TensorFlow traces a step that creates variables twice."""
    accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    trainee.compile(optimizer=policy.wrap_optimizer(optimizer), weighted_metrics=[accuracy],
                    jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    trainee.optimizer.build(trainee.trainable_variables)
