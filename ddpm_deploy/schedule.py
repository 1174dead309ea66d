"""The noise schedule, written once, in numpy float64 (docs/ARCHITECTURE.md, invariant 1).

Every artifact stores ``Schedule.to_dict()`` and every consumer rebuilds the schedule
with ``Schedule.from_dict()``. Schedules may be added; an existing one is never changed,
because models already trained with it would silently go out of step.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ddpm_deploy.bounds import MAX_T
from ddpm_deploy.errors import UserError


def _linear_betas(T: int, beta_start: float, beta_end: float) -> np.ndarray:
    # Ho et al. 2020, section 4: betas linear from 1e-4 to 0.02 over T = 1000.
    return np.linspace(beta_start, beta_end, T, dtype=np.float64)


def _cosine_betas(T: int, s: float, max_beta: float) -> np.ndarray:
    # Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos((t/T + s)/(1 + s) * pi/2)^2,
    # beta_t = 1 - alpha_bar(t) / alpha_bar(t-1), clipped to max_beta to avoid a singularity at t = T.
    steps = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return np.minimum(1 - alpha_bar[1:] / alpha_bar[:-1], max_beta)


def _checked(name: str, builder, T: int, params: dict) -> np.ndarray:
    """The betas, refused in one line naming the parameters unless every beta is a finite number
    in (0, 1): alpha_bar then falls strictly from 1 towards 0, as the samplers need."""
    bad = [k for k, v in params.items() if not _number(v)]
    if bad:
        raise UserError(f"schedule {name}: {', '.join(bad)} must be finite numbers, got {params}")
    with np.errstate(all="ignore"):
        betas = builder(T, **params)
    if not (np.isfinite(betas).all() and (betas > 0).all() and (betas < 1).all()):
        raise UserError(
            f"schedule {name} with {', '.join(f'{k} {v}' for k, v in params.items())} makes "
            "betas outside (0, 1) (NaN, negative or >= 1): choose parameters that keep them inside"
        )
    return betas


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)  # cached arrays are shared by every caller: nobody may change them
    return a


# name -> (builder, default parameters)
SCHEDULES = {
    "linear": (_linear_betas, {"beta_start": 1e-4, "beta_end": 0.02}),
    "cosine": (_cosine_betas, {"s": 0.008, "max_beta": 0.999}),
}


@dataclass(frozen=True)
class Schedule:
    """A DDPM noise schedule over T steps, indexed t = 0 .. T-1."""

    name: str = "linear"
    T: int = 1000
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise UserError(f"unknown schedule {self.name!r}; choose from {sorted(SCHEDULES)}")
        if type(self.T) is not int or not 1 <= self.T <= MAX_T:
            raise UserError(f"schedule T must be an integer in [1, {MAX_T}], got {self.T!r}")
        builder, defaults = SCHEDULES[self.name]
        unknown = set(self.params) - set(defaults)
        if unknown:
            raise UserError(
                f"unknown parameters {sorted(unknown)} for schedule {self.name!r}; "
                f"it takes {sorted(defaults)}"
            )
        full = {**defaults, **self.params}
        object.__setattr__(self, "params", full)
        object.__setattr__(self, "_betas", _frozen(_checked(self.name, builder, self.T, full)))

    @property
    def betas(self) -> np.ndarray:
        return self._betas  # type: ignore[attr-defined]

    @cached_property
    def alphas(self) -> np.ndarray:
        return _frozen(1.0 - self.betas)

    @cached_property
    def alpha_bars(self) -> np.ndarray:
        return _frozen(np.cumprod(self.alphas))

    @cached_property
    def alpha_bars_prev(self) -> np.ndarray:
        """alpha_bar_{t-1}, with alpha_bar_{-1} = 1 (no noise before the first step)."""
        return _frozen(np.concatenate([[1.0], self.alpha_bars[:-1]]))

    @cached_property
    def posterior_variance(self) -> np.ndarray:
        """beta-tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t (Ho et al. eq. 7)."""
        return _frozen((1.0 - self.alpha_bars_prev) / (1.0 - self.alpha_bars) * self.betas)

    def variance(self, kind: str) -> np.ndarray:
        """The reverse-step variance sigma_t^2: 'beta' (the article's) or 'posterior' (beta-tilde)."""
        if kind == "beta":
            return self.betas
        if kind == "posterior":
            return self.posterior_variance
        raise UserError(f"unknown variance {kind!r}; choose from ['beta', 'posterior']")

    def to_dict(self) -> dict:
        return {"name": self.name, "T": self.T, **self.params}

    @classmethod
    def from_dict(cls, d: dict) -> Schedule:
        if not isinstance(d, dict):
            raise UserError(f"a schedule is a JSON object, got {str(d)[:60]!r}")
        d = dict(d)
        try:
            name, T = d.pop("name"), d.pop("T")
        except KeyError as e:
            raise UserError(f"schedule description lacks {e.args[0]!r}: {d}") from None
        if not isinstance(name, str):
            raise UserError(f"schedule name {name!r} is not a string")
        return cls(name=name, T=T, params=d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        return cls.from_dict(json.loads(text))
