"""The whole sampler as one ONNX graph: x_T (from a seed, or given), every step of the model's
sampler, and the images, so any ONNX Runtime binding, OpenVINO or TensorRT runs it with no Python
of ours (docs/ARCHITECTURE.md, "The sampler graph").

The steps are unrolled: each network call is a copy of the denoiser's nodes reading the one set of
weights (export/graph_denoiser.py), its timestep a constant. The step arithmetic is not
written twice: the runtime's own step functions (runtime/methods.py, solvers.py, steps.py) run on
``Traced`` tensors (export/onnx_graph.py) and so emit the same float32 operations, with the same
float32 constants, that numpy executes. What numpy does with loops or data-dependent indexing is
written as graph operations in modules of their own: the analytic Gaussian step
(export/graph_gaussian.py), classifier-free guidance on the doubled batch (graph_denoiser.py), and
the generator (runtime/philox.py, export/onnx_philox.py). export/sampler_plan.py says what to run.

Inputs: ``seed`` int64[S] (S = 1 or N) and ``index`` int64[N] (noise="seed"), or ``noise``
float32[N, C, H, W] (noise="input", deterministic samplers only); ``y`` int64[N] for a
class-conditional model (K, the class count, is the null label; -1 draws the image's random class
from (seed, index) as `sample` does). Outputs: ``x0`` float32[N, C, H, W] in model space and
``image`` uint8[N, H, W, C], rounded as ddpm_deploy/images.py ``to_uint8`` rounds.
"""

from __future__ import annotations

import numpy as np
import onnx
from ddpm_deploy.export.graph_denoiser import InlinedDenoiser
from ddpm_deploy.export.graph_gaussian import GraphGaussian
from ddpm_deploy.export.onnx_graph import FLOAT, INT64, UINT8, GraphBuilder, Traced, value_info
from ddpm_deploy.export.onnx_philox import PhiloxDraws
from ddpm_deploy.export.sampler_plan import GraphPlan
from ddpm_deploy.runtime.methods import SAMPLERS
from ddpm_deploy.runtime.samplers import eps_from_x0
from onnx import helper

from ddpm_deploy.card import card_schedule, image_shape, num_classes


class SamplerGraph:
    """Builds the graph of one plan around one denoiser graph: ``build()``."""

    def __init__(self, model: onnx.ModelProto, card: dict, plan: GraphPlan):
        self.model, self.card, self.plan = model, card, plan
        self.shape = image_shape(card)
        self.k = num_classes(card)
        self.schedule = card_schedule(card)
        self.g = GraphBuilder()
        self.philox = PhiloxDraws(self.g, xor=plan.xor) if plan.noise == "seed" else None
        self.denoiser = InlinedDenoiser(self.g, model, self.k, plan.guidance)
        self.gaussian = (
            GraphGaussian(self.g, card, self.shape, self.k, plan.analytic_dtype)
            if plan.analytic
            else None
        )
        self.draws = 0

    # 1. inputs: x_T and the labels; every draw of the generator made at once
    def inputs(self, draws: int) -> tuple[list[onnx.ValueInfoProto], Traced, str | None]:
        g, (c, h, w) = self.g, self.shape
        drawn = None
        if self.plan.noise == "seed":
            ins = [value_info("seed", INT64, ["S"]), value_info("index", INT64, ["N"])]
            normals, drawn = self.philox.draws(
                "seed", "index", list(range(draws)), c * h * w, self.k
            )
            shape = g.i64([-1, c, h, w], "image_shape")
            self.noise = [Traced(g, g.op("Reshape", z, shape)) for z in normals]
            x = self.draw()
        else:
            ins = [value_info("noise", FLOAT, ["N", c, h, w])]
            x = Traced(g, g.op("Identity", "noise"))
        self.batch = g.op("Shape", x.name, start=0, end=1)
        labels = None
        if self.k:
            ins.append(value_info("y", INT64, ["N"]))
            labels = "y"
            if drawn is not None:  # -1: the image's random class, as `sample` draws it
                negative = g.op("Less", "y", g.i64(0, "zero"))
                labels = g.op("Where", negative, drawn, "y")
        return ins, x, labels

    def draw(self) -> Traced:
        """The next draw of every image's noise (x_T first), shaped like the images."""
        self.draws += 1
        return self.noise[self.draws - 1]

    def groups(self, labels: str | None) -> str:
        """Each image's Gaussian group: its class, or (unconditional rows: no labels, or guidance
        0) the group of all images, as runtime/guidance.py Guided.gaussian_x0 picks it."""
        if labels is not None and self.plan.guidance != 0.0:
            return labels
        return self.g.op("Expand", self.g.i64([self.k], "all_group"), self.batch)

    # 2. the whole loop, as runtime/samplers.py sample() runs it
    def build(self) -> onnx.ModelProto:
        plan = self.plan
        method = SAMPLERS[plan.sampler](
            self.schedule,
            np.asarray(plan.timesteps),
            clip=plan.clip,
            eta=plan.eta,
            variance=plan.variance,
            mix=plan.mix,
        )
        steps = range(len(plan.timesteps))
        noisy = [method.stochastic and method.t_next(i) >= 0 for i in steps]
        ins, x, labels = self.inputs(1 + sum(noisy))
        for i, t in enumerate(plan.timesteps):
            ab = self.schedule.alpha_bars[t]
            if i < plan.analytic:
                eps = eps_from_x0(x, self.gaussian.x0(x, float(ab), self.groups(labels)), ab)
            else:
                eps = self.denoiser(x, t, labels, self.batch)
            z = self.draw() if noisy[i] else None
            x = method.step(i, x, eps, z)
        self.g.op("Identity", x.name, out="x0")
        self.to_uint8("x0", out="image")
        c, h, w = self.shape
        outs = [value_info("x0", FLOAT, ["N", c, h, w]), value_info("image", UINT8, ["N", h, w, c])]
        return self._model(ins, outs)

    def to_uint8(self, x0: str, out: str) -> str:
        """ddpm_deploy/images.py: round((clip(x, -1, 1) + 1) 127.5) as uint8 (round half to even,
        as numpy's round and ONNX Round both do), in N x H x W x C."""
        g = self.g
        clipped = g.op("Clip", x0, g.f32(-1.0, "lo"), g.f32(1.0, "hi"))
        scaled = g.op("Mul", g.op("Add", clipped, g.f32(1.0, "one")), g.f32(127.5, "half255"))
        pixels = g.op("Transpose", g.op("Round", scaled), perm=[0, 2, 3, 1])
        return g.op("Cast", pixels, to=onnx.TensorProto.UINT8, out=out)

    def _model(self, ins, outs) -> onnx.ModelProto:
        inits = [*self.model.graph.initializer, *self.g.initializers]
        graph = helper.make_graph(self.g.nodes, "ddpm_deploy_sampler", ins, outs, inits)
        versions = [o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")]
        opset = max(18, *versions)  # BitwiseXor, Split's num_outputs
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = self.model.ir_version
        return model
