"""The forward process: ``noised``, the one q_sample formula (Ho et al. eq. 4, x_t = sqrt(alpha_bar)
x_0 + sqrt(1 - alpha_bar) eps; numpy or torch, used by training, quantize's calibration and
distill), and `forward`'s picture of the seed article: row 0 real images, then 25/50/75/100% of T."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ddpm_deploy.datasets import load_split, to_model_space
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import output_file
from ddpm_deploy.images import grid, save_png
from ddpm_deploy.schedule import Schedule

FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def noised(x0, eps, sqrt_ab, sqrt_1m_ab):
    """x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps (Ho et al. eq. 4), the one place it is written: the
    coefficients are one value, or one per image broadcast over the rest. numpy arrays here, torch
    tensors in training (train/diffusion.py)."""
    per_image = tuple(sqrt_ab.shape) + (1,) * (x0.ndim - sqrt_ab.ndim)
    return sqrt_ab.reshape(per_image) * x0 + sqrt_1m_ab.reshape(per_image) * eps


def q_sample(x0: np.ndarray, t, eps: np.ndarray, schedule: Schedule) -> np.ndarray:
    """x_t of ``noised`` in float32; ``t`` one timestep, or one per image (int64[N])."""
    ab = np.asarray(schedule.alpha_bars[t])
    return noised(x0, eps, np.sqrt(ab), np.sqrt(1.0 - ab)).astype(np.float32)


def forward_picture(
    dataset: str,
    data_root: str | None,
    n: int,
    seed: int,
    out: str | os.PathLike,
    schedule: Schedule | None = None,
    scale: int = 1,
) -> Path:
    if Path(out).suffix.lower() != ".png":  # x.jpg got PNG bytes
        raise UserError(f"--out {out}: forward writes a PNG; give it a .png name")
    out = output_file(out)  # a FIFO or a device at --out is refused before the work
    schedule = schedule or Schedule()
    rng = np.random.default_rng(seed)
    split = load_split(dataset, data_root, train=True)
    x0 = to_model_space(split.images[rng.choice(len(split.images), n, replace=False)])
    rows = [x0]
    for frac in FRACTIONS:
        t = round(frac * schedule.T) - 1
        rows.append(q_sample(x0, t, rng.standard_normal(x0.shape), schedule))
    save_png(out, grid(np.concatenate(rows), ncols=n, scale=scale))
    return out
