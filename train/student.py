"""The student's side of `distill`: its predicted x0, one SFD update per student step, its own
sampler (DDIM with clipping over its grid, after the analytic steps) and its card
(train/distill.py runs them)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
import torch

from ddpm_deploy.card import num_classes

if TYPE_CHECKING:
    from ddpm_deploy.train.distill_config import DistillConfig

METHOD = "sfd-ddim-x0clip-l1"  # what `distill` does; recorded in the student's card


def student_x0(model, x: torch.Tensor, t: torch.Tensor, y, sqrt_ab: torch.Tensor) -> torch.Tensor:
    """The student's predicted x0 (Ho et al. eq. 15) from its eps output."""
    a = sqrt_ab[t].view(-1, 1, 1, 1)
    eps = model(x, t, y)
    return (x - torch.sqrt(1.0 - a * a) * eps) / a


def clipped(x0: torch.Tensor) -> torch.Tensor:
    """x0 clipped to [-1, 1] as the sampler clips it, with the gradient of the unclipped value
    (straight-through): an x0 beyond the range is pulled back where the (clamped) target lies
    inside it, and costs nothing where the target is at the edge too."""
    return x0 + (x0.clamp(-1.0, 1.0) - x0).detach()


def ddim_to(x: torch.Tensor, x0: torch.Tensor, a_t, a_s) -> torch.Tensor:
    """The deterministic DDIM step from x at sqrt(alpha_bar) a_t to a_s (1 for the clean end)."""
    eps = (x - a_t * x0) / torch.sqrt(1.0 - a_t * a_t)
    return a_s * x0 + torch.sqrt(torch.clamp(1.0 - a_s * a_s, min=0.0)) * eps


def x0_target(x: torch.Tensor, x_next: torch.Tensor, a_t, a_s) -> torch.Tensor:
    """The x0 that makes one DDIM step from x at a_t land exactly on x_next at a_s:

        x0~ = (x_s - r x_t) / (a_s - r a_t),   r = sqrt(1 - a_s^2) / sqrt(1 - a_t^2)

    (Salimans & Ho 2022, eq. 8's target; at the clean end a_s = 1, r = 0 and x0~ = x_s). An error
    in x0 reaches the final image about one-for-one from each of the few steps, where an eps loss
    would weight the first step 1 / SNR times too little."""
    r = torch.sqrt(torch.clamp(1.0 - a_s * a_s, min=0.0)) / torch.sqrt(1.0 - a_t * a_t)
    return (x_next - r * x) / (a_s - r * a_t)


def sqrt_ab_at(sqrt_ab: torch.Tensor, t: int) -> torch.Tensor:
    return sqrt_ab[t] if t >= 0 else torch.ones((), device=sqrt_ab.device)


def sfd_update(
    student, opt, ema, ema_decay: float | None, batch: tuple, sqrt_ab
) -> tuple[float, torch.Tensor]:
    """One SFD update for one student step: from the student's OWN state x at t (detached), the L1
    distance of its clipped x0 to the x0~ that lands on the teacher's state at s. Returns the loss
    and the student's next state (from the prediction before the update, detached)."""
    x, t, s, y, teacher_next = batch
    a_t, a_s = sqrt_ab_at(sqrt_ab, t), sqrt_ab_at(sqrt_ab, s)
    tt = torch.full((len(x),), t, dtype=torch.int64, device=x.device)
    x0 = clipped(student_x0(student, x, tt, y, sqrt_ab))
    # the target clamped as the sampler clamps: beyond [-1, 1] the clipped prediction can do no
    # better than the edge, and an unclamped target would push the unclipped x0 out for ever
    target = x0_target(x, teacher_next, a_t, a_s).clamp(-1.0, 1.0)
    loss = torch.mean(torch.abs(x0 - target))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
    opt.step()
    if ema is not None:
        with torch.no_grad():
            for pe, ps in zip(ema.parameters(), student.parameters(), strict=True):
                pe.lerp_(ps, 1.0 - ema_decay)
    return loss.item(), ddim_to(x, x0.detach(), a_t, a_s)


@torch.no_grad()
def rollout(
    model, x: np.ndarray, y: np.ndarray | None, ts: np.ndarray, sqrt_ab, device
) -> np.ndarray:
    """The student's calls (DDIM with clipping over ``ts``, the grid after its analytic steps)
    from the state x at ts[0] to the clean image."""
    was_training = model.training
    model.eval()
    xt = torch.from_numpy(x).to(device)
    yt = None if y is None else torch.from_numpy(y).to(device)
    ends = [*ts.tolist(), -1]
    for t, s in zip(ends[:-1], ends[1:], strict=True):
        tt = torch.full((len(xt),), t, dtype=torch.int64, device=device)
        x0 = student_x0(model, xt, tt, yt, sqrt_ab).clamp(-1.0, 1.0)
        xt = ddim_to(xt, x0, sqrt_ab_at(sqrt_ab, t), sqrt_ab_at(sqrt_ab, s))
    model.train(was_training)
    return xt.cpu().numpy()


def student_card(
    cfg: DistillConfig,
    teacher: dict,
    teacher_sha256: str,
    grid: np.ndarray,
    gaussian: dict | None,
    progress: dict,
) -> dict:
    """The teacher's card with the student's own sampler and how it was made."""
    conditional = bool(num_classes(teacher))
    card = {k: v for k, v in teacher.items() if k not in ("weights", "sampler", "gaussian")}
    sampler = {"sampler": "ddim", "timesteps": grid.tolist(), "clip": True}
    if cfg.analytic:
        sampler["analytic"] = cfg.analytic
        card["gaussian"] = gaussian
    return {
        **card,
        # the raw weights (SFD keeps no EMA; both are saved and `export --weights ema` takes the
        # EMA). The held-out distance to the teacher's images is not a quality measure (a blurry
        # sampler scores well on it): judge students with `evaluate` (docs/QUALITY.md).
        "weights": "model",
        "sampler": {**sampler, "guidance": 1.0 if conditional else None},
        "distilled": {
            "method": METHOD,
            "teacher_sha256": teacher_sha256,
            "teacher_weights": teacher.get("weights"),
            "teacher_sampler": {
                "sampler": cfg.teacher_sampler,
                "clip": True,
                "sub_steps": cfg.sub_steps,
            },
            "guidance": cfg.guidance if conditional else None,
            "config": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "out")},
            **progress,
        },
    }
