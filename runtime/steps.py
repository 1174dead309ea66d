"""The one-step reverse updates as plain functions of numpy arrays: DDPM's ancestral step (Ho et
al. 2020) and DDIM's (Song et al. 2021). runtime/methods.py wraps them as registered samplers."""

from __future__ import annotations

import numpy as np

from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

VARIANCES = ("beta", "posterior")


def predict_x0(x: np.ndarray, eps: np.ndarray, ab: float) -> np.ndarray:
    # Ho et al. eq. 15 rearranged: x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)
    return (x - np.sqrt(1.0 - ab) * eps) / np.sqrt(ab)


def ddpm_step(
    x: np.ndarray,
    eps: np.ndarray,
    t: int,
    schedule: Schedule,
    z: np.ndarray | None,
    *,
    variance: str = "beta",
    clip: bool = True,
    t_prev: int | None = None,
) -> np.ndarray:
    """One ancestral step x_t -> x_{t_prev} (Ho et al. Algorithm 2); ``z`` is ignored at the last.

    ``t_prev`` defaults to t - 1. Any earlier t_prev is improved-diffusion's respacing: the same
    diffusion on a subset of timesteps, with beta recomputed from the kept alpha_bars,
    beta = 1 - alpha_bar_t / alpha_bar_{t_prev}, so one step function serves every step count.
    """
    dt = x.dtype.type
    t_prev = t - 1 if t_prev is None else t_prev
    ab = schedule.alpha_bars[t]
    if t_prev == t - 1:
        beta, ab_prev = schedule.betas[t], schedule.alpha_bars_prev[t]
    else:
        ab_prev = schedule.alpha_bars[t_prev] if t_prev >= 0 else 1.0
        beta = 1.0 - ab / ab_prev
    alpha = 1.0 - beta
    if clip:
        # 1. predicted original sample (eq. 15), clipped to the data range
        x0 = np.clip(predict_x0(x, eps, dt(ab)), -1.0, 1.0)
        # 2. posterior mean mu~_t(x_t, x_0) (eq. 7)
        c0 = np.sqrt(ab_prev) * beta / (1.0 - ab)
        ct = np.sqrt(alpha) * (1.0 - ab_prev) / (1.0 - ab)
        mean = dt(c0) * x0 + dt(ct) * x
    else:
        # the article's update, eq. 11: (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t)
        mean = (x - dt(beta / np.sqrt(1.0 - ab)) * eps) * dt(1.0 / np.sqrt(alpha))
    if t_prev < 0:
        return mean.astype(x.dtype, copy=False)
    # 3. add noise with sigma^2 = beta or beta~ = (1 - alpha_bar_prev) / (1 - alpha_bar) beta (eq. 7)
    if variance not in VARIANCES:
        raise UserError(f"unknown variance {variance!r}; choose from {list(VARIANCES)}")
    sigma2 = beta if variance == "beta" else (1.0 - ab_prev) / (1.0 - ab) * beta
    return (mean + dt(np.sqrt(sigma2)) * z).astype(x.dtype, copy=False)


def ddim_step(
    x: np.ndarray,
    eps: np.ndarray,
    t: int,
    t_prev: int,
    schedule: Schedule,
    z: np.ndarray | None,
    *,
    eta: float = 0.0,
    clip: bool = True,
) -> np.ndarray:
    """One DDIM step x_t -> x_{t_prev} (Song et al. 2021, eq. 12); t_prev = -1 means alpha_bar = 1."""
    dt = x.dtype.type
    ab = schedule.alpha_bars[t]
    ab_prev = schedule.alpha_bars[t_prev] if t_prev >= 0 else 1.0
    # 1. predicted x_0 ("predicted x_0" term of eq. 12)
    x0 = predict_x0(x, eps, dt(ab))
    if clip:
        x0 = np.clip(x0, -1.0, 1.0)
        # keep eps consistent with the clipped x_0 (diffusers' DDIMScheduler does this only when
        # called with use_clipped_model_output=True; without it, clipping would move x_0 alone)
        eps = (x - dt(np.sqrt(ab)) * x0) / dt(np.sqrt(1.0 - ab))
    # 2. sigma_t(eta) (eq. 16)
    sigma = eta * np.sqrt((1.0 - ab_prev) / (1.0 - ab)) * np.sqrt(1.0 - ab / ab_prev)
    # 3. "direction pointing to x_t" and the random term of eq. 12
    out = dt(np.sqrt(ab_prev)) * x0 + dt(np.sqrt(1.0 - ab_prev - sigma**2)) * eps
    if sigma > 0:
        out = out + dt(sigma) * z
    return out.astype(x.dtype, copy=False)
