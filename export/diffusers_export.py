"""`export-diffusers`: a ddpm-deploy checkpoint to a folder that diffusers' ``DDPMPipeline`` loads.

A model imported from diffusers (a ``UNet2DModel``) goes back as a plain ``UNet2DModel``. The
project's own architectures (reference-unet, resunet) are no ``UNet2DModel``, so their folder holds
a custom component: ``unet/ddpm_deploy_unet.py`` imports ``DdpmDeployUNet`` from ddpm-deploy
(train/diffusers_unet.py), and diffusers loads it with ``trust_remote_code=True`` (docs/COMMANDS.md). The
folder is staged beside OUT and moved into place only after it was read back and checked.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ddpm_deploy.export.diffusers_config import check_alpha_bars, require_diffusers

from ddpm_deploy.card import card_schedule
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import output_folder, staging_folder, writable_dir

MODULE = "ddpm_deploy_unet"  # unet/ddpm_deploy_unet.py, named in model_index.json
SHIM = '''"""ddpm-deploy's model as a diffusers component: the class lives in the ddpm-deploy package
(pip install 'ddpm-deploy[diffusers]'); this file only imports it. Loaded by
DDPMPipeline.from_pretrained(folder, trust_remote_code=True)."""

from ddpm_deploy.train.diffusers_unet import DdpmDeployUNet

__all__ = ["DdpmDeployUNet"]
'''


def scheduler_config(card: dict) -> dict:
    """The DDPMScheduler settings of a card's schedule; one line if diffusers cannot name it.
    The variance and clipping are the runtime's defaults for the DDPM sampler (beta, clip)."""
    schedule = card_schedule(card)
    p = schedule.params
    if schedule.name == "linear":
        names = {
            "beta_schedule": "linear",
            "beta_start": p["beta_start"],
            "beta_end": p["beta_end"],
        }
    elif schedule.name == "cosine" and (p["s"], p["max_beta"]) == (0.008, 0.999):
        names = {"beta_schedule": "squaredcos_cap_v2"}
    else:
        raise UserError(
            f"schedule {schedule.to_dict()} has no diffusers beta_schedule (linear, or cosine "
            "with s 0.008 and max_beta 0.999 as squaredcos_cap_v2)"
        )
    cfg = {"num_train_timesteps": schedule.T, "beta_start": 1e-4, "beta_end": 0.02, **names}
    check_alpha_bars(schedule, cfg)
    return {
        **cfg,
        "variance_type": "fixed_large",
        "clip_sample": True,
        "prediction_type": "epsilon",
    }


def _unet(model, card: dict):
    """The diffusers component for the model: its own UNet2DModel, or a DdpmDeployUNet."""
    from ddpm_deploy.train.diffusers_unet import DdpmDeployUNet
    from ddpm_deploy.train.unet2d import ARCH_NAME

    if card["arch"]["name"] == ARCH_NAME:
        return model.unet
    c, h, w = (int(v) for v in card["image"]["shape"])
    component = DdpmDeployUNet(card=card, sample_size=h if h == w else [h, w], in_channels=c)
    component.model.load_state_dict(model.state_dict())
    return component.eval()


def _check_written(folder: Path, model, card: dict) -> None:
    """Read the folder back (weights, configs; no code from it is run) and compare eps."""
    import numpy as np
    import torch
    from ddpm_deploy.export.diffusers_config import project_schedule, read_folder
    from ddpm_deploy.export.diffusers_import import ddpm_deploy_model, unet2d_model

    found = read_folder(folder)
    if project_schedule(found.scheduler).to_dict() != card["schedule"]:
        raise UserError(f"the written scheduler config does not give back {card['schedule']}")
    if found.unet["_class_name"] == "DdpmDeployUNet":
        _, reference, _ = ddpm_deploy_model(found)
    else:
        _, reference, _ = unet2d_model(found, card["arch"].get("null_label", False))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, *card["image"]["shape"], generator=g)
    t = torch.tensor([0, 1, card["schedule"]["T"] // 2, card["schedule"]["T"] - 1])
    k = int(card["arch"].get("num_classes", 0))
    y = (torch.arange(4) % (k + (card["arch"].get("null_label") is not False)),) if k else ()
    with torch.inference_mode():
        diff = (reference(x, t, *y) - model(x, t, *y)).abs().max().item()
    if not np.isfinite(diff) or diff > 0:
        raise UserError(
            f"the written diffusers folder gives other eps than the checkpoint ({diff:.1e})"
        )


def export_diffusers(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    weights: str = "auto",
    echo: Callable = print,
) -> Path:
    """Write the diffusers folder ``out`` for ``checkpoint``; refuses an existing non-empty ``out``."""
    require_diffusers()
    from ddpm_deploy.train.checkpoint import load_model
    from diffusers import DDPMPipeline, DDPMScheduler

    out = output_folder(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder; choose a new OUT")
    model, card = load_model(checkpoint, weights=weights)
    if card.get("sampler"):
        raise UserError(
            "this model was distilled for its own few-step sampler; diffusers' DDPMPipeline would "
            "run it as a plain DDPM: export the teacher instead"
        )
    scheduler = DDPMScheduler(**scheduler_config(card))
    writable_dir(out.parent if out.parent != Path("") else Path("."))
    staging = staging_folder(out.parent, out.name)
    try:
        DDPMPipeline(unet=_unet(model, card), scheduler=scheduler).save_pretrained(staging)
        if card["arch"]["name"] != "diffusers-unet2d":
            index = json.loads((staging / "model_index.json").read_text())
            index["unet"] = [MODULE, "DdpmDeployUNet"]
            (staging / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
            (staging / "unet" / f"{MODULE}.py").write_text(SHIM)
        _check_written(staging, model, card)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    echo(f"wrote {out} (eps identical to {checkpoint}; load: DDPMPipeline.from_pretrained)")
    return out
