"""The Python API: one object per loaded model, one call that returns arrays.

    import ddpm_deploy

    model = ddpm_deploy.load("fashion_mnist")  # or a path; backend=, provider=, precision=
    images, labels = model.sample(16, seed=0, classes="sneaker")  # uint8 (N, H, W[, C]), labels
    for images, labels in model.sample_iter(100_000, seed=0, batch=500):
        ...  # bounded memory for large n
    model.card, model.classes, model.sampler  # what the file says about itself

`ddpm-deploy sample` runs through this same object (runtime/pipeline.py), so the same arguments
give the same images: image i depends only on (seed, i). Every error is a `ddpm_deploy.UserError`
whose message says what was wrong and what to do. The package exposes `load`, `Model` and `Plan`
at its top level (`ddpm_deploy/__init__.py`, imported on first use so `import ddpm_deploy` stays
light); the runtime stage holds them because the CLI's `sample` runs through them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from ddpm_deploy.runtime.backends import Denoiser, ModelChoice
from ddpm_deploy.runtime.generate import ChunkStep, generate_chunks
from ddpm_deploy.runtime.guidance import guidance_for, labels_for, parse_class
from ddpm_deploy.runtime.sampler_settings import SamplerSettings
from ddpm_deploy.runtime.samplers import check_analytic

from ddpm_deploy.card import class_names
from ddpm_deploy.errors import UserError, is_integer
from ddpm_deploy.images import pixel_layout, to_uint8

__all__ = ["Model", "Plan", "load"]

MAX_SEED = 2**63 - 1  # the generator's key holds 64 bits; 63 fit every int64 field of every target
Classes = str | int | None


@dataclass(frozen=True)
class Plan:
    """One sampling request resolved for a model: its sampler settings, guidance, the class choice
    (an index, "all", "random" or None for unconditional) and one label per image (or None)."""

    settings: SamplerSettings
    guidance: float
    choice: int | str | None
    labels: np.ndarray | None
    count: int
    seed: int


class Model:
    """A loaded model (`load`): its card, and sampling that returns numpy arrays."""

    def __init__(self, denoiser: Denoiser) -> None:
        self.denoiser = denoiser

    @property
    def card(self) -> dict:
        """The model card the file carries (architecture, schedule, image shape, classes...)."""
        return self.denoiser.card

    @property
    def classes(self) -> list[str]:
        """Class names, label i for name i; empty for an unconditional model."""
        return class_names(self.card)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model's images."""
        return self.denoiser.image_shape

    @property
    def sampler(self) -> dict:
        """What `sample` runs without sampler options: the method, its timesteps, how many of them
        are analytic steps, and the guidance."""
        s = SamplerSettings().for_model(self.card)
        grid = s.grid(self.denoiser.schedule)
        return {
            "sampler": s.sampler,
            "timesteps": list(grid),
            "analytic": s.analytic or 0,
            "network_calls": len(grid) - (s.analytic or 0),
            "guidance": guidance_for(self.card, None),
            "whole_graph": self.denoiser.whole_sampler,
        }

    def plan(
        self,
        n: int,
        *,
        seed: int = 0,
        classes: Classes = None,
        guidance: float | None = None,
        settings: SamplerSettings | None = None,
    ) -> Plan:
        """Resolve a request against the model, checking every argument (one UserError)."""
        if not is_integer(seed) or not 0 <= seed <= MAX_SEED:
            raise UserError(f"seed must be an integer between 0 and 2**63-1, got {seed!r}")
        resolved = (settings or SamplerSettings()).for_model(self.card)
        w = guidance_for(self.card, guidance)
        resolved.check(n, self.denoiser.schedule.T)
        assert resolved.sampler is not None  # for_model fills it in
        grid = len(resolved.grid(self.denoiser.schedule))
        check_analytic(resolved.analytic or 0, resolved.mix, resolved.sampler, grid)
        choice = parse_class(self.card, None if classes is None else str(classes))
        labels = labels_for(self.card, choice, n, int(seed))
        count = n if labels is None else len(labels)
        return Plan(resolved, w, choice, labels, count, int(seed))

    def chunks(
        self,
        plan: Plan,
        *,
        batch: int = 100,
        progress: bool = False,
        on_step: ChunkStep | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(start, x) per chunk of ``batch`` images: x in model space (float32, N x C x H x W)."""
        if not is_integer(batch) or batch < 1:
            raise UserError(f"batch must be a positive integer, got {batch!r}")
        desc = f"{plan.settings.sampler} sampling"
        yield from generate_chunks(
            self.denoiser,
            plan.settings,
            plan.count,
            seed=plan.seed,
            labels=plan.labels,
            guidance=plan.guidance,
            batch=int(batch),
            desc=desc,
            progress=progress,
            on_step=on_step,
        )

    def sample_iter(
        self,
        n: int,
        *,
        seed: int = 0,
        classes: Classes = None,
        guidance: float | None = None,
        batch: int = 500,
        progress: bool = False,
        **sampler,
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """``sample`` a chunk at a time: (images, labels) of ``batch`` images each, memory bounded
        by the chunk. ``sampler``: sampler, steps, analytic, spacing, eta, variance, clip."""
        plan = self.plan(
            n, seed=seed, classes=classes, guidance=guidance, settings=_settings(sampler)
        )
        for start, x in self.chunks(plan, batch=batch, progress=progress):
            labels = None if plan.labels is None else plan.labels[start : start + len(x)]
            yield pixel_layout(to_uint8(x)), labels

    def sample(
        self,
        n: int = 16,
        *,
        seed: int = 0,
        classes: Classes = None,
        guidance: float | None = None,
        batch: int = 100,
        progress: bool = False,
        **sampler,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """n images (n per class with ``classes="all"``) as uint8: (N, H, W) grey or (N, H, W, C)
        colour, and their labels (None for an unconditional run). ``classes``: a name or index,
        "all", "random" or "none" (the model's default: random for a class-conditional model).
        ``guidance``: None for the model's own. ``sampler``: sampler, steps, analytic, spacing,
        eta, variance, clip, as `ddpm-deploy sample` takes them."""
        parts = list(
            self.sample_iter(
                n,
                seed=seed,
                classes=classes,
                guidance=guidance,
                batch=batch,
                progress=progress,
                **sampler,
            )
        )
        images = np.concatenate([p[0] for p in parts])
        labels = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
        return images, labels


def _settings(options: dict) -> SamplerSettings:
    fields = set(SamplerSettings.__dataclass_fields__) - {"timesteps", "mix"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise UserError(f"unknown sampler option(s) {unknown}; choose from {sorted(fields)}")
    return SamplerSettings(**options)


def load(
    model: str | os.PathLike = "fashion_mnist",
    *,
    backend: str = "ort",
    provider: str = "cpu",
    precision: str = "fp32",
    threads: int | None = None,
    allow_cpu_fallback: bool = False,
    device: str = "cpu",
    url: str | None = None,
) -> Model:
    """Open a model: a shipped name (fashion_mnist, mnist, emoji...), an .onnx file (backend "ort"
    or "openvino"; a sampler file from `export-sampler` too), a TensorRT engine ("trt"), a training
    checkpoint ("torch") or a `ddpm-deploy serve` ("triton" with ``url``). The options are those of
    `ddpm-deploy sample`: ``provider`` cpu/cuda/tensorrt for ort, ``precision`` fp32/bf16 for
    openvino, ``threads`` for the CPU backends, ``device`` for torch."""
    choice = ModelChoice(
        model=str(model),
        backend=backend,
        provider=provider,
        allow_cpu_fallback=allow_cpu_fallback,
        device=device,
        precision=precision,
        threads=threads,
        url=url,
    )
    return Model(choice.open())
