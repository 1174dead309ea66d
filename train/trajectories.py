"""The teacher's side of `distill`: the student's timesteps, the teacher's DDIM grid through them,
its trajectories (made with the runtime's own sampler and cached per chunk), and the x0 each
student step must predict to land on the teacher's next state (train/distill.py trains on them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ddpm_deploy.runtime.guidance import Guided, random_labels
from ddpm_deploy.runtime.noise import PerImageNoise
from ddpm_deploy.runtime.samplers import sample
from ddpm_deploy.runtime.timesteps import timesteps_for
from tqdm.auto import tqdm

from ddpm_deploy.files import atomic_path

if TYPE_CHECKING:
    from ddpm_deploy.train.distill_config import DistillConfig


def student_timesteps(T: int, steps: int) -> np.ndarray:
    """The student's timesteps: "trailing" spacing, T-1 first (a few-step sampler must start from
    pure noise; "linspace" would spend its last call at t = 0)."""
    return timesteps_for(T, steps, "trailing")


def teacher_grid(student_ts: np.ndarray, sub_steps: int) -> tuple[np.ndarray, list[int]]:
    """The teacher's DDIM grid through every student timestep, ``sub_steps`` calls per segment,
    and the positions of the student's timesteps in it."""
    ends = [*student_ts.tolist(), -1]
    grid, marks = [], []
    for a, b in zip(ends[:-1], ends[1:], strict=True):
        marks.append(len(grid))
        seg = np.unique(np.round(np.linspace(a, b, sub_steps + 1)[:-1]).astype(np.int64))[::-1]
        grid.extend(seg.tolist())
    return np.asarray(grid, np.int64), marks


def make_trajectories(
    cfg: DistillConfig, teacher, student_ts: np.ndarray, cache: Path | None = None
) -> dict:
    """x at every student timestep and the teacher's final sample: states [N, K+1, C, H, W].

    With ``cache``, every chunk is saved as it is made and reused by a later run with the same
    settings (image i's noise and class depend only on (seed, i)), so a stopped run resumes.
    """
    k = teacher.num_classes
    labels = random_labels(k, cfg.seed, 0, cfg.trajectories) if k else None
    grid, marks = teacher_grid(student_ts, cfg.sub_steps)
    shape = teacher.image_shape
    states = np.zeros((cfg.trajectories, len(student_ts) + 1, *shape), np.float32)
    after = {m - 1: j for j, m in enumerate(marks) if m > 0}  # step i lands on grid[i + 1]
    bar = tqdm(total=cfg.trajectories, desc="teacher trajectories", disable=not cfg.progress)
    cached = 0
    for start in range(0, cfg.trajectories, cfg.gen_batch):
        size = min(cfg.gen_batch, cfg.trajectories - start)
        rows = slice(start, start + size)
        saved = None if cache is None else cache / f"chunk-{start:07d}-{size}.npy"
        if saved is not None and saved.is_file():
            states[rows] = np.load(saved)
            cached += 1
            bar.update(size)
            continue
        # x_T is the first draw of each image's stream: the same one `sample` makes below
        states[rows, 0] = PerImageNoise(cfg.seed, start, size).standard_normal(
            (size, *shape), np.float32
        )

        def keep(i: int, t: int, x: np.ndarray, rows=rows) -> None:
            if i in after:
                states[rows, after[i]] = x

        chunk_labels = None if labels is None else labels[rows]
        states[rows, -1] = sample(
            Guided(teacher, chunk_labels, cfg.guidance), teacher.schedule, size,
            PerImageNoise(cfg.seed, start, size), sampler="ddim", timesteps=grid, clip=True,
            shape=shape, callback=keep,
        )  # fmt: skip
        if saved is not None:
            with atomic_path(saved) as tmp, open(tmp, "wb") as f:
                np.save(f, states[rows])
        bar.update(size)
    bar.close()
    return {"states": states, "labels": labels, "grid": grid, "cached_chunks": cached}


def cache_key(cfg: DistillConfig, teacher_sha: str, student_ts: np.ndarray) -> str:
    """What the trajectories depend on, and nothing else (not epochs, lr, ...), hashed: a folder
    name of bounded length whatever the number of student steps (64 steps overflowed NAME_MAX)."""
    import hashlib

    parts = [teacher_sha[:16], cfg.seed, cfg.guidance, cfg.sub_steps, *student_ts.tolist()]
    return hashlib.sha256("-".join(str(p) for p in parts).encode()).hexdigest()[:24]


def x0_targets(states: np.ndarray, ts: np.ndarray, alpha_bars: np.ndarray) -> np.ndarray:
    """x0~ for every (x_{t_j}, x_{t_{j+1}}) pair: the x0 a DDIM step needs to land on the next state."""
    ab = np.array([alpha_bars[t] for t in ts] + [1.0], np.float64)
    out = np.empty_like(states[:, :-1])
    for j in range(len(ts)):
        r = np.sqrt(1.0 - ab[j + 1]) / np.sqrt(1.0 - ab[j])
        denom = np.sqrt(ab[j + 1]) - r * np.sqrt(ab[j])
        out[:, j] = (states[:, j + 1] - r * states[:, j]) / denom
    return out
