"""`sample`: the reverse process of any registered sampler (runtime/methods.py) as a plain function
of numpy arrays (docs/ARCHITECTURE.md, invariant 4), and the checks on its arguments.

Randomness is passed in (``rng``), so two backends fed the same generator see identical noise.
Arrays keep their dtype: float32 in production, float64 in the tests against the papers' equations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from ddpm_deploy.runtime.methods import SAMPLERS, Sampler  # noqa: F401 - the registry, from here
from ddpm_deploy.runtime.solvers import (  # noqa: F401 - the steps, importable from here
    dpmpp_2m_step,
    dpmpp_3m_step,
    ipndm_step,
    multistep_order,
)
from ddpm_deploy.runtime.steps import VARIANCES, ddim_step, ddpm_step  # noqa: F401
from ddpm_deploy.runtime.timesteps import SPACINGS, check_timesteps, timesteps_for
from tqdm.auto import tqdm

from ddpm_deploy.bounds import MAX_IMAGES, OPTION_BOUNDS
from ddpm_deploy.card import MNIST_SHAPE
from ddpm_deploy.errors import UserError, is_integer
from ddpm_deploy.schedule import Schedule

# eps = f(x, t): a backend (runtime/backends.py Denoiser), a Guided one, or a bare function
NoisePredictor = Callable[[np.ndarray, np.ndarray], np.ndarray]
# callback(step_index, t, x_after_step): step_index counts 0 .. K-1 in sampling order.
StepCallback = Callable[[int, int, np.ndarray], None]
MAX_ETA = OPTION_BOUNDS["eta"]  # DDIM's eta past 1 has no meaning: the CLI's bound, the API's

# The defaults of `sample` and `evaluate`: the best quality per second in docs/QUALITY.md.
DEFAULT_SAMPLER, DEFAULT_STEPS, DEFAULT_SPACING = "dpm++2m", 8, "edm"


class NonFiniteError(UserError):
    """The sample became NaN or Inf: the model or its precision is broken."""


def check_args(
    sampler: str,
    n: int,
    steps: int | None,
    eta: float,
    variance: str,
    T: int | None = None,
    spacing: str = "linspace",
    chosen: bool = False,
) -> None:
    """Every check on the sampling arguments, in one place. Without T (the model not loaded yet)
    the checks that need it are skipped, so callers can fail before loading anything. With
    ``chosen`` (a user's choice, runtime/sampler_settings.py), options ``sampler`` would ignore
    are refused (the model's own sampler, before it is known, may be another)."""
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; choose from {list(SAMPLERS)}")
    for name, value in (("n", n), ("steps", steps)):
        if (value is not None or name == "n") and not is_integer(value):
            raise UserError(f"{name} must be an integer, got {value!r}")
    if not 1 <= n <= MAX_IMAGES:
        raise UserError(
            f"-n must be between 1 and {MAX_IMAGES:,} (every image is kept in memory), got {n}"
        )
    if steps is not None and steps <= 0:
        raise UserError(f"--steps must be positive, got {steps}")
    if isinstance(eta, bool) or not isinstance(eta, (int, float, np.number)):
        raise UserError(f"eta must be a number, got {eta!r}")
    if not 0 <= eta <= MAX_ETA:  # NaN fails too
        raise UserError(f"--eta must be between 0 and {MAX_ETA:g}, got {eta}")
    if variance not in VARIANCES:
        raise UserError(f"unknown variance {variance!r}; choose from {list(VARIANCES)}")
    # options the chosen sampler would ignore (while run.json recorded them) are refused
    if chosen and eta and SAMPLERS[sampler].stochastic_when != "eta":
        raise UserError(f"--eta {eta:g} is DDIM's noise; {sampler} takes none: drop it or pass --sampler ddim")  # fmt: skip
    if chosen and variance != "beta" and sampler != "ddpm":
        raise UserError(f"--variance {variance} is DDPM's; {sampler} has none: drop it or pass --sampler ddpm")  # fmt: skip
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
    start: np.ndarray | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Run the reverse process from x_T ~ N(0, I) and return x_0 (N x C x H x W, model space).

    ``rng`` is anything with numpy's ``standard_normal(shape, dtype=...)``: a Generator, or
    ``PerImageNoise`` (runtime/noise.py) so that image i depends only on (seed, i).
    ``timesteps``, when given, is the exact grid (descending) and replaces steps and spacing.
    ``analytic``: the first that many steps take x0 from ``denoiser.gaussian_x0(x, t)`` (the data's
    Gaussian statistics, runtime/gaussian.py), not the network. ``mix``: learned corrections.
    ``shape``: one image's (C, H, W); the denoiser's ``image_shape`` or 1 x 28 x 28 by default.
    ``start``: the state at ``timesteps[0]`` instead of a drawn x_T (train/teacher.py).
    """
    shape = tuple(shape or getattr(denoiser, "image_shape", MNIST_SHAPE))
    check_args(sampler, n, steps, eta, variance, schedule.T, spacing)
    T = schedule.T
    if timesteps is None:
        timesteps = timesteps_for(T, T if steps is None else steps, spacing, schedule)
    else:
        timesteps = check_timesteps(timesteps, T)
    prior = analytic_prior(denoiser, analytic, mix, sampler, len(timesteps))
    method = SAMPLERS[sampler](schedule, timesteps, clip=clip, eta=eta, variance=variance, mix=mix)

    x = first_state(rng, (n, *shape), dtype, start)
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


def first_state(rng, shape: tuple[int, ...], dtype: type, start: np.ndarray | None) -> np.ndarray:
    """x_T drawn from ``rng``, or the given ``start`` state (checked against the shape)."""
    if start is None:
        return rng.standard_normal(shape, dtype=dtype)
    if start.shape != shape:
        raise UserError(f"a start state of shape {start.shape}, expected {shape}")
    return start.astype(dtype)


def eps_from_x0(x: np.ndarray, x0: np.ndarray, alpha_bar: float) -> np.ndarray:
    """The noise prediction that a data prediction x0 stands for at alpha_bar (eq. 15 solved for eps)."""
    dt = x.dtype.type
    return ((x - dt(np.sqrt(alpha_bar)) * x0) / dt(np.sqrt(1.0 - alpha_bar))).astype(x.dtype)


def analytic_prior(denoiser, analytic: int, mix, sampler: str, calls: int):
    """The denoiser's Gaussian data prediction when ``analytic`` steps need it (checked)."""
    check_analytic(analytic, mix, sampler, calls)
    prior = getattr(denoiser, "gaussian_x0", None) if analytic else None
    if analytic and prior is None:
        raise UserError(
            f"{analytic} analytic steps need the model's Gaussian statistics, which this denoiser lacks"
        )
    return prior


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
