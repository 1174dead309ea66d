"""One optimiser step of Ho et al. Algorithm 1, and the learning-rate warm-up before it."""

from __future__ import annotations

import torch
from ddpm_deploy.train.diffusion import ForwardProcess


def warm_up_lr(opt: torch.optim.Optimizer, lr: float, step: int, warmup: int) -> None:
    """Linear learning-rate warm-up: lr * (step + 1) / warmup until step + 1 reaches warmup."""
    for group in opt.param_groups:
        group["lr"] = lr * min(1.0, (step + 1) / warmup)


def train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    forward: ForwardProcess,
    x0: torch.Tensor,
    gen: torch.Generator,
    shard: slice | None = None,
    y: torch.Tensor | None = None,
    null_label: int = 0,
    cond_drop: float = 0.0,
) -> torch.Tensor:
    """One step of Ho et al. Algorithm 1: t ~ U[0, T), eps ~ N(0, I), MSE(eps_theta(x_t, t), eps).

    t and eps are drawn for the whole (global) batch, so every rank of a distributed run draws the
    same numbers as a single process would, then trains on its `shard` of the batch. With labels
    ``y``, a ``cond_drop`` share of them becomes ``null_label`` (classifier-free guidance).
    """
    t = torch.randint(0, forward.schedule.T, (len(x0),), generator=gen).to(x0.device)
    eps = torch.randn(x0.shape, generator=gen).to(x0.device)
    args = ()
    if y is not None:
        drop = (torch.rand(len(x0), generator=gen) < cond_drop).to(x0.device)
        args = (torch.where(drop, torch.full_like(y, null_label), y),)
    if shard is not None:
        x0, t, eps = x0[shard], t[shard], eps[shard]
        args = tuple(a[shard] for a in args)
    loss = torch.nn.functional.mse_loss(model(forward.q_sample(x0, t, eps), t, *args), eps)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss
