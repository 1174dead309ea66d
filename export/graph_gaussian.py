"""The analytic step inside the sampler graph: runtime/gaussian.py ``GaussianStats.x0`` for each
image's group (a Gather of its mean and directions, two batched MatMuls), in float64 as numpy
computes it, or float32 for the targets without float64 (TensorRT, WebGPU). The statistics are
stored once, as the card stores them (the mean float32, the directions float16), and widened in
the graph."""

from __future__ import annotations

import numpy as np
from ddpm_deploy.export.onnx_graph import DOUBLE, FLOAT, GraphBuilder, Traced
from ddpm_deploy.runtime.gaussian import GaussianStats

from ddpm_deploy.errors import UserError


class GraphGaussian:
    def __init__(
        self, g: GraphBuilder, card: dict, shape: tuple[int, int, int], k: int, dtype: str
    ):
        entry = card.get("gaussian")
        if not entry:
            raise UserError(
                "analytic steps need the model's Gaussian statistics, which its card lacks"
            )
        self.g, self.shape = g, shape
        self.np_dtype = np.dtype(dtype)
        self.onnx_dtype = DOUBLE if self.np_dtype == np.float64 else FLOAT
        self.stats = GaussianStats.from_card(entry, k, int(np.prod(shape)))
        mean = g.f32(self.stats.mean, "gaussian_mean")
        half = g.const(self.stats.vectors, np.float16, "gaussian_vectors")
        self.mean = g.op("Cast", mean, to=self.onnx_dtype) if self.onnx_dtype == DOUBLE else mean
        self.vectors = g.op("Cast", half, to=self.onnx_dtype)

    def x0(self, x: Traced, alpha_bar: float, groups: str) -> Traced:
        """E[x_0 | x_t = x], clipped, for each row's group (int64 [N])."""
        g, (c, h, w), stats = self.g, self.shape, self.stats
        a, s2 = np.sqrt(alpha_bar), 1.0 - alpha_bar
        gain = a * stats.variances / (a * a * stats.variances + s2)
        mu = g.op("Gather", self.mean, groups, axis=0)  # [N, D]
        v = g.op("Gather", self.vectors, groups, axis=0)  # [N, r, D]
        flat = g.op(
            "Cast", g.op("Reshape", x.name, g.i64([0, c * h * w], "flat")), to=self.onnx_dtype
        )
        # 1. coordinates of x_t - a mu along each principal direction
        centred = g.op("Sub", flat, g.op("Mul", mu, g.const(a, self.np_dtype, "a")))
        one = g.i64([1], "axis1")
        v_t = g.op("Transpose", v, perm=[0, 2, 1])
        coords = g.op("MatMul", g.op("Unsqueeze", centred, one), v_t)  # [N, 1, r]
        # 2. Wiener gain per direction, back to pixels around the mean, clipped
        gains = g.op("Gather", g.const(gain, self.np_dtype, "gain"), groups, axis=0)
        scaled = g.op("Mul", coords, g.op("Unsqueeze", gains, one))
        back = g.op("Squeeze", g.op("MatMul", scaled, v), one)
        lo, hi = g.const(-1.0, self.np_dtype, "lo"), g.const(1.0, self.np_dtype, "hi")
        x0 = g.op("Clip", g.op("Add", mu, back), lo, hi)
        if self.onnx_dtype == DOUBLE:
            x0 = g.op("Cast", x0, to=FLOAT)
        return Traced(g, g.op("Reshape", x0, g.i64([-1, c, h, w], "image_shape")))
