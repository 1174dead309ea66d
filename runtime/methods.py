"""The registered samplers: one class per method over a fixed grid, all behind one interface
(docs/ARCHITECTURE.md, "Samplers"). runtime/samplers.py runs them; the CLI, the sampler spec,
serve and the page read SAMPLERS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from ddpm_deploy.runtime.solvers import dpmpp_2m_step, dpmpp_3m_step, ipndm_step, multistep_order
from ddpm_deploy.runtime.steps import ddim_step, ddpm_step, predict_x0

from ddpm_deploy.schedule import Schedule


class Sampler:
    """A reverse process over a fixed grid of timesteps: ``step(i, x, eps, z)`` takes x_{t_i} and the
    noise prediction there to x_{t_{i+1}} (t = -1 past the last). A subclass per method, registered
    by name in SAMPLERS (the CLI, the spec, serve and the page read that one list). Multistep
    methods keep their history on the instance, so a fresh one is made per run."""

    name: ClassVar[str]
    stochastic_when: ClassVar[str] = "never"  # "always", "eta" (when eta > 0) or "never"
    takes_mix: ClassVar[bool] = False  # learned corrections (SamplerSpec.mix) apply
    order: ClassVar[int] = 1  # the highest order of a multistep method
    lower_order_second: ClassVar[bool] = False  # at most 2nd order before the last, under 15 steps

    @classmethod
    def order_at(cls, i: int, steps: int) -> int:
        """The order of step i of ``steps`` (runtime/solvers.py multistep_order)."""
        return multistep_order(cls.order, i, steps, cls.lower_order_second)

    def __init__(
        self,
        schedule: Schedule,
        timesteps: np.ndarray,
        *,
        clip: bool = True,
        eta: float = 0.0,
        variance: str = "beta",
        mix: Sequence[float] | None = None,
    ):
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
        x0 = predict_x0(x, eps, x.dtype.type(self.schedule.alpha_bars[self.timesteps[i]]))
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
        return ddpm_step(
            x,
            eps,
            t,
            self.schedule,
            z,
            variance=self.variance,
            clip=self.clip,
            t_prev=self.t_next(i),
        )


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

    name, takes_mix, order = "dpm++2m", True, 2

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
    name, order, lower_order_second = "dpm++3m", 3, True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.history: list[tuple[int, np.ndarray]] = []  # (t, x0), newest first

    def step(self, i, x, eps, z):
        t = int(self.timesteps[i])
        x0 = self.x0(x, eps, i)
        earlier = self.history[: self.order_at(i, len(self.timesteps)) - 1]
        flat = [v for pair in earlier for v in (pair[1], pair[0])]
        self.history = [(t, x0), *self.history[:1]]
        return dpmpp_3m_step(x, x0, t, self.t_next(i), self.schedule, *flat)


@register
class Ipndm(Sampler):
    name, order = "ipndm", 4

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.history: list[np.ndarray] = []  # eps, newest first

    def step(self, i, x, eps, z):
        t = int(self.timesteps[i])
        if self.clip:  # eps of the clipped x0, as DDIM
            ab = x.dtype.type(self.schedule.alpha_bars[t])
            eps = (x - np.sqrt(ab) * self.x0(x, eps, i)) / np.sqrt(1 - ab)
        earlier = self.history[: self.order_at(i, len(self.timesteps)) - 1]
        self.history = [eps, *self.history[:2]]
        return ipndm_step(x, eps, t, self.t_next(i), self.schedule, earlier)
