"""`ddpm-deploy sample`: load a denoiser, run a sampler, write samples.png, sampling.gif and run.json."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ddpm_deploy.runtime.backends import load_denoiser
from ddpm_deploy.runtime.guidance import (
    ALL,
    DEFAULT_GUIDANCE,
    Guided,
    check_guidance,
    labels_for,
    parse_class,
)
from ddpm_deploy.runtime.models import resolve_model
from ddpm_deploy.runtime.samplers import check_args, sample, steps_run

from ddpm_deploy import __version__
from ddpm_deploy.card import class_names
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import sha256_file, writable_dir, write_text_atomic
from ddpm_deploy.images import frame_steps, grid, save_gif, save_png


@dataclass
class SampleRequest:
    model: str = "fashion_mnist"
    backend: str = "ort"
    sampler: str = "ddpm"
    steps: int | None = None
    eta: float = 0.0
    variance: str = "beta"
    clip: bool = True
    n: int = 16
    class_: str | None = None  # a class name or index, "all", or None (unconditional)
    guidance: float = DEFAULT_GUIDANCE
    seed: int = 0
    out: str = "."
    provider: str = "cpu"
    allow_cpu_fallback: bool = False
    frames: int = 100
    scale: int = 1
    progress: bool = True

    def validate(self) -> None:
        # Everything checkable without the model is checked before anything loads or is written.
        check_args(self.sampler, self.n, self.steps, self.eta, self.variance)
        check_guidance(self.guidance)
        if not 1 <= self.scale <= 16:
            raise UserError(f"--scale must be between 1 and 16, got {self.scale}")
        if self.frames < 1:
            raise UserError(f"--frames must be positive, got {self.frames}")


def backend_options(req: SampleRequest) -> dict:
    if req.backend == "ort":
        return {"provider": req.provider, "allow_cpu_fallback": req.allow_cpu_fallback}
    return {}


def run_sampling(req: SampleRequest) -> dict:
    req.validate()
    model = resolve_model(req.model) if req.backend == "ort" else req.model
    denoiser = load_denoiser(req.backend, model, **backend_options(req))
    schedule = denoiser.schedule
    check_args(req.sampler, req.n, req.steps, req.eta, req.variance, schedule.T)
    choice = parse_class(denoiser.card, req.class_)
    labels = labels_for(denoiser.card, choice, req.n)
    count = req.n if labels is None else len(labels)
    ncols = req.n if choice == ALL else None  # --class all: one row per class
    out = writable_dir(req.out)

    total = steps_run(req.sampler, req.steps, schedule.T)
    capture = frame_steps(total, req.frames)
    frames: list[np.ndarray] = []

    def keep_frame(i: int, t: int, x: np.ndarray) -> None:
        if i in capture:
            frames.append(grid(x, ncols=ncols, scale=req.scale))

    rng = np.random.default_rng(req.seed)
    t0 = time.perf_counter()
    x = sample(
        Guided(denoiser, labels, req.guidance),
        schedule,
        count,
        rng,
        sampler=req.sampler,
        steps=req.steps,
        eta=req.eta,
        variance=req.variance,
        clip=req.clip,
        shape=denoiser.image_shape,
        callback=keep_frame,
        progress=req.progress,
    )
    seconds = time.perf_counter() - t0

    save_png(out / "samples.png", grid(x, ncols=ncols, scale=req.scale))
    save_gif(out / "sampling.gif", frames)
    record = {
        **{k: v for k, v in asdict(req).items() if k not in ("out", "progress", "class_")},
        "n": count,
        "class": None
        if choice is None
        else (ALL if choice == ALL else class_names(denoiser.card)[choice]),
        "guidance": req.guidance if labels is not None else None,
        "model": str(denoiser.path),
        "steps": total,
        "model_sha256": sha256_file(denoiser.path),
        "dataset": denoiser.card.get("dataset"),
        "schedule": schedule.to_dict(),
        "device": denoiser.device,
        "seconds": round(seconds, 3),
        "share_outside_range": float(np.mean(np.abs(x) > 1.0)),
        "ddpm_deploy": __version__,
        "machine": platform.machine(),
        "outputs": ["samples.png", "sampling.gif"],
    }
    write_text_atomic(out / "run.json", json.dumps(record, indent=2) + "\n")
    record["out"] = str(Path(out).resolve())
    return record
