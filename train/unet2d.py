"""A Hugging Face diffusers ``UNet2DModel`` on ddpm-deploy's denoiser interface: ``eps = f(x, t[, y])``,
what the exporter, the parity check and the torch backend call (card arch ``diffusers-unet2d``).
Needs the ``diffusers`` extra; train/arch.py builds it for an imported card.
"""

from __future__ import annotations

import torch
from diffusers.models.unets.unet_2d import UNet2DModel

ARCH_NAME = "diffusers-unet2d"  # the card's arch name of an imported UNet2DModel


class Unet2DDenoiser(torch.nn.Module):
    """eps_theta(x, t[, y]) of a diffusers ``UNet2DModel`` whose output is the noise (epsilon)."""

    def __init__(self, unet: UNet2DModel, conditional: bool):
        super().__init__()
        self.unet, self.conditional = unet, conditional

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        labels = y if self.conditional else None
        return self.unet(x, t, class_labels=labels, return_dict=False)[0]


def build_unet2d(arch: dict) -> Unet2DDenoiser:
    """The (untrained) model of an imported card's ``arch`` section (train/arch.py calls this)."""
    unet = UNet2DModel.from_config(arch["unet"])
    return Unet2DDenoiser(unet, conditional=bool(arch["unet"].get("num_class_embeds")))
