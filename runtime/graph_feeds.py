"""What a sampler graph file (`export-sampler`, docs/ARCHITECTURE.md "The sampler graph") is fed for
a chunk of images: seed and image indices, or x_T drawn by the runtime for a graph that takes noise,
and each image's class (the null label for unconditional rows)."""

from __future__ import annotations

import numpy as np
from ddpm_deploy.runtime.noise import PerImageNoise

from ddpm_deploy.card import num_classes
from ddpm_deploy.onnx_model import GRAPH_KEY


def graph_feeds(denoiser, seed: int, start: int, count: int, labels: np.ndarray | None) -> dict:
    """Feeds for images start .. start+count-1 of ``seed``; ``labels`` one per image or None."""
    feeds: dict[str, np.ndarray] = {}
    if denoiser.card[GRAPH_KEY].get("noise") == "seed":
        feeds["seed"] = np.array([seed], np.int64)
        feeds["index"] = np.arange(start, start + count, dtype=np.int64)
    else:
        noise = PerImageNoise(seed, start, count)
        feeds["noise"] = noise.standard_normal((count, *denoiser.image_shape), np.float32)
    k = num_classes(denoiser.card)
    if k:
        feeds["y"] = np.full(count, k, np.int64) if labels is None else labels.astype(np.int64)
    return feeds
