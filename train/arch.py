"""The architectures `train --arch` can build, and the one place that maps a card back to a model."""

from __future__ import annotations

import torch
from ddpm_deploy.train.reference_unet import ReferenceUNet, UNetConfig
from ddpm_deploy.train.resunet import ResUNet, ResUNetConfig

from ddpm_deploy.errors import UserError

# --arch name -> (card name, config class, model class)
ARCHS = {
    "reference": ("reference-unet", UNetConfig, ReferenceUNet),
    "resunet": ("resunet", ResUNetConfig, ResUNet),
}
BY_CARD_NAME = {card: (cfg, model) for card, cfg, model in ARCHS.values()}


def card_name(arch: str) -> str:
    if arch not in ARCHS:
        raise UserError(f"unknown --arch {arch!r}; choose from {sorted(ARCHS)}")
    return ARCHS[arch][0]


def make_config(arch: str, **settings) -> UNetConfig | ResUNetConfig:
    """A config for `train --arch`; settings the architecture does not have must be left unset."""
    name = card_name(arch)
    cls = ARCHS[arch][1]
    given = {k: v for k, v in settings.items() if v is not None}
    unknown = sorted(set(given) - set(cls.__dataclass_fields__))
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise UserError(f"--arch {arch} has no setting {flags}; drop it or use --arch resunet")
    return cls.from_dict({**cls().to_dict(), **given, "name": name})


def build(arch: dict) -> torch.nn.Module:
    """The model a card's ``arch`` section describes (untrained)."""
    name = arch.get("name")
    if name == "diffusers-unet2d":  # imported by `import-diffusers` (needs the diffusers extra)
        try:
            from ddpm_deploy.train.unet2d import build_unet2d
        except ImportError:
            raise UserError(
                "this model was imported from diffusers: pip install 'ddpm-deploy[diffusers]'"
            ) from None
        return build_unet2d(arch)
    if name not in BY_CARD_NAME:
        raise UserError(
            f"architecture {name!r} is not supported by this version; it builds "
            f"{sorted(BY_CARD_NAME)}"
        )
    cfg_cls, model_cls = BY_CARD_NAME[name]
    return model_cls(cfg_cls.from_dict(arch))
