"""Noise that depends only on (seed, image index): the same image at any -n, chunk or batch size.

Each image owns a counter-based stream, numpy's Philox keyed by (seed, index). The sampler draws
x_T and then one step's noise at a time for the whole batch; row k of every draw comes from image
``start + k``'s own stream, in the same order whatever the batch, so image i's x_T and every
step's z are the same in a run of 16 images, of 37, or in chunks of 10.
"""

from __future__ import annotations

import numpy as np


class PerImageNoise:
    """A drop-in for ``np.random.Generator.standard_normal`` over a block of image indices."""

    def __init__(self, seed: int, start: int, count: int):
        if seed < 0 or start < 0:
            raise ValueError(f"seed and image index must be >= 0, got {seed}, {start}")
        self.streams = [
            np.random.Generator(np.random.Philox(key=[i, seed]))
            for i in range(start, start + count)
        ]

    @classmethod
    def for_images(cls, seeds: np.ndarray, indices: np.ndarray) -> PerImageNoise:
        """Row k draws from image ``indices[k]`` of seed ``seeds[k]``: rows of many runs in one
        batch (the server's merged requests) get exactly the noise each run would draw alone."""
        if len(seeds) != len(indices) or (len(seeds) and min(seeds.min(), indices.min()) < 0):
            raise ValueError("one seed per index, both >= 0")
        noise = cls(0, 0, 0)
        noise.streams = [
            np.random.Generator(np.random.Philox(key=[int(i), int(s)]))
            for s, i in zip(seeds, indices, strict=True)
        ]
        return noise

    def standard_normal(self, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        if shape[0] != len(self.streams):
            raise ValueError(f"a draw of {shape[0]} rows for {len(self.streams)} images")
        out = np.empty(shape, dtype=dtype)
        for row, stream in zip(out, self.streams, strict=True):
            row[...] = stream.standard_normal(row.shape, dtype=dtype)
        return out
