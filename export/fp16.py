"""A mixed-precision ONNX model for strongly typed TensorRT builds.

TensorRT 11 dropped the FP16 builder flag: precision comes from the model's own types. So the fp16
model is written here with onnxconverter-common, keeping in fp32 what must stay there: the graph's
inputs and outputs, every LayerNormalization (fp16 LayerNorm overflows), and the timestep path up to
the sinusoid (t * w reaches ~1000 radians, far past fp16's resolution for sin/cos).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from ddpm_deploy.card import CARD_KEY, dumps
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import atomic_path

# GroupNorm exports as InstanceNormalization (+ Reshape, Mul, Add): its statistics stay fp32, as does
# the attention softmax (exp overflows fp16 past 11).
FP32_OPS = ["LayerNormalization", "InstanceNormalization", "GroupNormalization", "Softmax"]
# Resize takes its scales as a float32 tensor, which the converter would turn into fp16 (invalid);
# nearest-neighbour upsampling moves values without arithmetic, so fp32 there costs no accuracy.
FP32_OPS += ["Resize"]
PRECISION_KEY = "ddpm_deploy.precision"


def timestep_path(graph, start: str = "t") -> list[str]:
    """Names of the nodes fed (transitively) by input ``start``, up to the first Gemm or MatMul
    (the time MLP, or a conditional model's label embedding: y -> Equal -> Cast -> MatMul)."""
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    seen: dict[str, None] = {}
    frontier = [start]
    while frontier:
        for node in consumers.get(frontier.pop(), []):
            if node.op_type not in ("Gemm", "MatMul") and node.name not in seen:
                seen[node.name] = None
                frontier.extend(node.output)
    return list(seen)


def _rename_input(graph, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for out in graph.output:
        if out.name == old:  # a graph output keeps its name: route the producer's value to it
            raise ValueError(f"cannot bypass graph output {old!r}")


def keep_fp32_paths(half, original) -> None:
    """Undo two things the converter does to nodes it was told to keep in fp32:

    * Cast(fp32 -> fp16) -> Cast(fp16 -> fp32) pairs between two fp32 nodes (e.g. between the
      timestep's Mul and Sin), which round the value to fp16 on the way: the pair is removed;
    * fp16 initializers cast back to fp32 for an fp32 node (e.g. the sinusoid's frequencies):
      the Cast is replaced by the original fp32 values, so nothing is rounded.
    """
    from onnx import TensorProto, numpy_helper

    g = half.graph
    to = {n.name: next((a.i for a in n.attribute if a.name == "to"), None) for n in g.node}
    consumers: dict[str, list] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in g.output}
    drop = set()
    for node in g.node:
        if node.op_type != "Cast" or to[node.name] != TensorProto.FLOAT16:
            continue
        users = consumers.get(node.output[0], [])
        if not users or node.output[0] in outputs:
            continue
        if all(u.op_type == "Cast" and to[u.name] == TensorProto.FLOAT for u in users):
            for u in users:
                if u.output[0] in outputs:
                    break
            else:
                for u in users:
                    _rename_input(g, u.output[0], node.input[0])
                    drop.add(u.name)
                drop.add(node.name)
    fp32_inits = {i.name: i for i in original.graph.initializer if i.data_type == TensorProto.FLOAT}
    half_inits = {i.name: i for i in g.initializer}
    for node in g.node:
        src = node.input[0] if node.input else None
        if (
            node.op_type == "Cast"
            and node.name not in drop
            and to[node.name] == TensorProto.FLOAT
            and src in half_inits
            and half_inits[src].data_type == TensorProto.FLOAT16
            and src in fp32_inits
            and node.output[0] not in outputs
        ):
            values = numpy_helper.to_array(fp32_inits[src])
            g.initializer.append(numpy_helper.from_array(values, node.output[0]))
            drop.add(node.name)
    kept = [n for n in g.node if n.name not in drop]
    del g.node[:]
    g.node.extend(kept)
    used = {name for n in g.node for name in n.input}
    unused = [i for i in g.initializer if i.name not in used and i.name not in outputs]
    for init in unused:
        g.initializer.remove(init)
    dropped_values = {o for n in kept for o in n.output}
    stale = [v for v in g.value_info if v.name not in dropped_values and v.name not in used]
    for v in stale:
        g.value_info.remove(v)


def to_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write the fp16 model; it must pass onnx.checker and load in ONNX Runtime, or nothing is written."""
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    if any(p.key == PRECISION_KEY and p.value != "fp32" for p in model.metadata_props):
        raise UserError(f"{src} is already an fp16 model; pass the fp32 export")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-constant notes on values rounded to fp16's range
        half = float16.convert_float_to_float16(
            model,
            keep_io_types=True,
            op_block_list=FP32_OPS,
            node_block_list=timestep_path(model.graph) + timestep_path(model.graph, "y"),
        )
    keep_fp32_paths(half, model)
    props = {p.key: p.value for p in model.metadata_props}
    if CARD_KEY not in props:
        raise UserError(
            f"{src} lacks model metadata [{CARD_KEY!r}]; export it with `ddpm-deploy export`"
        )
    card = {**json.loads(props[CARD_KEY]), "precision": "fp16"}
    del half.metadata_props[:]
    onnx.helper.set_model_props(half, {**props, CARD_KEY: dumps(card), PRECISION_KEY: "fp16"})
    try:
        onnx.checker.check_model(half, full_check=True)
    except onnx.checker.ValidationError as e:
        raise UserError(f"the fp16 model fails onnx.checker: {str(e).splitlines()[0]}") from None
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        onnx.save(half, str(tmp))
        import onnxruntime as ort

        ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])  # must load
    return dst
