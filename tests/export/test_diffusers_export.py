"""`export-diffusers`: folders that diffusers' DDPMPipeline loads and runs, for the project's own
UNets (a custom component, trust_remote_code=True) and for imported UNet2DModels (plain diffusers);
and the round trip: exported, imported again, the same eps to 1e-5."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TINY_UNET_SHAPE as SHAPE
from tests.helpers import run_cli, tiny_unet

pytest.importorskip("diffusers")


@pytest.fixture
def modules_cache(tmp_path, monkeypatch):
    """trust_remote_code copies unet/ddpm_deploy_unet.py into HF_MODULES_CACHE: keep it in tmp."""
    monkeypatch.setattr(
        "diffusers.utils.dynamic_modules_utils.HF_MODULES_CACHE", str(tmp_path / "modules")
    )
    monkeypatch.setattr(sys, "path", list(sys.path))


def run_pipeline(folder: Path, **kwargs) -> np.ndarray:
    import torch
    from diffusers import DDPMPipeline

    pipe = DDPMPipeline.from_pretrained(folder, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        batch_size=2, num_inference_steps=2, generator=torch.manual_seed(0), output_type="np"
    )
    return out.images


def eps_of(model, card: dict, *y) -> np.ndarray:
    import torch

    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(5, *SHAPE, generator=g), torch.tensor([0, 1, 250, 500, 999])
    with torch.inference_mode():
        return model(x, t, *y).numpy()


@pytest.mark.parametrize("fixture", ["random_checkpoint", "random_cond_checkpoint"])
def test_diffusers_loads_and_runs_the_projects_models(fixture, request, tmp_path, modules_cache):
    checkpoint = request.getfixturevalue(fixture)
    out = tmp_path / "pipe"
    result = run_cli("export-diffusers", checkpoint, out)
    assert result.exit_code == 0, result.output
    index = json.loads((out / "model_index.json").read_text())
    assert index["unet"] == ["ddpm_deploy_unet", "DdpmDeployUNet"]
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(out.rglob("*.bin"))
    images = run_pipeline(out, trust_remote_code=True)
    assert images.shape == (2, SHAPE[1], SHAPE[2], SHAPE[0]) and np.isfinite(images).all()
    with pytest.raises(ValueError, match="trust_remote_code"):
        run_pipeline(out)  # diffusers runs no code from the folder unless asked


def test_round_trip_keeps_eps(random_cond_checkpoint, tmp_path):
    """checkpoint -> export-diffusers -> import-diffusers: the ONNX file's eps equals the
    checkpoint's to 1e-5 (labels 0..K, the null label included) and the card survives."""
    import torch
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.train.checkpoint import load_model

    from ddpm_deploy.onnx_model import read_card

    assert run_cli("export-diffusers", random_cond_checkpoint, tmp_path / "pipe").exit_code == 0
    result = run_cli("import-diffusers", tmp_path / "pipe", "-o", tmp_path / "back.onnx")
    assert result.exit_code == 0, result.output
    model, card = load_model(random_cond_checkpoint)
    back = read_card(tmp_path / "back.onnx")
    for key in ("arch", "schedule", "image", "dataset", "classes"):
        assert back[key] == card[key], key
    y = torch.tensor([0, 3, 9, 10, 10])  # 10: the null label
    want = eps_of(model, card, y)
    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(5, *SHAPE, generator=g).numpy(), np.array([0, 1, 250, 500, 999])
    got = load_denoiser("ort", tmp_path / "back.onnx")(x, t, y.numpy())
    assert np.abs(got - want).max() <= 1e-5


def test_an_imported_unet2d_goes_back_as_plain_diffusers(tmp_path):
    """A diffusers-unet2d checkpoint (what import-diffusers --checkpoint writes) exports as a
    plain UNet2DModel: no custom code, no trust_remote_code."""
    from ddpm_deploy.export.diffusers_config import read_folder
    from ddpm_deploy.export.diffusers_import import imported_card, unet2d_model
    from ddpm_deploy.train.checkpoint import save_checkpoint
    from diffusers import DDPMPipeline, DDPMScheduler

    source = tmp_path / "source"
    DDPMPipeline(unet=tiny_unet(seed=4), scheduler=DDPMScheduler()).save_pretrained(source)
    found = read_folder(source)
    model, _, arch = unet2d_model(found, last_class_is_null=False)
    card = imported_card(found, arch, None, None)
    save_checkpoint(tmp_path / "m.safetensors", card, model.state_dict())
    result = run_cli("export-diffusers", tmp_path / "m.safetensors", tmp_path / "pipe")
    assert result.exit_code == 0, result.output
    assert not list((tmp_path / "pipe").rglob("*.py"))
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DModel"]
    assert run_pipeline(tmp_path / "pipe").shape == (2, SHAPE[1], SHAPE[2], SHAPE[0])
