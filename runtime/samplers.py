"""DDPM and DDIM reverse steps and loops as plain functions of numpy arrays (DESIGN.md, invariant 4).

Randomness is passed in (``rng``), so two backends fed the same generator see identical noise.
Arrays keep their dtype: float32 in production, float64 in the tests against the papers' equations.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

Denoiser = Callable[[np.ndarray, np.ndarray], np.ndarray]
# callback(step_index, t, x_after_step): step_index counts 0 .. K-1 in sampling order.
StepCallback = Callable[[int, int, np.ndarray], None]
SAMPLERS = ("ddpm", "ddim")
VARIANCES = ("beta", "posterior")


class NonFiniteError(UserError):
    """The sample became NaN or Inf: the model or its precision is broken."""


def _predict_x0(x: np.ndarray, eps: np.ndarray, ab: float) -> np.ndarray:
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
) -> np.ndarray:
    """One ancestral step x_t -> x_{t-1} (Ho et al. Algorithm 2). ``z`` is ignored at t = 0."""
    dt = x.dtype.type
    beta, alpha = schedule.betas[t], schedule.alphas[t]
    ab, ab_prev = schedule.alpha_bars[t], schedule.alpha_bars_prev[t]
    if clip:
        # 1. predicted original sample (eq. 15), clipped to the data range
        x0 = np.clip(_predict_x0(x, eps, dt(ab)), -1.0, 1.0)
        # 2. posterior mean mu~_t(x_t, x_0) (eq. 7)
        c0 = np.sqrt(ab_prev) * beta / (1.0 - ab)
        ct = np.sqrt(alpha) * (1.0 - ab_prev) / (1.0 - ab)
        mean = dt(c0) * x0 + dt(ct) * x
    else:
        # the article's update, eq. 11: (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t)
        mean = (x - dt(beta / np.sqrt(1.0 - ab)) * eps) * dt(1.0 / np.sqrt(alpha))
    if t == 0:
        return mean.astype(x.dtype, copy=False)
    # 3. add noise with sigma_t^2 = beta_t or beta~_t
    sigma = np.sqrt(schedule.variance(variance)[t])
    return (mean + dt(sigma) * z).astype(x.dtype, copy=False)


def ddim_timesteps(T: int, steps: int) -> np.ndarray:
    """Evenly spaced timesteps from T-1 down to 0 ("linspace" spacing: both ends included)."""
    if not 1 <= steps <= T:
        raise UserError(f"--steps must be between 1 and T={T}, got {steps}")
    return np.linspace(T - 1, 0, steps).round().astype(np.int64)


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
    x0 = _predict_x0(x, eps, dt(ab))
    if clip:
        x0 = np.clip(x0, -1.0, 1.0)
        # keep eps consistent with the clipped x_0, as diffusers' DDIMScheduler does
        eps = (x - dt(np.sqrt(ab)) * x0) / dt(np.sqrt(1.0 - ab))
    # 2. sigma_t(eta) (eq. 16)
    sigma = eta * np.sqrt((1.0 - ab_prev) / (1.0 - ab)) * np.sqrt(1.0 - ab / ab_prev)
    # 3. "direction pointing to x_t" and the random term of eq. 12
    out = dt(np.sqrt(ab_prev)) * x0 + dt(np.sqrt(1.0 - ab_prev - sigma**2)) * eps
    if sigma > 0:
        out = out + dt(sigma) * z
    return out.astype(x.dtype, copy=False)


def check_args(
    sampler: str, n: int, steps: int | None, eta: float, variance: str, T: int | None = None
) -> None:
    """Every check on the sampling arguments, in one place. Without T (the model not loaded yet)
    the checks that need it are skipped, so callers can fail before loading anything."""
    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; choose from {list(SAMPLERS)}")
    if n <= 0:
        raise UserError(f"-n must be positive, got {n}")
    if steps is not None and steps <= 0:
        raise UserError(f"--steps must be positive, got {steps}")
    if eta < 0:
        raise UserError(f"--eta must be >= 0, got {eta}")
    if variance not in VARIANCES:
        raise UserError(f"unknown variance {variance!r}; choose from {list(VARIANCES)}")
    if T is None or steps is None:
        return
    if steps > T:
        raise UserError(f"--steps must be at most T={T} for this model, got {steps}")
    if sampler == "ddpm" and steps != T:
        raise UserError(
            f"the ddpm sampler runs all T={T} steps (got --steps {steps}); use --sampler ddim for fewer"
        )


def steps_run(sampler: str, steps: int | None, T: int) -> int:
    """How many denoiser calls a run makes: DDPM always T, DDIM --steps (T when unset)."""
    return T if sampler == "ddpm" or steps is None else steps


def sample(
    denoiser: Denoiser,
    schedule: Schedule,
    n: int,
    rng: np.random.Generator,
    *,
    sampler: str = "ddpm",
    steps: int | None = None,
    eta: float = 0.0,
    variance: str = "beta",
    clip: bool = True,
    shape: tuple[int, ...] = (1, 28, 28),
    dtype: type = np.float32,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Run the reverse process from x_T ~ N(0, I) and return x_0 (N x C x H x W, model space)."""
    check_args(sampler, n, steps, eta, variance, schedule.T)
    T = schedule.T
    if sampler == "ddpm":
        timesteps = np.arange(T - 1, -1, -1, dtype=np.int64)
    else:
        timesteps = ddim_timesteps(T, T if steps is None else steps)
    stochastic = sampler == "ddpm" or eta > 0

    x = rng.standard_normal((n, *shape), dtype=dtype)
    bar = tqdm(timesteps, desc=f"{sampler} sampling", disable=not progress, unit="step")
    for i, t in enumerate(bar):
        t = int(t)
        eps = denoiser(x, np.full(n, t, dtype=np.int64))
        z = rng.standard_normal(x.shape, dtype=dtype) if stochastic and t > 0 else None
        if sampler == "ddpm":
            x = ddpm_step(x, eps, t, schedule, z, variance=variance, clip=clip)
        else:
            t_prev = int(timesteps[i + 1]) if i + 1 < len(timesteps) else -1
            x = ddim_step(x, eps, t, t_prev, schedule, z, eta=eta, clip=clip)
        if not np.isfinite(x).all():
            raise NonFiniteError(
                f"the sample became NaN/Inf at step {i + 1} of {len(timesteps)} (t={t}); "
                "the model or its precision is broken: check the export with its parity test"
            )
        if callback is not None:
            callback(i, t, x)
    return x
