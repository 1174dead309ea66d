"""FLOPs per image of an exported denoiser, counted once from the ONNX graph (2 FLOPs per MAC).

Only the multiply-accumulate ops are counted (Conv, ConvTranspose, Gemm, MatMul); elementwise ops,
LayerNorm and activations add a few percent that the count leaves out on purpose.
"""

from __future__ import annotations

import math
import os


def _shapes(model) -> dict[str, list[int]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return a.i
    return default


def count_flops(onnx_path: str | os.PathLike) -> dict[str, int]:
    """FLOPs per image by op type, plus 'total', for batch 1."""
    import onnx

    model = onnx.load(str(onnx_path))
    for inp in model.graph.input:  # fix the batch axis to 1 so every shape infers to numbers
        inp.type.tensor_type.shape.dim[0].dim_value = 1
    shapes = _shapes(model)
    flops: dict[str, int] = {}
    for node in model.graph.node:
        op = node.op_type
        if op == "Conv":
            w, out = shapes[node.input[1]], shapes[node.output[0]]
            n = 2 * math.prod(out[1:]) * math.prod(w[1:])  # each output: C_in/group * kH * kW MACs
        elif op == "ConvTranspose":
            w, x = shapes[node.input[1]], shapes[node.input[0]]
            # each input element scatters into C_out/group * kH * kW outputs (w: C_in, C_out/g, kH, kW)
            n = 2 * math.prod(x[1:]) * math.prod(w[1:])
        elif op in ("Gemm", "MatMul"):
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            k = a[0] if op == "Gemm" and _attr(node, "transA", 0) else a[-1]
            cols = b[0] if op == "Gemm" and _attr(node, "transB", 0) else b[-1]
            rows = math.prod(shapes[node.output[0]]) // cols
            n = 2 * rows * cols * k
        else:
            continue
        flops[op] = flops.get(op, 0) + n
    flops["total"] = sum(flops.values())
    return flops
