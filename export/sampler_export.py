"""`export-sampler`: a model's whole sampler as one ONNX file (export/sampler_graph.py), checked by
onnx.checker and against the numpy runtime on the same seed before it is renamed into place."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from ddpm_deploy.export.sampler_graph import SamplerGraph
from ddpm_deploy.export.sampler_plan import GraphPlan
from ddpm_deploy.runtime.sampler_settings import SamplerSettings

from ddpm_deploy import __version__
from ddpm_deploy.card import CARD_KEY, dumps, num_classes
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import atomic_path, check_writable, onnx_output

GRAPH_KEY = "sampler_graph"  # the card entry (and metadata key suffix) of a sampler graph
CHECK_IMAGES, CHECK_SEED = 8, 0
# The export's own gate: far above float32 noise (ORT's optimisation levels alone move the numpy
# loop's x0 by up to 2.4e-4 on iPNDM, docs/ARCHITECTURE.md "The sampler graph"), far below any
# wrong step. An fp16 graph is checked against the numpy loop running the same fp16 denoiser: what
# differs is then the graph's arithmetic, not fp16's (whose cost against fp32 is reported, not
# gated: it is the precision the user asked for). Its gate is about twice fp16's own floor, the
# worst measured: ORT's own optimisation levels move that loop by a mean 2.6e-3 and 5 grey levels
# (mnist at 2 steps; 1.2e-4 and 1 level with the shipped models' own samplers), `python
# benchmarks/fp16_floor.py` on an AMD EPYC; the fp16 graphs measured 2.5e-3 and 6 levels there.
GATE = {"fp32": ("x0_max_abs", 1e-3, 1), "fp16": ("x0_mean_abs", 5e-3, 10)}


def graph_card(card: dict, plan: GraphPlan) -> dict:
    """The sampler file's card: the model's, its statistics now initializers of the graph and its
    sampler the graph's own (``sampler_graph``), so no runtime applies a sampler around it."""
    out = {k: v for k, v in card.items() if k not in ("gaussian", "sampler")}
    out[GRAPH_KEY] = plan.to_json()
    return out


def export_sampler(
    model: str,
    out: str | os.PathLike,
    settings: SamplerSettings,
    guidance: float | None,
    *,
    noise: str = "seed",
    target: str = "ort",
    precision: str = "fp32",
) -> dict:
    """Write ``out``; returns what was written and the check's numbers."""
    import onnx
    from ddpm_deploy.runtime.backends import open_denoiser
    from ddpm_deploy.runtime.guidance import check_guidance, guidance_for

    check_guidance(guidance)
    den = open_denoiser("ort", model)
    out = onnx_output(out, den.path)
    if GRAPH_KEY in den.card:
        raise UserError(f"{den.path} already holds a whole sampler; pass the model it came from")
    check_writable(out.parent, "-o")  # made by atomic_path
    resolved = settings.for_model(den.card)
    w = guidance_for(den.card, guidance)
    plan = GraphPlan.resolve(den.card, resolved, w, noise, target, precision)
    with tempfile.TemporaryDirectory(prefix="ddpm-deploy-fp16-") as tmp:
        net = denoiser_file(den.path, precision, Path(tmp))
        proto = SamplerGraph(onnx.load(str(net)), den.card, plan).build()
        half = open_denoiser("ort", net) if net != den.path else den
        return write_checked(proto, out, den, half, resolved, plan)


def write_checked(proto, out: Path, den, net, resolved: SamplerSettings, plan: GraphPlan) -> dict:
    """The graph ``proto`` written to ``out`` with its card, if it passes onnx.checker and its
    check against the numpy loop running ``net`` (the denoiser it holds; ``den``: the model)."""
    import onnx

    props = {
        p.key: p.value for p in onnx.load(str(den.path), load_external_data=False).metadata_props
    }
    props.pop("ddpm_deploy.sampler", None)
    props[CARD_KEY] = dumps(graph_card(den.card, plan))
    props[f"ddpm_deploy.{GRAPH_KEY}"] = json.dumps(plan.to_json())
    onnx.helper.set_model_props(proto, props)
    proto.producer_name, proto.producer_version = "ddpm-deploy", __version__
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise UserError(f"the sampler graph fails onnx.checker: {str(e).splitlines()[0]}") from None
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
        check = check_against_runtime(tmp, net, resolved, plan)
        if net is not den:  # fp16: its cost against the fp32 model, reported
            cost = check_against_runtime(tmp, den, resolved, plan)
            check["against_fp32"] = {k: v for k, v in cost.items() if k != "images"}
        key, bound, levels = GATE[plan.precision]
        if check[key] > bound or check["max_levels"] > levels:
            raise UserError(
                f"the sampler graph disagrees with the numpy runtime ({key} {check[key]:.2e}, "
                f"{check['max_levels']} grey levels); please report it"
            )
    return {
        "out": str(out),
        "bytes": Path(out).stat().st_size,
        "model_bytes": den.path.stat().st_size,
        "nodes": len(proto.graph.node),
        "plan": plan.to_json(),
        "check": check,
    }


def denoiser_file(path: Path, precision: str, tmp: Path) -> Path:
    """The model's file, or its mixed-precision fp16 copy in ``tmp`` (export/fp16.py: norms,
    softmax and the timestep path kept fp32, inputs and outputs fp32, so the steps stay fp32)."""
    if precision == "fp32":
        return path
    from ddpm_deploy.export.fp16 import to_fp16

    return to_fp16(path, tmp / "half.onnx")


def check_against_runtime(path: Path, den, settings: SamplerSettings, plan: GraphPlan) -> dict:
    """The graph, fed as `sample` feeds a sampler file (runtime/graph_feeds.py), and the numpy
    runtime on CHECK_IMAGES images of CHECK_SEED (random classes)."""
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.runtime.graph_feeds import graph_feeds
    from ddpm_deploy.runtime.guidance import Guided, random_labels
    from ddpm_deploy.runtime.noise import PerImageNoise
    from ddpm_deploy.runtime.samplers import sample

    from ddpm_deploy.images import to_uint8

    n, k = CHECK_IMAGES, num_classes(den.card)
    labels = random_labels(k, CHECK_SEED, 0, n) if k else None
    graph = load_denoiser("ort", path)
    x0, image = graph.session.run(["x0", "image"], graph_feeds(graph, CHECK_SEED, 0, n, labels))
    guided = Guided(den, labels, plan.guidance)
    noise = PerImageNoise(CHECK_SEED, 0, n)
    ref = sample(guided, den.schedule, n, noise, **settings.sampler_kwargs(), shape=den.image_shape)
    levels = np.abs(image.astype(np.int16) - to_uint8(ref).transpose(0, 2, 3, 1))
    return {
        "images": n,
        "x0_max_abs": float(np.abs(x0 - ref).max()),
        "x0_mean_abs": float(np.abs(x0 - ref).mean()),
        "pixels_equal": float((levels == 0).mean()),
        "max_levels": int(levels.max()),
    }
