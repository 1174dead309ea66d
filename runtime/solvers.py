"""The multistep solvers of the probability-flow ODE, as plain functions of numpy arrays:
DPM-Solver++(2M/3M) (Lu et al. 2022) and iPNDM (Zhang & Chen 2023). runtime/samplers.py runs them."""

from __future__ import annotations

import numpy as np

from ddpm_deploy.schedule import Schedule

# Adams-Bashforth coefficients for equal steps, newest derivative first (iPNDM: Zhang & Chen 2023,
# the multistep warm start of PNDM, Liu et al. 2022, eq. 12, with lower orders instead of RK steps)
IPNDM_COEFFS = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


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
    mix: float = 0.0,
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
    ``mix`` is added to the weight 1/(2r) (a learned correction; runtime/samplers.py DpmSolver2M).
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
        k = 1.0 / (2.0 * r) + mix
        d = dt(1.0 + k) * x0 - dt(k) * x0_last
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
    second order, with a smaller error than 2M (tests/runtime/test_samplers.py). ``taylor=True``
    doubles D2 there: exact for x0 quadratic in lambda, third order, but rougher at a few large
    steps.
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


def multistep_order(top: int, i: int, steps: int, lower_second: bool = False) -> int:
    """The order of step i (of ``steps``) of a multistep method of order ``top``: warm-up by lower
    orders (as many earlier predictions as there are), first order on the final step to t = -1
    (lower_order_final), and with ``lower_second`` (DPM-Solver++(3M)) at fewer than 15 steps at
    most second order on the step before it (diffusers' lower_order_second). Each method's
    ``order_at`` (runtime/methods.py) passes its own."""
    order = min(top, i + 1)
    if i == steps - 1:
        return 1
    if lower_second and steps < 15 and i == steps - 2:
        return min(order, 2)
    return order
