"""Frechet distance between Gaussians fitted to two feature sets (the FID formula), in float64.

FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).
tr((S1 S2)^(1/2)) is computed as tr((R S2 R)^(1/2)) with R = S1^(1/2): R S2 R is similar to S1 S2
but symmetric positive semi-definite, so both roots come from numpy's eigh, with no complex parts
to discard (scipy's sqrtm on the non-symmetric product can return them) and no scipy at runtime.
"""

from __future__ import annotations

import numpy as np

from ddpm_deploy.errors import UserError


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (float64) of features [N, D]; needs N > D for a full-rank fit."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    if n <= d:
        raise UserError(min_n_message(n, d))
    return f.mean(axis=0), np.cov(f, rowvar=False)


def min_n_message(n: int, d: int) -> str:
    return (
        f"-n {n} is too small: the covariance of {d}-dimensional features is singular below "
        f"n={d + 1}; use -n {d + 1} or more (10000 for comparable FD numbers)"
    )


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"feature shapes differ: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}"
        )
    root = _sqrt_psd(sigma1)
    middle = root @ sigma2 @ root
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean
    return float(max(fd, 0.0))  # rounding can leave -1e-12 for identical inputs
