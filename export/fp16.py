"""A mixed-precision ONNX model for strongly typed TensorRT builds, and what fp16 costs, on the CPU.

TensorRT 11 dropped the FP16 builder flag: precision comes from the model's own types. So the fp16
model is written here with onnxconverter-common, keeping in fp32 what must stay there: the graph's
inputs and outputs, every LayerNormalization (fp16 LayerNorm overflows), and the timestep path up to
the sinusoid (t * w reaches ~1000 radians, far past fp16's resolution for sin/cos).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ddpm_deploy.runtime.ort_backend import CARD_KEY

from ddpm_deploy.card import dumps
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


def _num_classes(path: str | os.PathLike) -> int:
    import onnx

    from ddpm_deploy.card import num_classes

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return num_classes(json.loads(props[CARD_KEY]))


@dataclass
class Fp16Error:
    """|eps_fp16 - eps_fp32| over every output value of every case."""

    median: float
    p99: float
    max: float
    finite: bool
    cases: int

    def __str__(self) -> str:
        return (
            f"fp16 vs fp32 noise prediction over {self.cases} cases: median {self.median:.2e}, "
            f"p99 {self.p99:.2e}, max {self.max:.2e}, all finite: {self.finite}"
        )


def fp16_error(
    fp32: str | os.PathLike, fp16: str | os.PathLike, batch: int = 2, timesteps=None, seed: int = 0
) -> Fp16Error:
    """Run both models with onnx's reference evaluator (exact op semantics, no fused kernels)."""
    from onnx.reference import ReferenceEvaluator

    ref32, ref16 = ReferenceEvaluator(str(fp32)), ReferenceEvaluator(str(fp16))
    # class-conditional: random labels 0..K, the null label K included
    k = _num_classes(fp32) if "y" in ref32.input_names else 0
    timesteps = [0, 1, 10, 100, 250, 500, 750, 900, 999] if timesteps is None else timesteps
    rng = np.random.default_rng(seed)
    diffs, finite = [], True
    for t in timesteps:
        x = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
        feed = {"x": x, "t": np.full(batch, t, dtype=np.int64)}
        if k:
            feed["y"] = rng.integers(0, k + 1, batch, dtype=np.int64)
        # onnx.reference's Sigmoid evaluates both of its np.where branches; in fp16 the unused one
        # overflows (inf, inf/inf). The selected values are exact; finiteness is checked below.
        with np.errstate(over="ignore", invalid="ignore"):
            a, b = ref32.run(None, feed)[0], ref16.run(None, feed)[0]
        finite &= bool(np.isfinite(b).all())
        diffs.append(np.abs(a.astype(np.float64) - b.astype(np.float64)).ravel())
    d = np.concatenate(diffs)
    return Fp16Error(
        float(np.median(d)), float(np.percentile(d, 99)), float(d.max()), finite, len(timesteps)
    )
