"""`ddpm-deploy sample`: load a denoiser, run a sampler, write samples.png, sampling.gif and run.json."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ddpm_deploy.runtime.backends import ModelChoice
from ddpm_deploy.runtime.guidance import (
    ALL,
    RANDOM,
    ClassChoice,
    check_guidance,
)
from ddpm_deploy.runtime.sampler_settings import SamplerSettings, steps_run

from ddpm_deploy import __version__
from ddpm_deploy.card import class_names
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import check_outputs, check_writable, sha256_file
from ddpm_deploy.images import (
    frame_steps,
    grid,
    grid_uint8,
    pixel_layout,
    save_gif,
    save_png,
    to_uint8,
)
from ddpm_deploy.publish import publish

MAX_PICTURED = 64  # samples.png and the GIF show at most this many (or 10 per class)
DEFAULT_BATCH = 100  # images per chunk; see docs/BENCHMARKS.md
OUTPUTS = ("samples.png", "sampling.gif", "samples.npz", "run.json")  # every file a run may write


@dataclass
class SampleRequest(SamplerSettings, ModelChoice, ClassChoice):
    n: int = 16  # per class with --class all (runtime/guidance.py labels_for)
    seed: int = 0
    out: str = "."
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
        self.check_choice()


def pictured(choice: int | str | None, n: int, count: int) -> tuple[np.ndarray, int | None]:
    """Which images samples.png and the GIF show, and in how many columns: the first 64, or for
    --class all one row per class of its first (up to) 10 images."""
    if choice == ALL:
        cols = min(n, 10)
        rows = count // n
        return (np.arange(rows)[:, None] * n + np.arange(cols)[None, :]).ravel(), cols
    return np.arange(min(count, MAX_PICTURED)), None


def run_sampling(req: SampleRequest) -> dict:
    # the Python API's path, so the same arguments draw the images model.sample draws
    from ddpm_deploy.runtime.api import Model

    req.validate()
    model = Model(req.open())
    denoiser = model.denoiser
    plan = model.plan(req.n, seed=req.seed, classes=req.class_, guidance=req.guidance, settings=req)
    req = plan.settings  # a distilled model's own sampler, or the defaults
    req.guidance = plan.guidance
    choice, labels, count = plan.choice, plan.labels, plan.count
    shown, ncols = pictured(choice, req.n, count)
    check_writable(req.out)  # before the work, creating nothing: a refused run leaves no folder
    check_outputs(Path(req.out), OUTPUTS)

    made = _generate(model, plan, req, shown)
    record = _record(req, denoiser, choice, labels, made)
    out = Path(req.out)  # publish makes it only now that there is something to put in it

    def write(folder: Path) -> None:
        picture = made.pixels[shown]
        save_png(folder / "samples.png", grid_uint8(picture, ncols=ncols, scale=req.scale))
        gif = [grid(f, ncols=ncols, scale=req.scale) for f in made.frames]
        save_gif(folder / "sampling.gif", gif)
        if req.save:
            arrays = {"images": pixel_layout(made.pixels)}  # N x H x W, or N x H x W x C in colour
            if labels is not None:
                arrays["labels"] = labels
            if made.raw is not None:
                arrays["samples"] = made.raw
            np.savez_compressed(folder / "samples.npz", **arrays)
        (folder / "run.json").write_text(json.dumps(record, indent=2) + "\n")

    # what an earlier run left under names this run does not write goes: the folder is this run's
    publish(out, record["outputs"] + ["run.json"], write, stale=OUTPUTS)
    record["out"] = str(Path(out).resolve())
    return record


@dataclass
class Generated:
    """What `sample` made: 8-bit images, the raw floats (--save-float) and the GIF's frames."""

    pixels: np.ndarray
    raw: np.ndarray | None
    frames: np.ndarray  # frames[k]: the pictured images after captured step k
    steps: int  # sampler steps (denoiser calls) per image
    outside: int = 0  # raw sample values outside [-1, 1]
    seconds: float = 0.0


def _generate(model, plan, req: SampleRequest, shown: np.ndarray) -> Generated:
    """Every image, chunk by chunk (the API's Model.chunks), keeping the pictured ones at the GIF's
    frame steps."""
    denoiser, count = model.denoiser, plan.count
    shape = denoiser.image_shape
    steps = steps_run(req.steps, denoiser.schedule.T)
    frames = 1 if denoiser.whole_sampler else req.frames  # a sampler graph shows only its end
    capture = {step: k for k, step in enumerate(sorted(frame_steps(steps, frames)))}
    made = Generated(
        pixels=np.zeros((count, *shape), np.uint8),
        raw=np.zeros((count, *shape), np.float32) if req.save_float else None,
        frames=np.zeros((len(capture), len(shown), *shape), np.float32),
        steps=steps,
    )

    def keep_frame(start: int, i: int, t: int, x: np.ndarray) -> None:
        if i in capture:
            rows = np.flatnonzero((shown >= start) & (shown < start + len(x)))
            made.frames[capture[i], rows] = x[shown[rows] - start]

    t0 = time.perf_counter()
    for start, x in model.chunks(plan, batch=req.batch, progress=req.progress, on_step=keep_frame):
        made.pixels[start : start + len(x)] = to_uint8(x)
        if made.raw is not None:
            made.raw[start : start + len(x)] = x
        made.outside += int(np.count_nonzero(np.abs(x) > 1.0))
    made.seconds = time.perf_counter() - t0
    return made


def _record(
    req: SampleRequest, denoiser, choice, labels: np.ndarray | None, made: Generated
) -> dict:
    """run.json: the request as resolved for the model, the model, and what the run took."""
    return {
        **{k: v for k, v in asdict(req).items() if k not in ("out", "progress", "class_")},
        "n": len(made.pixels),
        "class": choice if choice in (None, ALL, RANDOM) else class_names(denoiser.card)[choice],
        "guidance": req.guidance if labels is not None else None,
        "model": str(denoiser.path),
        "steps": made.steps,
        "network_calls": req.calls,
        "model_sha256": sha256_file(denoiser.path) if denoiser.path.is_file() else None,
        "dataset": denoiser.card.get("dataset"),
        "schedule": denoiser.schedule.to_dict(),
        "device": denoiser.device,
        "seconds": round(made.seconds, 3),
        "share_outside_range": made.outside / made.pixels.size,
        "ddpm_deploy": __version__,
        "machine": platform.machine(),
        "outputs": ["samples.png", "sampling.gif"] + (["samples.npz"] if req.save else []),
    }
