"""The forward process q(x_t | x_0) in torch, bridged from the one numpy schedule (docs/ARCHITECTURE.md, invariant 1)."""

from __future__ import annotations

import torch

from ddpm_deploy.forward import noised
from ddpm_deploy.schedule import Schedule


class ForwardProcess:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. eq. 4), in closed form."""

    def __init__(self, schedule: Schedule, device: torch.device | str = "cpu"):
        self.schedule = schedule
        ab = torch.tensor(schedule.alpha_bars, dtype=torch.float64)  # the one bridge from numpy
        self.sqrt_ab = ab.sqrt().to(device=device, dtype=torch.float32)
        self.sqrt_1m_ab = (1 - ab).sqrt().to(device=device, dtype=torch.float32)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return noised(x0, eps, self.sqrt_ab[t], self.sqrt_1m_ab[t])
