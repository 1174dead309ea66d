"""A sampler as data: the JSON a model card carries under ``sampler`` (docs/ARCHITECTURE.md,
"Samplers"), read by every runtime (numpy here, the sampler graph's GraphPlan, serve through
``SamplerSettings``, the TensorRT path through its engine's card).

    {"sampler": "dpm++2m", "timesteps": [999, 917, ..., 0], "clip": true, "eta": 0.0,
     "analytic": 4, "mix": [0.0, 0.12, ...], "guidance": 1.0}

``timesteps`` is the whole grid in sampling order; its first ``analytic`` steps take their data
prediction from the Gaussian statistics in ``card["gaussian"]`` (runtime/gaussian.py), so a run
makes len(timesteps) - analytic network calls per image (twice that with guidance other than 0
or 1). ``mix`` holds one learned correction per step for the samplers that take one (DpmSolver2M).
A distilled model's card (``card["distilled"]``) binds it to its spec; any other model's spec is
only its default and every sampler option still applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ddpm_deploy.runtime.samplers import SAMPLERS, check_analytic
from ddpm_deploy.runtime.timesteps import check_timesteps

from ddpm_deploy.errors import UserError

KEYS = ("sampler", "timesteps", "clip", "eta", "analytic", "mix", "guidance")


@dataclass(frozen=True)
class SamplerSpec:
    sampler: str
    timesteps: tuple[int, ...]
    clip: bool = True
    eta: float = 0.0
    analytic: int = 0
    mix: tuple[float, ...] | None = None
    guidance: float | None = None

    @property
    def calls(self) -> int:
        """Network calls per image (one per step that is not analytic; guidance may double them)."""
        return len(self.timesteps) - self.analytic

    def to_json(self) -> dict:
        out = {"sampler": self.sampler, "timesteps": list(self.timesteps), "clip": self.clip}
        if self.eta:
            out["eta"] = self.eta
        if self.analytic:
            out["analytic"] = self.analytic
        if self.mix is not None:
            out["mix"] = [float(m) for m in self.mix]
        if self.guidance is not None:
            out["guidance"] = self.guidance
        return out

    def text(self) -> str:
        first = f", the first {self.analytic} analytic" if self.analytic else ""
        learned = ", learned corrections" if self.mix is not None else ""
        return f"{self.sampler} at t = {list(self.timesteps)}{first}{learned}: {self.calls} network calls per image"

    @classmethod
    def from_json(
        cls, own: object, T: int, has_gaussian: bool, source: str = "the model card"
    ) -> SamplerSpec:
        """A card's ``sampler`` entry, every field checked: one line naming what is wrong."""

        def bad(what: str) -> UserError:
            return UserError(
                f"{source}'s sampler {what}; re-export or re-learn the model's sampler"
            )

        if not isinstance(own, dict):
            raise bad(f"must be a JSON object, got {own!r}")
        unknown = sorted(set(own) - set(KEYS))
        if unknown or "sampler" not in own or "timesteps" not in own:
            raise bad(
                f"needs 'sampler' and 'timesteps' and only the keys {list(KEYS)}, got {sorted(own)}"
            )
        if own["sampler"] not in SAMPLERS:
            raise bad(f"{own['sampler']!r} is unknown; choose from {list(SAMPLERS)}")
        ts = own["timesteps"]
        if not isinstance(ts, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in ts
        ):
            raise bad(f"timesteps must be a list of integers, got {ts!r}")
        clip, eta, analytic = own.get("clip", True), own.get("eta", 0.0), own.get("analytic", 0)
        guidance, mix = own.get("guidance"), own.get("mix")
        if not isinstance(clip, bool):
            raise bad(f"clip must be true or false, got {clip!r}")
        if not _number(eta) or not 0 <= eta <= 1:
            raise bad(f"eta must be a number in [0, 1], got {eta!r}")
        if guidance is not None and (not _number(guidance) or not 0 <= guidance <= 100):
            raise bad(f"guidance must be a number in [0, 100], got {guidance!r}")
        if not isinstance(analytic, int) or isinstance(analytic, bool):
            raise bad(f"analytic must be an integer, got {analytic!r}")
        if mix is not None and (
            not isinstance(mix, list) or not all(_number(m) and abs(m) <= 10 for m in mix)
        ):
            raise bad(f"mix must be a list of numbers in [-10, 10], got {mix!r}")
        try:
            check_timesteps(ts, T)
            check_analytic(analytic, mix, own["sampler"], len(ts))
        except UserError as e:
            raise bad(str(e)) from None
        if analytic and not has_gaussian:
            raise bad(f"has {analytic} analytic steps but the card carries no Gaussian statistics")
        return cls(
            sampler=own["sampler"],
            timesteps=tuple(ts),
            clip=clip,
            eta=float(eta),
            analytic=analytic,
            mix=None if mix is None else tuple(float(m) for m in mix),
            guidance=None if guidance is None else float(guidance),
        )


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def model_spec(card: dict) -> SamplerSpec | None:
    """The card's own sampler, checked, or None. A sampler graph's (`export-sampler`) is the one
    its graph runs, its statistics inside the graph."""
    T = int(card["schedule"]["T"])
    graph = card.get("sampler_graph")
    if graph is not None:
        if not isinstance(graph, dict):
            raise UserError(f"the model card's sampler_graph must be a JSON object, got {graph!r}")
        own = {k: graph[k] for k in KEYS if k in graph}
        return SamplerSpec.from_json(own, T, True, source="the sampler graph's card")
    own = card.get("sampler")
    if not own:
        return None
    return SamplerSpec.from_json(own, T, bool(card.get("gaussian")))
