"""Floating-point work per image, counted from a graph: 2 FLOPs per multiply-add of every
Conv, ConvTranspose, Gemm and MatMul (element-wise ops, under 1% here, are left out)."""

from __future__ import annotations

from math import prod
from pathlib import Path

import onnx
from onnx import shape_inference


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Every tensor's shape with the batch axis fixed to 1."""
    for value in model.graph.input:
        value.type.tensor_type.shape.dim[0].dim_value = 1
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        shapes[value.name] = [d.dim_value for d in value.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def flops_per_image(path: Path) -> int:
    model = onnx.load(str(path))
    shapes = _shapes(model)
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":  # out elements x (in channels / groups x kernel area)
            weight = shapes[node.input[1]]
            total += prod(shapes[node.output[0]]) * prod(weight[1:])
        elif node.op_type == "ConvTranspose":  # every input element meets the whole kernel
            weight = shapes[node.input[1]]
            total += prod(shapes[node.input[0]]) * prod(weight[1:])
        elif node.op_type in ("Gemm", "MatMul"):  # (M x K) @ (K x N)
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            total += prod(out) * a[-1]
    return 2 * total
