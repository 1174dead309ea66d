"""DDPM, DDIM, DPM-Solver++(2M/3M) and iPNDM reverse steps and loops as plain functions of numpy
arrays (docs/ARCHITECTURE.md, invariant 4).

Randomness is passed in (``rng``), so two backends fed the same generator see identical noise.
Arrays keep their dtype: float32 in production, float64 in the tests against the papers' equations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
from ddpm_deploy.runtime.solvers import (  # noqa: F401 - the steps, importable from here
    dpmpp_2m_step,
    dpmpp_3m_step,
    ipndm_step,
    multistep_order,
)
from ddpm_deploy.runtime.timesteps import SPACINGS, check_timesteps, timesteps_for
from tqdm.auto import tqdm

from ddpm_deploy.card import MNIST_SHAPE
from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

# eps = f(x, t): a backend (runtime/backends.py Denoiser), a Guided one, or a bare function
NoisePredictor = Callable[[np.ndarray, np.ndarray], np.ndarray]
# callback(step_index, t, x_after_step): step_index counts 0 .. K-1 in sampling order.
StepCallback = Callable[[int, int, np.ndarray], None]
VARIANCES = ("beta", "posterior")
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


class Sampler:
    """A reverse process over a fixed grid of timesteps: ``step(i, x, eps, z)`` takes x_{t_i} and the
    noise prediction there to x_{t_{i+1}} (t = -1 past the last). A subclass per method, registered
    by name in SAMPLERS (the CLI, the spec, serve and the page read that one list). Multistep
    methods keep their history on the instance, so a fresh one is made per run."""

    name: ClassVar[str]
    stochastic_when: ClassVar[str] = "never"  # "always", "eta" (when eta > 0) or "never"
    takes_mix: ClassVar[bool] = False  # learned corrections (SamplerSpec.mix) apply

    def __init__(self, schedule: Schedule, timesteps: np.ndarray, *, clip: bool = True,
                 eta: float = 0.0, variance: str = "beta", mix: Sequence[float] | None = None):  # fmt: skip
        self.schedule, self.timesteps, self.clip = schedule, timesteps, clip
        self.eta, self.variance = eta, variance
        self.mix = np.zeros(len(timesteps)) if mix is None else np.asarray(mix, np.float64)

    @property
    def stochastic(self) -> bool:
        return self.stochastic_when == "always" or (self.stochastic_when == "eta" and self.eta > 0)

    def t_next(self, i: int) -> int:
        return int(self.timesteps[i + 1]) if i + 1 < len(self.timesteps) else -1

    def x0(self, x: np.ndarray, eps: np.ndarray, i: int) -> np.ndarray:
        """The (clipped) data prediction at step i."""
        x0 = _predict_x0(x, eps, x.dtype.type(self.schedule.alpha_bars[self.timesteps[i]]))
        return np.clip(x0, -1.0, 1.0) if self.clip else x0

    def step(self, i: int, x: np.ndarray, eps: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError


SAMPLERS: dict[str, type[Sampler]] = {}


def register(cls: type[Sampler]) -> type[Sampler]:
    SAMPLERS[cls.name] = cls
    return cls


@register
class Ddpm(Sampler):
    name, stochastic_when = "ddpm", "always"

    def step(self, i, x, eps, z):
        t = int(self.timesteps[i])
        return ddpm_step(x, eps, t, self.schedule, z, variance=self.variance, clip=self.clip,
                         t_prev=self.t_next(i))  # fmt: skip


@register
class Ddim(Sampler):
    name, stochastic_when = "ddim", "eta"

    def step(self, i, x, eps, z):
        t = int(self.timesteps[i])
        return ddim_step(x, eps, t, self.t_next(i), self.schedule, z, eta=self.eta, clip=self.clip)


@register
class DpmSolver2M(Sampler):
    """DPM-Solver++(2M). ``mix[i]`` is added to step i's extrapolation weight 1/(2r) on the previous
    data prediction (a GS-style learned correction; 0 is the plain solver), and on the final step,
    which lands on x0, to x0 + mix (x0 - x0_last)."""

    name, takes_mix = "dpm++2m", True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last: tuple[int, np.ndarray] | None = None

    def step(self, i, x, eps, z):
        t, t_next = int(self.timesteps[i]), self.t_next(i)
        x0 = self.x0(x, eps, i)
        t_last, x0_last = self.last if self.last is not None else (None, None)
        self.last = (t, x0)
        m = float(self.mix[i])
        if t_next < 0 and x0_last is not None and m != 0.0:
            return (x0 + x.dtype.type(m) * (x0 - x0_last)).astype(x.dtype, copy=False)
        return dpmpp_2m_step(x, x0, t, t_next, self.schedule, x0_last, t_last, mix=m)


@register
class DpmSolver3M(Sampler):
    name = "dpm++3m"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.history: list[tuple[int, np.ndarray]] = []  # (t, x0), newest first

    def step(self, i, x, eps, z):
        t = int(self.timesteps[i])
        x0 = self.x0(x, eps, i)
        earlier = self.history[: multistep_order(self.name, i, len(self.timesteps)) - 1]
        flat = [v for pair in earlier for v in (pair[1], pair[0])]
        self.history = [(t, x0), *self.history[:1]]
        return dpmpp_3m_step(x, x0, t, self.t_next(i), self.schedule, *flat)


@register
class Ipndm(Sampler):
    name = "ipndm"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.history: list[np.ndarray] = []  # eps, newest first

    def step(self, i, x, eps, z):
        t = int(self.timesteps[i])
        if self.clip:  # eps of the clipped x0, as DDIM
            ab = x.dtype.type(self.schedule.alpha_bars[t])
            eps = (x - np.sqrt(ab) * self.x0(x, eps, i)) / np.sqrt(1 - ab)
        earlier = self.history[: multistep_order(self.name, i, len(self.timesteps)) - 1]
        self.history = [eps, *self.history[:2]]
        return ipndm_step(x, eps, t, self.t_next(i), self.schedule, earlier)


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
    if not np.isfinite(eta) or eta < 0:
        raise UserError(f"--eta must be a finite number >= 0, got {eta}")
    if variance not in VARIANCES:
        raise UserError(f"unknown variance {variance!r}; choose from {list(VARIANCES)}")
    if spacing not in SPACINGS:
        raise UserError(f"unknown spacing {spacing!r}; choose from {list(SPACINGS)}")
    if T is not None and steps is not None and steps > T:
        raise UserError(f"--steps must be at most T={T} for this model, got {steps}")


def sample(
    denoiser: NoisePredictor,
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
    analytic: int = 0,
    mix: Sequence[float] | None = None,
    shape: tuple[int, ...] | None = None,
    dtype: type = np.float32,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Run the reverse process from x_T ~ N(0, I) and return x_0 (N x C x H x W, model space).

    ``rng`` is anything with numpy's ``standard_normal(shape, dtype=...)``: a Generator, or
    ``PerImageNoise`` (runtime/noise.py) so that image i depends only on (seed, i).
    ``timesteps``, when given, is the exact grid (descending) and replaces steps and spacing: a
    model's own sampler (runtime/sampler_spec.py), or a teacher's grid through a student's timesteps.
    ``analytic``: the first that many steps take their data prediction from the data's Gaussian
    statistics (runtime/gaussian.py) through ``denoiser.gaussian_x0(x, t)`` instead of a network
    call. ``mix``: a learned correction per step (samplers that take one).
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
    check_analytic(analytic, mix, sampler, len(timesteps))
    prior = getattr(denoiser, "gaussian_x0", None) if analytic else None
    if analytic and prior is None:
        raise UserError(f"{analytic} analytic steps need the model's Gaussian statistics, which this denoiser lacks")  # fmt: skip
    method = SAMPLERS[sampler](schedule, timesteps, clip=clip, eta=eta, variance=variance, mix=mix)

    x = rng.standard_normal((n, *shape), dtype=dtype)
    bar = tqdm(timesteps, desc=f"{sampler} sampling", disable=not progress, unit="step")
    for i, t in enumerate(bar):
        t = int(t)
        if i < analytic:
            eps = eps_from_x0(x, prior(x, t), schedule.alpha_bars[t])
        else:
            eps = denoiser(x, np.full(n, t, dtype=np.int64))
        stochastic = method.stochastic and method.t_next(i) >= 0
        z = rng.standard_normal(x.shape, dtype=dtype) if stochastic else None
        x = method.step(i, x, eps, z)
        if not np.isfinite(x).all():
            raise NonFiniteError(
                f"the sample became NaN/Inf at step {i + 1} of {len(timesteps)} (t={t}); "
                "the model or its precision is broken: check the export with its parity test"
            )
        if callback is not None:
            callback(i, t, x)
    return x


def eps_from_x0(x: np.ndarray, x0: np.ndarray, alpha_bar: float) -> np.ndarray:
    """The noise prediction that a data prediction x0 stands for at alpha_bar (eq. 15 solved for eps)."""
    dt = x.dtype.type
    return ((x - dt(np.sqrt(alpha_bar)) * x0) / dt(np.sqrt(1.0 - alpha_bar))).astype(x.dtype)


def check_analytic(analytic: int, mix: Sequence[float] | None, sampler: str, calls: int) -> None:
    if not 0 <= analytic < calls:
        raise UserError(
            f"--analytic must be between 0 and {calls - 1} (the grid has {calls} steps and at least "
            f"one must call the network), got {analytic}"
        )
    if mix is not None:
        if not SAMPLERS[sampler].takes_mix:
            raise UserError(f"sampler {sampler!r} takes no learned corrections (mix)")
        if len(mix) != calls or not all(np.isfinite(m) for m in mix):
            raise UserError(f"mix must be {calls} finite numbers (one per step), got {list(mix)}")
