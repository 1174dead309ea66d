"""The analytic denoiser: the data's class-conditional Gaussian statistics in place of the network
at the high-noise end of a sampler's grid (docs/ARCHITECTURE.md, "Samplers").

If x_0 ~ N(mu, Sigma) and x_t = a x_0 + s eps (a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t)),
the best data prediction is the posterior mean (Wang & Vastola 2023; the AMED/GITS/SFD first step)

    E[x_0 | x_t] = mu + Sigma a (a^2 Sigma + s^2 I)^-1 (x_t - a mu).

With Sigma approximated by its top r principal directions V (rows) and variances l, that is
mu + V^T diag(a l / (a^2 l + s^2)) V (x_t - a mu): the components outside the top r are set to
the mean. One set of statistics per class and one for all images together (the null label, and
unconditional models), computed from the training images; about 2 r D multiply-adds per image
instead of a network call. The statistics travel in the model card (``card["gaussian"]``) so every
backend, the page and serve read them from the model file alone.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

from ddpm_deploy.card_checks import check_gaussian, gaussian_arrays
from ddpm_deploy.card_schema import GAUSSIAN_FORMAT
from ddpm_deploy.errors import UserError

FORMAT = GAUSSIAN_FORMAT
DEFAULT_RANK = 64


def _encode(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(
        np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
    ).decode()


@dataclass(frozen=True)
class GaussianStats:
    """Per group g (classes 0..K-1, then all images together): mean [G, D], the top-r principal
    directions vectors [G, r, D] (orthonormal rows) and their variances [G, r], in model space."""

    mean: np.ndarray
    vectors: np.ndarray
    variances: np.ndarray

    @property
    def groups(self) -> int:
        return self.mean.shape[0]

    @property
    def rank(self) -> int:
        return self.vectors.shape[1]

    def x0(self, x: np.ndarray, alpha_bar: float, groups: np.ndarray) -> np.ndarray:
        """E[x_0 | x_t = x] for each row (its group in ``groups``), clipped to [-1, 1]; float64
        arithmetic, returned in x's dtype. Rows of one group share two matrix products."""
        n = len(x)
        flat = x.reshape(n, -1).astype(np.float64)
        a, s2 = np.sqrt(alpha_bar), 1.0 - alpha_bar
        out = np.empty_like(flat)
        for g in np.unique(groups):
            rows = np.flatnonzero(groups == g)
            mu, v, lam = self.mean[g], self.vectors[g], self.variances[g]
            # 1. coordinates of x_t - a mu along each principal direction
            coords = (flat[rows] - a * mu) @ v.T
            # 2. Wiener gain per direction, a l / (a^2 l + s^2), back to pixels around the mean
            out[rows] = mu + (coords * (a * lam / (a * a * lam + s2))) @ v
        return np.clip(out, -1.0, 1.0).reshape(x.shape).astype(x.dtype, copy=False)

    def to_card(self) -> dict:
        g, r, d = self.vectors.shape
        return {
            "format": FORMAT,
            "groups": g,
            "rank": r,
            "dim": d,
            # little-endian base64: the mean and variances float32, the directions float16
            "mean": _encode(self.mean, "float32"),
            "vectors": _encode(self.vectors, "float16"),
            "variances": _encode(self.variances, "float32"),
        }

    @classmethod
    def from_card(cls, entry: dict, num_classes: int, dim: int) -> GaussianStats:
        """The card's ``gaussian`` entry, checked against the model as ``validate_card`` checks
        it (ddpm_deploy/card_checks.py: one line when it does not fit), then decoded."""

        def bad(what: str) -> UserError:
            return UserError(
                f"the model card's Gaussian statistics are unreadable ({what}); recompute them "
                "with `ddpm-deploy learn-sampler MODEL --data-root DIR -o OUT.onnx`"
            )

        check_gaussian(entry, num_classes, dim, bad)
        return cls(*gaussian_arrays(entry))


def fit(
    images: np.ndarray, labels: np.ndarray, num_classes: int, rank: int = DEFAULT_RANK
) -> GaussianStats:
    """Class means and top-``rank`` principal directions of model-space images [N, ...] (float),
    one group per class 0..num_classes-1 and a last one over every image. Float64 throughout; the
    eigendecomposition of each D x D covariance (numpy's eigh)."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    dim = flat.shape[1]
    if not 1 <= rank <= dim:
        raise UserError(f"--rank must be between 1 and {dim} (values per image), got {rank}")
    groups = [np.flatnonzero(labels == c) for c in range(num_classes)] + [np.arange(len(flat))]
    means, vectors, variances = [], [], []
    for c, rows in enumerate(groups):
        if len(rows) < 2:
            raise UserError(f"class {c} has {len(rows)} training images; its statistics need >= 2")
        part = flat[rows]
        mu = part.mean(axis=0)
        centred = part - mu
        cov = centred.T @ centred / (len(part) - 1)
        values, axes = np.linalg.eigh(cov)  # ascending
        top = np.argsort(values)[::-1][:rank]
        means.append(mu)
        vectors.append(axes[:, top].T)
        variances.append(np.clip(values[top], 0.0, None))
    return GaussianStats(np.stack(means), np.stack(vectors), np.stack(variances))


def fit_card(card: dict, data_root: str | None, rank: int = DEFAULT_RANK) -> dict:
    """``card["gaussian"]`` for a model: the statistics of the training images its card names
    (runtime/real_images.py), as `learn-sampler` and `distill` store them."""
    from ddpm_deploy.runtime.real_images import training_set

    from ddpm_deploy.card import num_classes
    from ddpm_deploy.datasets import to_model_space

    images, labels = training_set(card, data_root)
    return fit(to_model_space(images), labels, num_classes(card), rank).to_card()
