"""The dtype-graph audit: finds, in a built model, each thing that breaks mixed precision.

`audit_dtypes(model)` walks the functional graph (nested models too) and returns findings,
each naming a layer and its problem; an empty list means the model is clean:

- a merge (Add, Concatenate, Multiply, ...) fed tensors of different dtypes, or, under a mixed
  policy, an input that does not come through an explicit `CastTo` layer;
- a bilinear resize computed in float16 or bfloat16 (its XLA gradient is float32);
- a model output, or the logits layer, that is not float32;
- a variable that is not float32;
- a cast layer in a float32 model (float32 graphs are the plain ones);
- for a compiled model, loss scaling missing under mixed_float16 or present elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from teacher_student.models.graph import walk_layers
from teacher_student.models.layers import CastTo
from teacher_student.models.precision import FLOAT32, is_resize
from teacher_student.tables import markdown_table

MERGE_TYPES = (layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum,
               layers.Minimum, layers.Concatenate, layers.Dot)
LOW_PRECISION = ("float16", "bfloat16")


@dataclass(frozen=True)
class Finding:
    layer: str
    problem: str


@dataclass(frozen=True)
class Cast:
    layer: str
    source: str
    target: str
    feeds: str


def infer_precision(model: keras.Model) -> str:
    """The policy a model was built with, read off its layers' compute dtypes."""
    dtypes = {layer.compute_dtype for _, layer in walk_layers(model)}
    if "float16" in dtypes:
        return "mixed_float16"
    if "bfloat16" in dtypes:
        return "mixed_bfloat16"
    return FLOAT32


def audit_dtypes(model: keras.Model, precision: str | None = None) -> list[Finding]:
    precision = precision or infer_precision(model)
    mixed = precision != FLOAT32
    findings = []
    for path, layer in walk_layers(model):
        findings += _check_layer(path, layer, mixed)
    for tensor in model.outputs:
        if tensor.dtype != FLOAT32:
            producer = tensor._keras_history.operation.name
            findings.append(Finding(producer, f"model output is {tensor.dtype}, must be float32"))
    for variable in model.weights:
        if keras.backend.is_float_dtype(variable.dtype) and variable.dtype != FLOAT32:
            problem = f"variable is {variable.dtype}, must be float32"
            findings.append(Finding(variable.path, problem))
    findings += _check_optimizer(model, precision)
    return findings


def list_casts(model: keras.Model) -> list[Cast]:
    """Every `CastTo` layer: what it casts from and to, and which layer it feeds."""
    consumers = {}
    for path, layer in walk_layers(model):
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                consumers.setdefault(id(tensor._keras_history.operation), path)
    casts = []
    for path, layer in walk_layers(model):
        if isinstance(layer, CastTo):
            for node in layer._inbound_nodes:
                source = node.input_tensors[0].dtype
                casts.append(Cast(path, source, layer.target_dtype, consumers.get(id(layer), "-")))
    return casts


def _check_layer(path: str, layer, mixed: bool) -> list[Finding]:
    findings = []
    if isinstance(layer, MERGE_TYPES):
        for node in layer._inbound_nodes:
            dtypes = [t.dtype for t in node.input_tensors]
            if len(set(dtypes)) > 1:
                findings.append(Finding(path, f"merge inputs differ in dtype: {dtypes}"))
            fed = [t._keras_history.operation for t in node.input_tensors]
            uncast = [op.name for op in fed if not isinstance(op, CastTo)]
            if mixed and uncast:
                findings.append(Finding(path, f"merge input not fed by a CastTo layer: {uncast}"))
    if is_resize(layer) and layer.compute_dtype in LOW_PRECISION:
        findings.append(Finding(
            path, f"{layer.interpolation} resize computed in {layer.compute_dtype}: its XLA "
            "gradient is float32; compute it in a float32 island"))
    if is_resize(layer) and layer.interpolation == "bicubic":
        findings.append(Finding(
            path, "bicubic resize: TensorFlow's XLA has no gradient for it in any precision; "
            "use bilinear or area"))
    if layer.name == "logits" and layer.compute_dtype != FLOAT32:
        findings.append(Finding(path, f"logits computed in {layer.compute_dtype}, must be float32"))
    if isinstance(layer, CastTo) and not mixed:
        findings.append(Finding(path, "cast layer in a float32 model"))
    return findings


def _check_optimizer(model: keras.Model, precision: str) -> list[Finding]:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not model.compiled:
        return []
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    if precision == "mixed_float16" and not scaled:
        return [Finding("optimizer", "mixed_float16 without LossScaleOptimizer: gradients "
                        "underflow; wrap it with PrecisionPolicy.wrap_optimizer")]
    if precision != "mixed_float16" and scaled:
        return [Finding("optimizer", f"LossScaleOptimizer under {precision}: not needed")]
    return []


def format_findings(findings: list[Finding]) -> str:
    if not findings:
        return "no findings"
    return markdown_table([vars(f) for f in findings],
                          [("layer", "layer", ""), ("problem", "problem", "")])


def format_casts(casts: list[Cast]) -> str:
    if not casts:
        return "no cast layers"
    return markdown_table([vars(c) for c in casts],
                          [("layer", "cast layer", ""), ("source", "from", ""),
                           ("target", "to", ""), ("feeds", "feeds", "")])
