"""Timestep grids: which timesteps a sampler visits, in sampling order (descending).

The spacings diffusers names (linspace, leading, trailing), uniform log-SNR, and EDM's rho = 7
schedule (Karras et al. 2022), each mapped onto the model's integer timesteps; and the check of an
explicit grid, such as a distilled model's own (train/distill.py).
"""

from __future__ import annotations

import numpy as np

from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

SPACINGS = ("linspace", "leading", "trailing", "logsnr", "edm")
EDM_RHO = 7.0  # Karras et al. 2022, eq. 5: the rho of the "edm" spacing


def timesteps_for(
    T: int, steps: int, spacing: str = "linspace", schedule: Schedule | None = None
) -> np.ndarray:
    """``steps`` distinct timesteps in sampling order (descending), spaced as diffusers names it:

    linspace: evenly from T-1 down to 0, both ends included (this project's original spacing);
    leading:  0, T//steps, 2 T//steps, ... (never reaches T-1: the first step starts from less noise);
    trailing: T-1, T-1-T/steps, ... (starts at T-1, stops short of 0);
    logsnr:   evenly in log-SNR lambda = log(alpha_bar / (1 - alpha_bar)) from lambda(T-1) to
              lambda(0) (Lu et al. 2022, DPM-Solver, sec. 3.4: "uniform logSNR");
    edm:      Karras et al. 2022, eq. 5, rho = 7, on sigma = sqrt((1 - alpha_bar) / alpha_bar) from
              sigma(T-1) down to sigma(0).
    The last two need the ``schedule`` (default: ``Schedule(T=T)``, the linear one). Their targets
    are mapped to the nearest integer timestep (t interpolated linearly in lambda, as diffusers'
    ``_sigma_to_t`` does in log sigma); where two land on the same integer, the smaller noise level
    moves to the next free one, so there are exactly ``steps`` network calls, strictly descending.
    """
    if not 1 <= steps <= T:
        raise UserError(f"--steps must be between 1 and T={T}, got {steps}")
    if spacing == "linspace":
        ts = np.linspace(T - 1, 0, steps).round()
    elif spacing == "leading":
        ts = (np.arange(steps) * (T // steps))[::-1]
    elif spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / steps)) - 1
    elif spacing in ("logsnr", "edm"):
        schedule = Schedule(T=T) if schedule is None else schedule
        if schedule.T != T:
            raise UserError(f"spacing {spacing!r}: schedule has T={schedule.T}, asked for T={T}")
        ab = schedule.alpha_bars
        lam = np.log(ab) - np.log1p(-ab)  # log-SNR of every integer t, decreasing in t
        ramp = np.linspace(0.0, 1.0, steps)
        if spacing == "logsnr":
            # 1. lambda_i = lambda_max_noise + i/(N-1) (lambda_min_noise - lambda_max_noise)
            targets = lam[T - 1] + ramp * (lam[0] - lam[T - 1])
        else:
            # 1. sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
            #    (Karras et al. eq. 5); lambda = log(1 / sigma^2) = -2 log sigma
            s_max, s_min = np.exp(-0.5 * lam[T - 1]), np.exp(-0.5 * lam[0])
            inv = 1.0 / EDM_RHO
            sigmas = (s_max**inv + ramp * (s_min**inv - s_max**inv)) ** EDM_RHO
            targets = -2.0 * np.log(sigmas)
        # 2. back to integer timesteps: t(lambda) interpolated over the table (lambda increasing)
        ts = np.interp(targets, lam[::-1], np.arange(T - 1, -1, -1, dtype=np.float64)).round()
        ts = distinct_descending(ts.astype(np.int64), T)
    else:
        raise UserError(f"unknown spacing {spacing!r}; choose from {list(SPACINGS)}")
    return ts.astype(np.int64)


def distinct_descending(ts: np.ndarray, T: int) -> np.ndarray:
    """Descending integers with ties made distinct: each tie moves to the next free timestep
    (upwards from the clean end, then downwards from T-1 should that pass overrun it)."""
    ts = ts.copy()
    for i in range(len(ts) - 2, -1, -1):
        ts[i] = max(ts[i], ts[i + 1] + 1)
    ts[0] = min(ts[0], T - 1)
    for i in range(1, len(ts)):
        ts[i] = min(ts[i], ts[i - 1] - 1)
    return ts


def check_timesteps(timesteps, T: int) -> np.ndarray:
    """An explicit grid: distinct integers in [0, T), strictly descending (sampling order)."""
    ts = np.asarray(timesteps)
    if ts.ndim != 1 or ts.size == 0 or not np.issubdtype(ts.dtype, np.integer):
        raise UserError(f"timesteps must be a non-empty list of integers, got {list(ts.ravel())}")
    if ts.max() >= T or ts.min() < 0 or np.any(np.diff(ts) >= 0):
        raise UserError(
            f"timesteps must be strictly descending integers in [0, {T}), got {ts.tolist()}"
        )
    return ts.astype(np.int64)


def ddim_timesteps(T: int, steps: int) -> np.ndarray:
    """Evenly spaced timesteps from T-1 down to 0 ("linspace" spacing: both ends included)."""
    return timesteps_for(T, steps, "linspace")
