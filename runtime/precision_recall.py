"""Improved precision and recall (Kynkäänniemi et al. 2019) with k-nearest-neighbour manifolds.

Each set's manifold is the union of balls around its points, each ball reaching its point's k-th
nearest neighbour in the same set. Precision: the share of generated points inside the real
manifold (fidelity). Recall: the share of real points inside the generated manifold (diversity).
A model that draws only class-typical images scores high precision and low recall; FD mixes both.
"""

from __future__ import annotations

import numpy as np

K = 3  # the paper's default neighbourhood size


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def knn_radii(feats: np.ndarray, k: int = K, chunk: int = 1000) -> np.ndarray:
    """Squared distance of every point to its k-th nearest neighbour in the same set (itself excluded)."""
    out = np.empty(len(feats))
    for i in range(0, len(feats), chunk):
        d = _sq_dists(feats[i : i + chunk], feats)
        out[i : i + chunk] = np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself
    return out


def coverage_share(
    points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int = 1000
) -> float:
    """Share of ``points`` inside at least one ball (centre, squared radius)."""
    inside = 0
    for i in range(0, len(points), chunk):
        d = _sq_dists(points[i : i + chunk], centres)
        inside += int(np.count_nonzero((d <= radii[None, :]).any(axis=1)))
    return inside / len(points)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = K) -> dict:
    """Precision and recall of ``fake`` against ``real`` features [N, D] (float64)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} points per set")
    return {
        "precision": coverage_share(fake, real, knn_radii(real, k)),
        "recall": coverage_share(real, fake, knn_radii(fake, k)),
        "k": k,
    }
