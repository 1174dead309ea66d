"""The teacher's side of `distill` (SFD, Zhou et al. 2024): the student's grid, the analytic steps
that hand over to the student's first call, and the teacher's states at the student's timesteps,
made on the fly from fresh noise by a better solver with ``sub_steps`` calls per student step
(train/distill.py trains on them)."""

from __future__ import annotations

import numpy as np
from ddpm_deploy.runtime.guidance import Guided, random_labels
from ddpm_deploy.runtime.noise import PerImageNoise
from ddpm_deploy.runtime.samplers import SAMPLERS, eps_from_x0, sample
from ddpm_deploy.runtime.timesteps import timesteps_for

from ddpm_deploy.schedule import Schedule


def student_grid(schedule: Schedule, calls: int, analytic: int) -> np.ndarray:
    """The student's whole grid, analytic steps first: the EDM grid of calls + analytic + 1 points
    without its last one (t = 0), so the student's last call jumps to the clean image rather than
    spending a call where the image is already clean."""
    return timesteps_for(schedule.T, calls + analytic + 1, "edm", schedule)[:-1]


def teacher_grid(student_ts: np.ndarray, sub_steps: int) -> tuple[np.ndarray, list[int]]:
    """The teacher's grid through every student timestep, at most ``sub_steps`` calls per segment
    (fewer where a segment has fewer timesteps; the last one ends at t = 0), and the positions of
    the student's timesteps in it."""
    ends = [*student_ts.tolist(), -1]
    grid, marks = [], []
    for a, b in zip(ends[:-1], ends[1:], strict=True):
        marks.append(len(grid))
        seg = np.unique(np.round(np.linspace(a, b, sub_steps + 1)[:-1]).astype(np.int64))[::-1]
        seg = seg[seg > b]  # a short segment rounds onto its end: the next segment's start, or -1
        grid.extend(seg.tolist())
    return np.asarray(grid, np.int64), marks


def analytic_start(
    guided: Guided, schedule: Schedule, x: np.ndarray, grid: np.ndarray, k: int
) -> np.ndarray:
    """The first ``k`` steps of the student's sampler (DDIM with clipping on the Gaussian data
    prediction), exactly as the runtime's `sample` takes them: the state at ``grid[k]``."""
    method = SAMPLERS["ddim"](schedule, grid, clip=True)
    for i in range(k):
        t = int(grid[i])
        eps = eps_from_x0(x, guided.gaussian_x0(x, t), schedule.alpha_bars[t])
        x = method.step(i, x, eps, None)
    return x


class Teacher:
    """Fresh starting states and the teacher's states from them, batch by batch."""

    def __init__(self, denoiser, grid: np.ndarray, analytic: int, cfg) -> None:
        self.den, self.grid, self.analytic, self.cfg = denoiser, grid, analytic, cfg
        self.tgrid, marks = teacher_grid(grid[analytic:], cfg.sub_steps)
        # teacher step i lands on tgrid[i + 1]; student step j's target is states[:, j]
        self.after = {m - 1: j - 1 for j, m in enumerate(marks) if m > 0}

    def batch(self, seed: int, start: int, size: int) -> tuple:
        """Images start .. start+size of stream ``seed``: the student's first state (after the
        analytic steps), their labels, and the teacher's states [size, calls, C, H, W] at the
        student's later timesteps and the clean end."""
        k = self.den.num_classes
        labels = random_labels(k, seed, start, size) if k else None
        guided = Guided(self.den, labels, self.cfg.guidance)
        x_T = PerImageNoise(seed, start, size).standard_normal(
            (size, *self.den.image_shape), np.float32
        )
        x = analytic_start(guided, self.den.schedule, x_T, self.grid, self.analytic)
        states = np.zeros((size, len(self.grid) - self.analytic, *x.shape[1:]), np.float32)

        def keep(i: int, t: int, xi: np.ndarray) -> None:
            if i in self.after:
                states[:, self.after[i]] = xi

        states[:, -1] = sample(
            guided,
            self.den.schedule,
            size,
            np.random.default_rng(0),
            sampler=self.cfg.teacher_sampler,
            timesteps=self.tgrid,
            clip=True,
            start=x,
            callback=keep,
        )
        return x, labels, states
