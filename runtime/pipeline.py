"""`ddpm-deploy sample`: load a denoiser, run a sampler, write samples.png, sampling.gif and run.json."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ddpm_deploy.runtime.backends import open_denoiser
from ddpm_deploy.runtime.guidance import (
    ALL,
    RANDOM,
    Guided,
    check_guidance,
    guidance_for,
    labels_for,
    parse_class,
)
from ddpm_deploy.runtime.noise import PerImageNoise
from ddpm_deploy.runtime.sampler_settings import SamplerSettings, steps_run
from ddpm_deploy.runtime.samplers import sample
from tqdm.auto import tqdm

from ddpm_deploy import __version__
from ddpm_deploy.card import class_names
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import publish, sha256_file, writable_dir
from ddpm_deploy.images import frame_steps, grid, grid_uint8, save_gif, save_png, to_uint8

MAX_PICTURED = 64  # samples.png and the GIF show at most this many (or 10 per class)
DEFAULT_BATCH = 100  # images per chunk; see docs/BENCHMARKS.md


@dataclass
class SampleRequest(SamplerSettings):
    model: str = "fashion_mnist"
    backend: str = "ort"
    n: int = 16
    class_: str | None = None  # a class name or index, "all", or None (unconditional)
    guidance: float | None = None  # None: the model's own (guidance_for), else DEFAULT_GUIDANCE
    seed: int = 0
    out: str = "."
    provider: str = "cpu"
    allow_cpu_fallback: bool = False
    precision: str = "fp32"  # openvino: fp32 or bf16
    url: str | None = None  # triton: HOST:PORT[/MODEL] of a Triton server (`ddpm-deploy serve`)
    frames: int = 100
    scale: int = 1
    batch: int = DEFAULT_BATCH  # images per denoiser call (x2 with guidance); memory stays bounded
    save: str | None = None  # "npz": every sample in samples.npz (uint8 images, labels)
    save_float: bool = False  # with save: also the raw float32 samples
    progress: bool = True

    def validate(self) -> None:
        # Everything checkable without the model is checked before anything loads or is written.
        self.check(self.n)
        check_guidance(self.guidance)
        if not 1 <= self.scale <= 16:
            raise UserError(f"--scale must be between 1 and 16, got {self.scale}")
        if self.frames < 1:
            raise UserError(f"--frames must be positive, got {self.frames}")
        if self.batch < 1:
            raise UserError(f"--batch must be positive, got {self.batch}")
        if self.save not in (None, "npz"):
            raise UserError(f"--save takes npz, got {self.save!r}")
        if self.save_float and self.save is None:
            raise UserError("--save-float needs --save npz")
        if (self.backend == "triton") != (self.url is not None):
            raise UserError(
                "--backend triton and --url HOST:PORT go together (a `ddpm-deploy serve`)"
            )


def pictured(choice: int | str | None, n: int, count: int) -> tuple[np.ndarray, int | None]:
    """Which images samples.png and the GIF show, and in how many columns: the first 64, or for
    --class all one row per class of its first (up to) 10 images."""
    if choice == ALL:
        cols = min(n, 10)
        rows = count // n
        return (np.arange(rows)[:, None] * n + np.arange(cols)[None, :]).ravel(), cols
    return np.arange(min(count, MAX_PICTURED)), None


def run_sampling(req: SampleRequest) -> dict:
    req.validate()
    denoiser = open_denoiser(req.backend, req.url or req.model, req.precision,
                             provider=req.provider, allow_cpu_fallback=req.allow_cpu_fallback)  # fmt: skip
    schedule = denoiser.schedule
    req = req.for_model(denoiser.card)  # a distilled model's own sampler, or the defaults
    req.guidance = guidance_for(denoiser.card, req.guidance)
    req.check(req.n, schedule.T)
    choice = parse_class(denoiser.card, req.class_)
    labels = labels_for(denoiser.card, choice, req.n, req.seed)
    count = req.n if labels is None else len(labels)
    shown, ncols = pictured(choice, req.n, count)
    out = writable_dir(req.out)

    total = steps_run(req.sampler, req.steps, schedule.T)
    capture = sorted(frame_steps(total, req.frames))
    # frames[k]: the pictured images after captured step k, filled chunk by chunk
    frames = np.zeros((len(capture), len(shown), *denoiser.image_shape), np.float32)
    pixels = np.zeros((count, *denoiser.image_shape), np.uint8)
    raw = np.zeros((count, *denoiser.image_shape), np.float32) if req.save_float else None
    outside = 0

    t0 = time.perf_counter()
    chunks = range(0, count, req.batch)
    capture_index = {step: k for k, step in enumerate(capture)}
    bar = tqdm(total=len(chunks) * total, desc=f"{req.sampler} sampling", unit="step",
               disable=not req.progress)  # fmt: skip
    try:  # the bar ends its line first, so an error reads as a line of its own
        for start in chunks:
            size = min(req.batch, count - start)
            rows = np.flatnonzero((shown >= start) & (shown < start + size))

            def keep_frame(i: int, t: int, x: np.ndarray, rows=rows, start=start) -> None:
                bar.update()
                if rows.size and i in capture_index:
                    frames[capture_index[i], rows] = x[shown[rows] - start]

            x = sample(
                Guided(
                    denoiser, None if labels is None else labels[start : start + size], req.guidance
                ),
                schedule,
                size,
                PerImageNoise(req.seed, start, size),  # image i depends only on (seed, i)
                **req.sampler_kwargs(),
                shape=denoiser.image_shape,
                callback=keep_frame,
            )
            pixels[start : start + size] = to_uint8(x)
            if raw is not None:
                raw[start : start + size] = x
            outside += int(np.count_nonzero(np.abs(x) > 1.0))
    finally:
        bar.close()
    seconds = time.perf_counter() - t0

    record = {
        **{k: v for k, v in asdict(req).items() if k not in ("out", "progress", "class_")},
        "n": count,
        "class": choice if choice in (None, ALL, RANDOM) else class_names(denoiser.card)[choice],
        "guidance": req.guidance if labels is not None else None,
        "model": str(denoiser.path),
        "steps": total,
        "model_sha256": sha256_file(denoiser.path) if denoiser.path.is_file() else None,
        "dataset": denoiser.card.get("dataset"),
        "schedule": schedule.to_dict(),
        "device": denoiser.device,
        "seconds": round(seconds, 3),
        "share_outside_range": outside / pixels.size,
        "ddpm_deploy": __version__,
        "machine": platform.machine(),
        "outputs": ["samples.png", "sampling.gif"] + (["samples.npz"] if req.save else []),
    }

    def write(folder: Path) -> None:
        picture = pixels[shown]
        save_png(folder / "samples.png", grid_uint8(picture, ncols=ncols, scale=req.scale))
        save_gif(folder / "sampling.gif", [grid(f, ncols=ncols, scale=req.scale) for f in frames])
        if req.save:
            arrays = {"images": pixels[:, 0]}
            if labels is not None:
                arrays["labels"] = labels
            if raw is not None:
                arrays["samples"] = raw
            np.savez_compressed(folder / "samples.npz", **arrays)
        (folder / "run.json").write_text(json.dumps(record, indent=2) + "\n")

    publish(out, record["outputs"] + ["run.json"], write)
    record["out"] = str(Path(out).resolve())
    return record
