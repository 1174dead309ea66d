"""The student's side of `distill`: its predicted x0, the clipped-x0 update, its own sampler (a
plain DDIM with clipping over its timesteps) and its card (train/distill.py runs them)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
import torch

from ddpm_deploy.card import num_classes

if TYPE_CHECKING:
    from ddpm_deploy.train.distill_config import DistillConfig

METHOD = "trajectory-ddim-x0clip"  # what `distill` does; recorded in the student's card


def student_x0(model, x: torch.Tensor, t: torch.Tensor, y, sqrt_ab: torch.Tensor) -> torch.Tensor:
    """The student's predicted x0 (Ho et al. eq. 15) from its eps output."""
    a = sqrt_ab[t].view(-1, 1, 1, 1)
    eps = model(x, t, y)
    return (x - torch.sqrt(1.0 - a * a) * eps) / a


def clipped(x0: torch.Tensor) -> torch.Tensor:
    """x0 clipped to [-1, 1] as the sampler clips it, with the gradient of the unclipped value
    (straight-through): an x0 beyond the range costs nothing where the target sits at the range's
    edge, and is pushed back where it does not. Unclipped, the teacher's x0 at t = 999 (up to 15
    in magnitude) made the loss 100 times larger there than the error the sampler would keep."""
    return x0 + (x0.clamp(-1.0, 1.0) - x0).detach()


def update(student, opt, ema, ema_decay: float | None, batch: tuple, sqrt_ab) -> float:
    """One step on the squared error of the student's clipped x0 against the targets of ``batch``
    (x, t, y, target), then the EMA; returns the batch's loss."""
    x, t, y, target = batch
    loss = torch.mean((clipped(student_x0(student, x, t, y, sqrt_ab)) - target) ** 2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
    opt.step()
    if ema is not None:
        with torch.no_grad():
            for pe, ps in zip(ema.parameters(), student.parameters(), strict=True):
                pe.lerp_(ps, 1.0 - ema_decay)
    return loss.item()


@torch.no_grad()
def rollout(model, x: np.ndarray, y: np.ndarray | None, ts: np.ndarray, sqrt_ab, device) -> np.ndarray:  # fmt: skip
    """The student's own sampler (plain DDIM with clipping over its timesteps ``ts``) from x_T."""
    model.eval()
    xt = torch.from_numpy(x).to(device)
    yt = None if y is None else torch.from_numpy(y).to(device)
    ends = [*ts.tolist(), -1]
    for t, s in zip(ends[:-1], ends[1:], strict=True):
        tt = torch.full((len(xt),), t, dtype=torch.int64, device=device)
        x0 = student_x0(model, xt, tt, yt, sqrt_ab).clamp(-1.0, 1.0)
        a_t, a_s = sqrt_ab[t], (sqrt_ab[s] if s >= 0 else torch.tensor(1.0))
        eps = (xt - a_t * x0) / torch.sqrt(1.0 - a_t * a_t)
        xt = a_s * x0 + torch.sqrt(torch.clamp(1.0 - a_s * a_s, min=0.0)) * eps
    model.train()
    return xt.cpu().numpy()


def student_card(cfg: DistillConfig, teacher: dict, teacher_sha256: str, ts: np.ndarray,
                 data: dict, history: list[dict], held_out: int) -> dict:  # fmt: skip
    """The teacher's card with the student's own sampler and how it was made."""
    conditional = bool(num_classes(teacher))
    return {
        **{k: v for k, v in teacher.items() if k != "weights"},
        # the raw weights: in a few hundred updates an EMA of 0.999 keeps most of the teacher's
        # weights. Both are saved; `export --weights ema` takes the EMA. The rollout distance
        # to the teacher's images is not a quality measure (a blurry sampler scores well on it):
        # judge students with `evaluate` (docs/QUALITY.md).
        "weights": "model",
        "sampler": {
            "sampler": "ddim",
            "timesteps": ts.tolist(),
            "clip": True,
            "guidance": 1.0 if conditional else None,
        },
        "distilled": {
            "method": METHOD,
            "teacher_sha256": teacher_sha256,
            "teacher_weights": teacher.get("weights"),
            "teacher_sampler": {"sampler": "ddim", "clip": True, "calls": len(data["grid"])},
            "guidance": cfg.guidance if conditional else None,
            "config": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "out")},
            "trajectory_seconds": round(data["seconds"], 1),
            # chunks read from an earlier run's cache: their making is not in the seconds above
            "trajectory_chunks_cached": data["cached_chunks"],
            "pairs_seen": history[-1]["epoch"] * (len(data["states"]) - held_out) * len(ts),
            "history": history,
        },
    }
