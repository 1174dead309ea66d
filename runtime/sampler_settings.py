"""The sampler settings `sample`, `evaluate` and serve's rows share, resolved against a model card:
a distilled model's own sampler (docs/ARCHITECTURE.md, invariant 4), or the defaults."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ddpm_deploy.runtime.samplers import DEFAULT_SAMPLER, DEFAULT_SPACING, DEFAULT_STEPS, check_args

from ddpm_deploy.errors import UserError


@dataclass
class SamplerSettings:
    """The sampler fields that `sample`, `evaluate` (and their requests) share.

    ``sampler`` and ``steps`` left at None mean "the model's own": a distilled model's card names
    the exact sampler it was made for; any other model gets DEFAULT_SAMPLER, DEFAULT_STEPS and
    DEFAULT_SPACING (``spacing`` None).
    ``for_model`` resolves them before anything runs.
    """

    sampler: str | None = None
    steps: int | None = None
    eta: float = 0.0
    variance: str = "beta"
    clip: bool = True
    spacing: str | None = None
    # an exact grid (a distilled model's): replaces steps and spacing
    timesteps: tuple[int, ...] | None = None  # a tuple: settings group serve's rows as a dict key

    def check(self, n: int, T: int | None = None) -> None:
        sampler = DEFAULT_SAMPLER if self.sampler is None else self.sampler
        spacing = DEFAULT_SPACING if self.spacing is None else self.spacing
        check_args(sampler, n, self.steps, self.eta, self.variance, T, spacing)

    def for_model(self, card: dict) -> SamplerSettings:
        """These settings with the model's own sampler filled in; one line when a distilled model
        is asked for a sampler it was not made for."""
        own = card.get("sampler")
        if not own:
            sampler = DEFAULT_SAMPLER if self.sampler is None else self.sampler
            steps = DEFAULT_STEPS if self.steps is None else self.steps
            spacing = DEFAULT_SPACING if self.spacing is None else self.spacing
            return replace(self, sampler=sampler, steps=steps, spacing=spacing)
        ts = tuple(int(t) for t in own["timesteps"])
        mine = {"sampler": own["sampler"], "steps": len(ts)}
        asked = [f"--{k} {v}" for k, v in (("sampler", self.sampler), ("steps", self.steps)) if v not in (None, mine[k])]  # fmt: skip
        if self.spacing is not None:
            asked.append(f"--spacing {self.spacing}")
        if self.timesteps is not None and tuple(self.timesteps) != ts:
            asked.append(f"timesteps {list(self.timesteps)}")
        if asked:
            raise UserError(
                f"{', '.join(asked)}: this model was distilled for its own sampler "
                f"({own_sampler_text(own)}); drop the sampler options"
            )
        return replace(self, sampler=own["sampler"], steps=len(ts), timesteps=ts, clip=own["clip"])

    def sampler_kwargs(self) -> dict:
        """Keyword arguments of ``sample()``."""
        return {
            "sampler": self.sampler,
            "steps": self.steps,
            "eta": self.eta,
            "variance": self.variance,
            "clip": self.clip,
            # unused when timesteps are given (a distilled model's own), which leave spacing None
            "spacing": DEFAULT_SPACING if self.spacing is None else self.spacing,
            "timesteps": self.timesteps,
        }


def own_sampler_text(own: dict) -> str:
    calls = len(own["timesteps"])
    return f"{own['sampler']} at t = {list(own['timesteps'])}, {calls} network calls per image"


def steps_run(steps: int | None, T: int) -> int:
    """How many denoiser calls a run makes: --steps, or all T when unset."""
    return T if steps is None else steps
