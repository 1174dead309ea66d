"""DDPM, DDIM, DPM-Solver++(2M/3M) and iPNDM reverse steps and loops as plain functions of numpy
arrays (docs/ARCHITECTURE.md, invariant 4).

Randomness is passed in (``rng``), so two backends fed the same generator see identical noise.
Arrays keep their dtype: float32 in production, float64 in the tests against the papers' equations.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ddpm_deploy.runtime.timesteps import SPACINGS, check_timesteps, timesteps_for
from tqdm.auto import tqdm

from ddpm_deploy.card import MNIST_SHAPE
from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

Denoiser = Callable[[np.ndarray, np.ndarray], np.ndarray]
# callback(step_index, t, x_after_step): step_index counts 0 .. K-1 in sampling order.
StepCallback = Callable[[int, int, np.ndarray], None]
SAMPLERS = ("ddpm", "ddim", "dpm++2m", "dpm++3m", "ipndm")
VARIANCES = ("beta", "posterior")
# Adams-Bashforth coefficients for equal steps, newest derivative first (iPNDM: Zhang & Chen 2023,
# the multistep warm start of PNDM, Liu et al. 2022, eq. 12, with lower orders instead of RK steps)
IPNDM_COEFFS = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}
# The defaults of `sample` and `evaluate`: the best quality per second in docs/QUALITY.md.
DEFAULT_SAMPLER, DEFAULT_STEPS, DEFAULT_SPACING = "dpm++2m", 8, "edm"


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
        x0 = np.clip(_predict_x0(x, eps, dt(ab)), -1.0, 1.0)
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


def _alpha_sigma_lambda(schedule: Schedule, step: int) -> tuple[float, float, float]:
    ab = schedule.alpha_bars[step]
    alpha, sigma = np.sqrt(ab), np.sqrt(1.0 - ab)
    return alpha, sigma, np.log(alpha) - np.log(sigma)


def dpmpp_2m_step(
    x: np.ndarray,
    x0: np.ndarray,
    t: int,
    t_next: int,
    schedule: Schedule,
    x0_last: np.ndarray | None = None,
    t_last: int | None = None,
) -> np.ndarray:
    """One DPM-Solver++(2M) step x_t -> x_{t_next} (Lu et al. 2022, Algorithm 2), data prediction.

    ``x0`` is the model's (possibly clipped) data prediction at t; ``x0_last`` the one made at the
    previous, noisier timestep ``t_last`` (None: the first-order step, which is DDIM). With
    alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar) and lambda = log(alpha / sigma):
      h = lambda_next - lambda_t,  r = (lambda_t - lambda_last) / h,
      D = (1 + 1/(2r)) x0 - 1/(2r) x0_last,
      x_next = (sigma_next / sigma_t) x_t - alpha_next (e^{-h} - 1) D.
    t_next = -1 is the clean end (sigma = 0): the step lands on D's first-order form, x0 itself,
    which is diffusers' lower_order_final and what keeps few-step sampling stable.
    """
    dt = x.dtype.type
    if t_next < 0:
        return x0.astype(x.dtype, copy=False)

    _, sigma, lam = _alpha_sigma_lambda(schedule, t)
    alpha_n, sigma_n, lam_n = _alpha_sigma_lambda(schedule, t_next)
    h = lam_n - lam
    d = x0
    if x0_last is not None:
        r = (lam - _alpha_sigma_lambda(schedule, t_last)[2]) / h
        d = dt(1.0 + 1.0 / (2.0 * r)) * x0 - dt(1.0 / (2.0 * r)) * x0_last
    return (dt(sigma_n / sigma) * x - dt(alpha_n * np.expm1(-h)) * d).astype(x.dtype, copy=False)


def dpmpp_3m_step(
    x: np.ndarray,
    x0: np.ndarray,
    t: int,
    t_next: int,
    schedule: Schedule,
    x0_last: np.ndarray | None = None,
    t_last: int | None = None,
    x0_last2: np.ndarray | None = None,
    t_last2: int | None = None,
    *,
    taylor: bool = False,
) -> np.ndarray:
    """One DPM-Solver++(3M) step x_t -> x_{t_next}, data prediction (Lu et al. 2022, DPM-Solver++,
    the multistep third-order update of their Appendix B / diffusers'
    ``multistep_dpm_solver_third_order_update``).

    ``x0``, ``x0_last``, ``x0_last2``: the data predictions at t and at the two previous (noisier)
    timesteps. Without ``x0_last2`` this is the 2M step, without ``x0_last`` the 1st-order one
    (DDIM); t_next = -1 lands on x0. With lambda as in ``dpmpp_2m_step``:
      h = lambda_next - lambda_t,  h0 = lambda_t - lambda_last,  h1 = lambda_last - lambda_last2,
      r0 = h0 / h,  r1 = h1 / h,
      D1_0 = (x0 - x0_last) / r0,  D1_1 = (x0_last - x0_last2) / r1,
      D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1),  D2 = (D1_0 - D1_1) / (r0 + r1),
      x_next = (sigma_next / sigma_t) x_t - alpha_next (e^{-h} - 1) x0
               + alpha_next ((e^{-h} - 1) / h + 1) D1 - alpha_next ((e^{-h} - 1 + h) / h^2 - 1/2) D2.
    D1 estimates h x0'(lambda) and D2 estimates h^2 x0''(lambda) / 2, so that last term carries half
    the Taylor coefficient of the exact integral (Lu et al.'s reference code, diffusers and
    k-diffusion all write it so): the step is exact when x0 is linear in lambda, and converges at
    second order, with a smaller error than 2M (tests/test_samplers.py). ``taylor=True`` doubles
    D2 there: exact for x0 quadratic in lambda, third order, but rougher at a few large steps.
    """
    if t_next < 0 or x0_last2 is None:
        return dpmpp_2m_step(x, x0, t, t_next, schedule, x0_last, t_last)
    if x0_last is None:
        raise ValueError("x0_last2 without x0_last")
    dt = x.dtype.type
    _, sigma, lam = _alpha_sigma_lambda(schedule, t)
    alpha_n, sigma_n, lam_n = _alpha_sigma_lambda(schedule, t_next)
    lam_1 = _alpha_sigma_lambda(schedule, t_last)[2]
    lam_2 = _alpha_sigma_lambda(schedule, t_last2)[2]
    # 1. step sizes in lambda and their ratios
    h, h0, h1 = lam_n - lam, lam - lam_1, lam_1 - lam_2
    r0, r1 = h0 / h, h1 / h
    # 2. divided differences of the data prediction: first and second derivative estimates
    d1_0 = dt(1.0 / r0) * (x0 - x0_last)
    d1_1 = dt(1.0 / r1) * (x0_last - x0_last2)
    d1 = d1_0 + dt(r0 / (r0 + r1)) * (d1_0 - d1_1)
    d2 = dt(1.0 / (r0 + r1)) * (d1_0 - d1_1)
    # 3. the exponential integrator's Taylor terms (phi_1, phi_2, phi_3 of -h)
    em1 = np.expm1(-h)
    out = (
        dt(sigma_n / sigma) * x
        - dt(alpha_n * em1) * x0
        + dt(alpha_n * (em1 / h + 1.0)) * d1
        - dt(alpha_n * ((em1 + h) / h**2 - 0.5) * (2.0 if taylor else 1.0)) * d2
    )
    return out.astype(x.dtype, copy=False)


def ipndm_step(
    x: np.ndarray,
    eps: np.ndarray,
    t: int,
    t_next: int,
    schedule: Schedule,
    eps_earlier: tuple[np.ndarray, ...] | list[np.ndarray] = (),
) -> np.ndarray:
    """One iPNDM step x_t -> x_{t_next} (Zhang & Chen 2023, DEIS, "iPNDM"; zju-pi/diff-sampler's
    ``ipndm_sampler``): Adams-Bashforth of order 1 + len(eps_earlier) (at most 4) on the probability
    flow ODE in Karras et al.'s variables, y = x / alpha, s = sigma / alpha, dy/ds = eps
    (Karras et al. 2022, eq. 4 and Table 1 for a VP model; Song et al. 2021, eq. 14).

    ``eps_earlier``: the noise predictions of the previous steps, newest first. The coefficients
    are the equal-step ones whatever the spacing, as in iPNDM. Order 1 is DDIM. t_next = -1
    (s = 0) with order 1 lands on x0 = y - s eps.
      y_next = y_t + (s_next - s_t) sum_j c_j eps_j,  x_next = alpha_next y_next.
    """
    order = 1 + len(eps_earlier)
    if order not in IPNDM_COEFFS:
        raise ValueError(f"iPNDM order must be 1..4, got {order}")
    dt = x.dtype.type
    alpha, sigma, _ = _alpha_sigma_lambda(schedule, t)
    if t_next >= 0:
        alpha_n, sigma_n, _ = _alpha_sigma_lambda(schedule, t_next)
    else:
        alpha_n, sigma_n = 1.0, 0.0
    # 1. the Adams-Bashforth combination of the derivatives dy/ds = eps
    coeffs = IPNDM_COEFFS[order]
    d = dt(coeffs[0]) * eps
    for c, e in zip(coeffs[1:], eps_earlier, strict=True):
        d = d + dt(c) * e
    # 2. an explicit step in (s, y), then back to x = alpha y
    ds = sigma_n / alpha_n - sigma / alpha
    y_next = dt(1.0 / alpha) * x + dt(ds) * d
    return (dt(alpha_n) * y_next).astype(x.dtype, copy=False)


def multistep_order(sampler: str, i: int, steps: int) -> int:
    """The order of step i (of ``steps``) of a multistep sampler: warm-up by lower orders (as many
    earlier predictions as there are), first order on the final step to t = -1 (lower_order_final),
    and for DPM-Solver++(3M) at fewer than 15 steps at most second order on the step before it
    (diffusers' lower_order_second)."""
    top = {"dpm++2m": 2, "dpm++3m": 3, "ipndm": 4}[sampler]
    order = min(top, i + 1)
    if i == steps - 1:
        return 1
    if sampler == "dpm++3m" and steps < 15 and i == steps - 2:
        return min(order, 2)
    return order


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


def check_args(
    sampler: str,
    n: int,
    steps: int | None,
    eta: float,
    variance: str,
    T: int | None = None,
    spacing: str = "linspace",
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
    if spacing not in SPACINGS:
        raise UserError(f"unknown spacing {spacing!r}; choose from {list(SPACINGS)}")
    if T is not None and steps is not None and steps > T:
        raise UserError(f"--steps must be at most T={T} for this model, got {steps}")


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
    spacing: str = "linspace",
    timesteps: np.ndarray | list[int] | None = None,
    shape: tuple[int, ...] | None = None,
    dtype: type = np.float32,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Run the reverse process from x_T ~ N(0, I) and return x_0 (N x C x H x W, model space).

    ``rng`` is anything with numpy's ``standard_normal(shape, dtype=...)``: a Generator, or
    ``PerImageNoise`` (runtime/noise.py) so that image i depends only on (seed, i).
    ``timesteps``, when given, is the exact grid (descending) and replaces steps and spacing: a
    distilled model's own sampler, or a teacher's grid that passes through a student's timesteps.
    ``shape``: one image's (C, H, W); by default the denoiser's ``image_shape`` (its card), and
    1 x 28 x 28 for a bare function without one.
    """
    shape = tuple(shape or getattr(denoiser, "image_shape", MNIST_SHAPE))
    check_args(sampler, n, steps, eta, variance, schedule.T, spacing)
    T = schedule.T
    if timesteps is None:
        timesteps = timesteps_for(T, T if steps is None else steps, spacing, schedule)
    else:
        timesteps = check_timesteps(timesteps, T)
    stochastic = sampler == "ddpm" or (sampler == "ddim" and eta > 0)

    x = rng.standard_normal((n, *shape), dtype=dtype)
    x0_last, t_last = None, None
    history: list[tuple[int, np.ndarray]] = []  # (t, x0) or (t, eps) of earlier steps, newest first
    bar = tqdm(timesteps, desc=f"{sampler} sampling", disable=not progress, unit="step")
    for i, t in enumerate(bar):
        t = int(t)
        t_prev = int(timesteps[i + 1]) if i + 1 < len(timesteps) else -1
        eps = denoiser(x, np.full(n, t, dtype=np.int64))
        z = rng.standard_normal(x.shape, dtype=dtype) if stochastic and t_prev >= 0 else None
        if sampler == "ddpm":
            x = ddpm_step(x, eps, t, schedule, z, variance=variance, clip=clip, t_prev=t_prev)
        elif sampler == "ddim":
            x = ddim_step(x, eps, t, t_prev, schedule, z, eta=eta, clip=clip)
        elif sampler == "dpm++2m":
            x0 = _predict_x0(x, eps, x.dtype.type(schedule.alpha_bars[t]))
            x0 = np.clip(x0, -1.0, 1.0) if clip else x0
            x = dpmpp_2m_step(x, x0, t, t_prev, schedule, x0_last, t_last)
            x0_last, t_last = x0, t
        else:  # dpm++3m, ipndm: the multistep solvers with a history of earlier predictions
            ab = x.dtype.type(schedule.alpha_bars[t])
            x0 = _predict_x0(x, eps, ab)
            if clip:
                x0 = np.clip(x0, -1.0, 1.0)
                eps = (x - np.sqrt(ab) * x0) / np.sqrt(1 - ab)  # eps of the clipped x0, as DDIM
            earlier = history[: multistep_order(sampler, i, len(timesteps)) - 1]
            if sampler == "dpm++3m":
                flat = [v for pair in earlier for v in (pair[1], pair[0])]
                x = dpmpp_3m_step(x, x0, t, t_prev, schedule, *flat)
                history = [(t, x0), *history[:1]]
            else:
                x = ipndm_step(x, eps, t, t_prev, schedule, [e for _, e in earlier])
                history = [(t, eps), *history[:2]]
        if not np.isfinite(x).all():
            raise NonFiniteError(
                f"the sample became NaN/Inf at step {i + 1} of {len(timesteps)} (t={t}); "
                "the model or its precision is broken: check the export with its parity test"
            )
        if callback is not None:
            callback(i, t, x)
    return x
