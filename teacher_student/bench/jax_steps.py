"""Stateless JAX training steps, timed: (state, images, labels) -> (output, state), jitted once
and fed from the device, from the host, and from the host through a thread that puts batches on
the device ahead; with XLA's FLOP and memory counts of the step.

Keras' documented pattern: `stateless_call` inside `jax.value_and_grad`, the optimizer's
`stateless_apply`. The distillation step computes the `Distiller`'s loss with the configured
method's own terms (training/methods/).
"""

from __future__ import annotations

import queue
import threading
import time

import keras
import numpy as np

from teacher_student.errors import UserError
from teacher_student.models.precision import PrecisionPolicy
from teacher_student.timing import rate, time_calls
from teacher_student.training.distiller import method_terms
from teacher_student.training.losses import label_loss
from teacher_student.training.methods.terms import teacher_loss

# ---------------------------------------------------------------------------------------------
# Stateless JAX steps: (state, images, labels) -> (output, state).

def _variables(variables) -> list:
    # Copies: the step donates its state, which must not delete the Keras variables' buffers.
    return [v.value.copy() for v in variables]


def _scaled(optimizer, optimizer_values, loss):
    """The loss times the current loss scale (LossScaleOptimizer only), as Keras' JAX trainer
    does: `stateless_apply` then divides the gradients by the same scale."""
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return loss
    with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, optimizer_values))):
        return optimizer.scale_loss(loss)


def _training_step(student: keras.Model, policy: PrecisionPolicy, frozen: list, loss_of):
    """A step training `student` on `loss_of(logits, frozen values, images, labels)`."""
    import jax

    optimizer = policy.wrap_optimizer(keras.optimizers.Adam())
    optimizer.build(student.trainable_variables)

    def loss_and_updates(trainable, non_trainable, optimizer_values, frozen, images, labels):
        logits, non_trainable = student.stateless_call(trainable, non_trainable, images,
                                                       training=True)
        loss = loss_of(logits, frozen, images, labels)
        return _scaled(optimizer, optimizer_values, loss), (loss, non_trainable)

    gradient = jax.value_and_grad(loss_and_updates, has_aux=True)

    def step(state, images, labels):
        trainable, non_trainable, optimizer_values, frozen = state
        (_, (loss, non_trainable)), grads = gradient(trainable, non_trainable, optimizer_values,
                                                     frozen, images, labels)
        trainable, optimizer_values = optimizer.stateless_apply(optimizer_values, grads,
                                                                trainable)
        return loss, (trainable, non_trainable, optimizer_values, frozen)

    state = (_variables(student.trainable_variables),
             _variables(student.non_trainable_variables), _variables(optimizer.variables), frozen)
    return step, state


def classifier_step(model: keras.Model, policy: PrecisionPolicy):
    return _training_step(model, policy, [],
                          lambda logits, _, images, labels: label_loss(labels, logits))


def distill_step(teacher: keras.Model, student: keras.Model, policy: PrecisionPolicy,
                 distill, steps_per_epoch: int):
    """The `Distiller`'s loss, `alpha` times the label loss plus the method's terms on the
    logits: the frozen teacher in inference mode, its gradient stopped, one epoch in."""
    import jax

    terms = method_terms(distill, steps_per_epoch)
    if any(term.taps_features for term in terms):
        raise UserError(f"bench train times the methods on logits; {distill.method!r} also "
                        "compares feature maps: time it with `fit` (the trainer's rates)")

    def loss_of(logits, frozen, images, labels):
        teacher_logits, _ = teacher.stateless_call(frozen[0], frozen[1], images, training=False)
        outputs = {"logits": logits, "teacher_logits": jax.lax.stop_gradient(teacher_logits)}
        return (distill.alpha * label_loss(labels, logits)
                + teacher_loss(terms, outputs, labels, float(steps_per_epoch)))

    frozen = [_variables(teacher.trainable_variables), _variables(teacher.non_trainable_variables)]
    return _training_step(student, policy, frozen, loss_of)


def forward_step(model: keras.Model):
    """Inference logits; the state passes through unchanged."""
    def step(state, images, labels):
        logits, _ = model.stateless_call(state[0], state[1], images, training=False)
        return logits, state

    return step, (_variables(model.trainable_variables), _variables(model.non_trainable_variables))


def rates(step_and_state, batches: list, spec) -> dict:
    """Compiles the step once, then times it fed from batches already on the device, from host
    batches passed to each call, and from host batches put on the device by a thread ahead."""
    import jax

    step, state = step_and_state
    device_batches = jax.device_put(batches)
    lowered = jax.jit(step, donate_argnums=0).lower(state, *device_batches[0])
    info = {"hlo_flops_per_step": _hlo_flops(lowered)}
    if spec.flops_only:
        return info
    start = time.perf_counter()
    compiled = lowered.compile()
    info.update({"compile_s": time.perf_counter() - start, "flops_per_step": _flops(compiled),
                 "xla_memory_bytes": _xla_bytes(compiled),
                 "full_float32_in_hlo": "precision HIGHEST" in lowered.as_text()})
    holder = {"state": state}

    def run(feed) -> None:
        for images, labels in feed:
            out, holder["state"] = compiled(holder["state"], images, labels)
        holder["out"] = np.asarray(jax.block_until_ready(out))  # waits for every step

    def cycle(source: list):
        return (source[i % len(source)] for i in range(spec.steps))

    run(device_batches[i % len(device_batches)] for i in range(spec.warmup))
    on_device = time_calls(lambda: run(cycle(device_batches)), spec.windows)
    from_host = time_calls(lambda: run(cycle(batches)), spec.windows)
    prefetched = time_calls(lambda: run(_prefetch_to_device(cycle(batches))),
                            spec.windows)
    items = spec.steps * spec.batch_size
    return {**info, "device_fed_images_per_s": rate(items, on_device),
            "host_fed_images_per_s": rate(items, from_host),
            "prefetched_images_per_s": rate(items, prefetched),
            "step_ms": 1000 * float(np.median(on_device)) / spec.steps,
            "finite": bool(np.isfinite(holder["out"]).all())}


def _prefetch_to_device(batches, depth: int = 2):
    """`batches` put on the device by a background thread, up to `depth` ahead of the step, so
    the host-to-device copy overlaps the step instead of preceding it."""
    import jax

    ready: queue.Queue = queue.Queue(maxsize=depth)

    def fill() -> None:
        for batch in batches:
            ready.put(jax.device_put(batch))
        ready.put(None)

    threading.Thread(target=fill, daemon=True).start()
    while (batch := ready.get()) is not None:
        yield batch


def _flops(stage) -> float | None:
    """FLOPs counted by XLA's cost analysis of a lowered or compiled step, if it offers one."""
    try:
        analysis = stage.cost_analysis()
    except NotImplementedError:
        return None
    if isinstance(analysis, list):  # older JAX: one dict per computation
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def _hlo_flops(lowered) -> float | None:
    """FLOPs of the step as written, before XLA's rewrites. The GPU's compiled count leaves out
    the convolutions, which run as cuDNN calls, and JAX offers the lowered count only on the
    CPU, so off the CPU XLA's CPU client counts the same HLO module."""
    flops = _flops(lowered)
    if flops is not None:
        return flops
    try:
        import jax
        from jax._src.lib import _jax  # no public way to count a module for another platform

        module = lowered.compiler_ir("hlo").as_hlo_module()
        flops = _jax.hlo_module_cost_analysis(jax.devices("cpu")[0].client, module).get("flops")
        return float(flops) if flops else None
    except (ImportError, AttributeError, RuntimeError):
        return None


def _xla_bytes(compiled) -> int | None:
    """XLA's own count of what the step holds at once: arguments, outputs, temporaries."""
    try:
        stats = compiled.memory_analysis()
        return (stats.argument_size_in_bytes + stats.output_size_in_bytes
                - stats.alias_size_in_bytes + stats.temp_size_in_bytes)
    except (AttributeError, NotImplementedError):
        return None

