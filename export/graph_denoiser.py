"""The denoiser inside the sampler graph: each network call a copy of the model's nodes under its
own prefix, reading the one set of weights (stored once) with its timestep a constant, and
classifier-free guidance as runtime/guidance.py does it (one call on the doubled batch)."""

from __future__ import annotations

import numpy as np
import onnx
from ddpm_deploy.export.onnx_graph import GraphBuilder, Traced

from ddpm_deploy.errors import UserError


class InlinedDenoiser:
    """eps(x, t) of a class-conditional (``k`` classes, null label k) or unconditional model,
    guided with weight ``w``."""

    def __init__(self, g: GraphBuilder, model: onnx.ModelProto, k: int, w: float):
        for node in model.graph.node:
            if any(
                a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                for a in node.attribute
            ):
                raise UserError(f"the denoiser has a {node.op_type} with a subgraph; re-export it")
        self.g, self.model, self.k, self.w = g, model, k, w
        self.calls = 0

    def __call__(self, x: Traced, t: int, labels: str | None, batch: str) -> Traced:
        """``labels`` int64 [N] (None: unconditional); ``batch`` the shape [N]."""
        g, w = self.g, self.w
        if not self.k:
            return self.call(x.name, t, None)
        null = g.op("Expand", g.i64([self.k], "null"), batch)
        if w == 0.0:
            return self.call(x.name, t, null)
        if w == 1.0:
            return self.call(x.name, t, labels)
        both = g.op("Concat", x.name, x.name, axis=0)
        eps = self.call(both, t, g.op("Concat", labels, null, axis=0))
        cond, uncond = (
            Traced(g, h) for h in g.op("Split", eps.name, axis=0, num_outputs=2, outputs=2)
        )
        return uncond + np.float32(w) * (cond - uncond)  # runtime/guidance.py Guided._guided

    def call(self, x: str, t: int, y: str | None) -> Traced:
        """A copy of the denoiser's nodes reading x, t (a constant per call) and y."""
        g = self.g
        batch = g.op("Shape", x, start=0, end=1)
        feeds = {"x": x, "t": g.op("Expand", g.i64([t], "t"), batch)}
        if y is not None:
            feeds["y"] = y
        prefix = f"call{self.calls}/"
        self.calls += 1
        rename = dict(feeds)
        for init in self.model.graph.initializer:
            rename[init.name] = init.name
        for node in self.model.graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = prefix + (node.name or node.output[0])
            del copy.input[:]
            copy.input.extend(rename.get(i, prefix + i) if i else "" for i in node.input)
            del copy.output[:]
            copy.output.extend(prefix + o for o in node.output)
            g.nodes.append(copy)
        return Traced(g, prefix + self.model.graph.output[0].name)
