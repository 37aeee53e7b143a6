"""Is a slow mixed-precision trunk our doing or the network's? Times the training step of a stock
`keras.applications` network under Keras' own global dtype policy, no policy module of ours, the
same way `bench train` times our teacher. Run each precision in a fresh process (JAX, a GPU):

    KERAS_BACKEND=jax python scripts/stock_trunk_precision.py --trunk EfficientNetB0 \\
        --precision mixed_float16 [--no-loss-scale]

Prints one line: precision, images/s with batches on the device, ms per step.
"""

from __future__ import annotations

import argparse

import keras

from teacher_student.bench import FULL_FLOAT32, PRECISIONS
from teacher_student.bench import gpu as bench_gpu
from teacher_student.models.precision import PrecisionPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trunk", default="EfficientNetB0")
    parser.add_argument("--precision", default="mixed_float16",
                        choices=PRECISIONS)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-loss-scale", action="store_true",
                        help="mixed_float16 without LossScaleOptimizer: what loss scaling costs")
    args = parser.parse_args()
    spec = bench_gpu.TrainBench(image_size=args.image_size, batch_size=args.batch_size,
                                keras_fit=())
    if args.precision == FULL_FLOAT32:
        bench_gpu.use_full_float32()
    policy_name = "float32" if args.precision == FULL_FLOAT32 else args.precision
    keras.config.set_dtype_policy(policy_name)  # the stock way: one global policy
    model = getattr(keras.applications, args.trunk)(
        weights=None, classes=spec.num_classes, classifier_activation=None,
        input_shape=(spec.image_size, spec.image_size, 3))
    # Only the optimizer's loss scaling comes from our policy, as Keras' compile would add it.
    optimizer_policy = PrecisionPolicy("float32" if args.no_loss_scale else policy_name)
    rates = bench_gpu.classifier_rates(model, optimizer_policy, spec)
    scaling = ", no loss scaling" if args.no_loss_scale else ""
    print(f"stock {args.trunk} {args.precision}{scaling}: "
          f"{rates['device_fed_images_per_s']:.0f} img/s on device, "
          f"{rates['step_ms']:.1f} ms/step, compile {rates['compile_s']:.0f} s, "
          f"finite {rates['finite']}")


if __name__ == "__main__":
    main()
