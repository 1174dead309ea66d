"""Noise that depends only on (seed, image index): the same image at any -n, chunk or batch size.

Every image owns its draws of the one generator every target shares (runtime/philox.py: Philox4x32
keyed by the seed, counted by image index and draw). The sampler draws x_T and then one step's
noise at a time for the whole batch; row k of draw d is image ``start + k``'s draw d whatever the
batch, so image i's x_T and every step's z are the same in a run of 16 images, of 37, in chunks of
10, in the sampler graph (export/sampler_graph.py), the page and the server.
"""

from __future__ import annotations

import math

import numpy as np
from ddpm_deploy.runtime.philox import normals


class PerImageNoise:
    """A drop-in for ``np.random.Generator.standard_normal`` over a block of image indices."""

    def __init__(self, seed: int, start: int, count: int):
        if seed < 0 or start < 0:
            raise ValueError(f"seed and image index must be >= 0, got {seed}, {start}")
        self.seeds = np.full(count, seed, dtype=np.uint64)
        self.indices = np.arange(start, start + count, dtype=np.uint64)
        self.draws = 0  # x_T is draw 0, the k-th step noise draw k

    @classmethod
    def for_images(cls, seeds: np.ndarray, indices: np.ndarray) -> PerImageNoise:
        """Row k draws from image ``indices[k]`` of seed ``seeds[k]``: rows of many runs in one
        batch (the server's merged requests) get exactly the noise each run would draw alone."""
        if len(seeds) != len(indices) or (len(seeds) and min(seeds.min(), indices.min()) < 0):
            raise ValueError("one seed per index, both >= 0")
        noise = cls(0, 0, 0)
        noise.seeds = np.asarray(seeds).astype(np.uint64)
        noise.indices = np.asarray(indices).astype(np.uint64)
        return noise

    def standard_normal(self, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        if shape[0] != len(self.indices):
            raise ValueError(f"a draw of {shape[0]} rows for {len(self.indices)} images")
        z = normals(self.seeds, self.indices, self.draws, math.prod(shape[1:]))
        self.draws += 1
        return z.reshape(shape).astype(dtype, copy=False)
