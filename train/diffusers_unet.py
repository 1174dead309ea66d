"""A ddpm-deploy model as a Hugging Face diffusers component: ``DdpmDeployUNet`` (``ModelMixin``,
``ConfigMixin``), what ``export-diffusers`` writes so that ``DDPMPipeline.from_pretrained`` loads and
runs it. The other direction, an imported ``UNet2DModel`` as a denoiser, is train/unet2d.py.
Needs the ``diffusers`` extra; only the export stage imports this module.
"""

from __future__ import annotations

import torch
from ddpm_deploy.train.arch import build
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d import UNet2DOutput

from ddpm_deploy.card import image_shape


def _batch_timesteps(timestep, sample: torch.Tensor) -> torch.Tensor:
    """diffusers passes t as a Python number or a 0-d tensor; ddpm-deploy models take int64[N]."""
    t = torch.as_tensor(timestep, device=sample.device).to(torch.int64)
    return t.reshape(-1).expand(sample.shape[0]) if t.dim() == 0 or t.numel() == 1 else t


class DdpmDeployUNet(ModelMixin, ConfigMixin):
    """A ddpm-deploy model (any ``train --arch``) as the ``unet`` of a diffusers ``DDPMPipeline``.

    ``config.json`` holds the model card; the pipeline reads ``sample_size`` and ``in_channels``
    from it, which default to the card's image shape (C, H, W): ``H``, or ``[H, W]`` if not
    square, and ``C``. Called without ``class_labels``, a class-conditional model gets its null
    label K (unconditional), which is what ``DDPMPipeline`` does.
    """

    @register_to_config
    def __init__(
        self,
        card: dict | None = None,
        sample_size: int | list[int] | None = None,
        in_channels: int | None = None,
    ):
        super().__init__()
        c, h, w = image_shape(card)
        if sample_size is None or in_channels is None:  # the card's shape, recorded in config.json
            self.register_to_config(
                sample_size=(h if h == w else [h, w]) if sample_size is None else sample_size,
                in_channels=c if in_channels is None else in_channels,
            )
        self.model = build(card["arch"])
        self.num_classes = int(card["arch"].get("num_classes", 0))

    def forward(self, sample, timestep, class_labels=None, return_dict: bool = True):
        args = [sample, _batch_timesteps(timestep, sample)]
        if self.num_classes:
            null = torch.full((sample.shape[0],), self.num_classes, device=sample.device)
            args.append(null if class_labels is None else class_labels.to(torch.int64))
        elif class_labels is not None:
            raise ValueError("this ddpm-deploy model is unconditional; it takes no class_labels")
        eps = self.model(*args)
        return UNet2DOutput(sample=eps) if return_dict else (eps,)
