"""The sampler settings `sample`, `evaluate` and serve's rows share, resolved against a model card:
the model's own sampler (runtime/sampler_spec.py; binding for a distilled model), or the defaults."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from ddpm_deploy.runtime.sampler_spec import SamplerSpec, model_spec
from ddpm_deploy.runtime.samplers import DEFAULT_SAMPLER, DEFAULT_SPACING, DEFAULT_STEPS, check_args
from ddpm_deploy.runtime.timesteps import check_timesteps, timesteps_for

from ddpm_deploy.errors import UserError, is_integer
from ddpm_deploy.schedule import Schedule


@dataclass
class SamplerSettings:
    """The sampler fields that `sample`, `evaluate` (and their requests) share.

    ``sampler``, ``steps``, ``spacing`` and ``analytic`` left at None mean "the model's own": the
    spec its card carries (a learned or distilled sampler), else DEFAULT_SAMPLER, DEFAULT_STEPS and
    DEFAULT_SPACING with no analytic steps. Any of them set on a model whose network is unchanged
    replaces its own spec by the options given (and the defaults for the rest); a distilled model
    refuses them. ``for_model`` resolves them before anything runs.
    """

    sampler: str | None = None
    steps: int | None = None  # grid points (network calls + analytic steps)
    eta: float = 0.0
    variance: str = "beta"
    clip: bool = True
    spacing: str | None = None
    # an exact grid (a model's own): replaces steps and spacing
    timesteps: tuple[int, ...] | None = None  # a tuple: settings group serve's rows as a dict key
    analytic: int | None = None  # the first steps taken by the Gaussian statistics
    mix: tuple[float, ...] | None = None  # learned corrections, from a model's own spec

    def __post_init__(self) -> None:
        if not isinstance(self.clip, (bool, np.bool_)):  # the API's clip="no" would be truthy
            raise UserError(f"clip must be True or False, got {self.clip!r}")
        self.clip = bool(self.clip)

    def check(self, n: int, T: int | None = None) -> None:
        sampler = DEFAULT_SAMPLER if self.sampler is None else self.sampler
        spacing = DEFAULT_SPACING if self.spacing is None else self.spacing
        chosen = self.sampler is not None  # else the model's own, not known before for_model
        check_args(sampler, n, self.steps, self.eta, self.variance, T, spacing, chosen)
        if self.analytic is not None and not (is_integer(self.analytic) and self.analytic >= 0):
            raise UserError(f"--analytic must be an integer >= 0, got {self.analytic!r}")

    def asked(self) -> list[str]:
        """The sampler options given (not left to the model)."""
        given = (
            ("sampler", self.sampler),
            ("steps", self.steps),
            ("spacing", self.spacing),
            ("analytic", self.analytic),
        )
        out = [f"--{k} {v}" for k, v in given if v is not None]
        return out + ([f"timesteps {list(self.timesteps)}"] if self.timesteps is not None else [])

    def unmet(self, spec: SamplerSpec, variance: str | None = None) -> list[str]:
        """The options given (not left at their defaults) that a model's own sampler ``spec``
        (and a sampler file's fixed ``variance``) does not run with."""
        out = ["--no-clip"] if self.clip is False and spec.clip else []
        out += [f"--eta {self.eta:g}"] if self.eta != 0.0 and self.eta != spec.eta else []
        if variance is not None and self.variance not in ("beta", variance):
            out.append(f"--variance {self.variance}")
        return out

    def for_model(self, card: dict) -> SamplerSettings:
        """These settings with the model's own sampler filled in; one line when a distilled model
        or a sampler file is asked for a sampler it was not made for, or the model's own sampler
        for an option it does not take (--no-clip, --eta)."""
        own = model_spec(card)
        graph = card.get("sampler_graph")
        if own is not None and (card.get("distilled") or graph):
            mine = (
                f"--sampler {own.sampler}",
                f"--steps {len(own.timesteps)}",
                f"--analytic {own.analytic}",
                f"timesteps {list(own.timesteps)}",
            )
            asked = [a for a in self.asked() if a not in mine]
            asked += self.unmet(own, (graph or {}).get("variance", "beta") if graph else None)
            if asked:
                why = (
                    "this file holds its whole sampler (`export-sampler`)"
                    if graph
                    else "this model was distilled for its own sampler"
                )
                raise UserError(
                    f"{', '.join(asked)}: {why} ({own.text()}); drop the sampler options"
                )
            variance = (graph or {}).get("variance", self.variance)
            return replace(self.from_spec(own), variance=variance)
        if own is not None and not self.asked():
            unmet = self.unmet(own)
            if unmet:
                raise UserError(
                    f"{', '.join(unmet)}: the model's own sampler ({own.text()}) does not take "
                    "it; add --sampler or --steps to run another sampler with it"
                )
            return self.from_spec(own)
        sampler = DEFAULT_SAMPLER if self.sampler is None else self.sampler
        if self.timesteps is not None:
            steps = len(self.timesteps)
        else:
            steps = DEFAULT_STEPS if self.steps is None else self.steps
        spacing = DEFAULT_SPACING if self.spacing is None else self.spacing
        analytic = 0 if self.analytic is None else self.analytic
        if analytic and not card.get("gaussian"):
            raise UserError(
                f"--analytic {analytic}: this model carries no Gaussian statistics; add them with "
                "`ddpm-deploy learn-sampler MODEL --data-root DIR -o OUT.onnx`"
            )
        return replace(
            self, sampler=sampler, steps=steps, spacing=spacing, analytic=analytic, mix=None
        )

    def from_spec(self, spec: SamplerSpec) -> SamplerSettings:
        return replace(
            self,
            sampler=spec.sampler,
            steps=len(spec.timesteps),
            timesteps=spec.timesteps,
            clip=spec.clip,
            eta=spec.eta,
            analytic=spec.analytic,
            mix=spec.mix,
        )

    def grid(self, schedule: Schedule) -> tuple[int, ...]:
        """The timesteps these settings run on ``schedule``: their own grid (checked), or --steps
        over --spacing, as ``sample()`` computes them."""
        if self.timesteps is not None:
            return tuple(int(t) for t in check_timesteps(list(self.timesteps), schedule.T))
        steps = steps_run(self.steps, schedule.T)
        spacing = DEFAULT_SPACING if self.spacing is None else self.spacing
        return tuple(int(t) for t in timesteps_for(schedule.T, steps, spacing, schedule))

    @property
    def calls(self) -> int | None:
        """Network calls per image per run (None: every timestep of the model)."""
        return None if self.steps is None else self.steps - (self.analytic or 0)

    def sampler_kwargs(self) -> dict:
        """Keyword arguments of ``sample()``."""
        return {
            "sampler": self.sampler,
            "steps": self.steps,
            "eta": self.eta,
            "variance": self.variance,
            "clip": self.clip,
            # unused when timesteps are given (a model's own), which leave spacing None
            "spacing": DEFAULT_SPACING if self.spacing is None else self.spacing,
            "timesteps": self.timesteps,
            "analytic": self.analytic or 0,
            "mix": self.mix,
        }


def steps_run(steps: int | None, T: int) -> int:
    """How many sampler steps a run makes: --steps, or all T when unset."""
    return T if steps is None else steps
