"""Hugging Face diffusers in colour: a tiny random 3x32x32 UNet2DModel imported with parity and
sampled by every CPU backend (identical noise, the same images), a class-conditional RGB one,
the round trip of a 3x32x32 resunet (export-diffusers, import-diffusers: the same eps, and
DDPMPipeline runs it in colour), and `evaluate` on an imported model (one line saying what to do).

Every folder is written with save_pretrained: no downloads.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tests.helpers import assert_one_line_error, run_cli, tiny_resunet

# trains, exports, serves or drives a browser: outside the quick loop (`pytest -m "not slow"`)
pytestmark = pytest.mark.slow

pytest.importorskip("diffusers")
RGB = (3, 32, 32)
BACKENDS = ["ort", "openvino", "torch"]


def tiny_rgb_unet(num_class_embeds: int | None = None, seed: int = 0):
    import torch
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=RGB[1], in_channels=RGB[0], out_channels=RGB[0],
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, attention_head_dim=4,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), num_class_embeds=num_class_embeds,
    )  # fmt: skip


def colourful(picture: np.ndarray) -> bool:
    """Some pixel whose channels differ."""
    return picture.ndim == 3 and bool((picture.max(axis=-1) != picture.min(axis=-1)).any())


@pytest.fixture(scope="module")
def rgb_imported(tmp_path_factory):
    """save_pretrained's layout, an unconditional 3x32x32 UNet, imported (ONNX and checkpoint)."""
    from ddpm_deploy.export.diffusers_import import import_diffusers
    from diffusers import DDPMPipeline, DDPMScheduler

    root = tmp_path_factory.mktemp("rgb")
    DDPMPipeline(unet=tiny_rgb_unet(), scheduler=DDPMScheduler()).save_pretrained(root / "pipe")
    lines: list[str] = []
    card = import_diffusers(
        root / "pipe", root / "m.onnx", checkpoint=root / "m.safetensors", echo=lines.append
    )
    return root / "m.onnx", root / "m.safetensors", card, lines


def test_an_rgb_unet_is_imported_with_parity(rgb_imported):
    from ddpm_deploy.onnx_model import read_card

    onnx_path, _, card, lines = rgb_imported
    cases = [line for line in lines if line.startswith("batch")]
    assert len(cases) == 12 and all(line.endswith(" ok") for line in cases), lines
    assert card["image"]["shape"] == list(RGB) and card["arch"]["channels"] == 3
    assert read_card(onnx_path) == card


def _model(rgb_imported, backend: str) -> Path:
    if backend == "openvino":
        pytest.importorskip("openvino")
    onnx_path, checkpoint, _, _ = rgb_imported
    return checkpoint if backend == "torch" else onnx_path


def test_every_cpu_backend_gives_the_same_rgb_samples(rgb_imported):
    """The runtime's sampler fed identical noise: every backend ends at the same images."""
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.runtime.samplers import sample

    results = {}
    for backend in BACKENDS:
        if backend == "openvino" and not __import__("importlib").util.find_spec("openvino"):
            continue
        den = load_denoiser(backend, _model(rgb_imported, backend))
        x = sample(den, den.schedule, 3, np.random.default_rng(0), steps=5)
        assert x.shape == (3, *RGB) and np.isfinite(x).all()
        results[backend] = x
    for backend, x in results.items():
        np.testing.assert_allclose(x, results["ort"], atol=1e-4, err_msg=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sample_writes_colour_pictures_with_every_backend(rgb_imported, backend, tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "sample", "--model", _model(rgb_imported, backend), "--backend", backend, "-n", 3,
        "--steps", 3, "--frames", 2, "--save", "npz", "--seed", 7, "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    png = iio.imread(out / "samples.png")
    assert colourful(png[..., :3])
    images = np.load(out / "samples.npz")["images"]
    assert images.shape == (3, 32, 32, 3)
    reference = tmp_path.parent / "ort_images.npy"  # the ort run's images (parametrized first)
    if backend == "ort":
        np.save(reference, images)
    elif reference.exists():
        assert np.abs(images.astype(int) - np.load(reference).astype(int)).max() <= 1


def test_a_class_conditional_rgb_unet(tmp_path):
    from diffusers import DDPMPipeline, DDPMScheduler

    pipe = DDPMPipeline(unet=tiny_rgb_unet(num_class_embeds=3, seed=1), scheduler=DDPMScheduler())
    pipe.save_pretrained(tmp_path / "pipe")
    result = run_cli("import-diffusers", tmp_path / "pipe", "-o", tmp_path / "c.onnx")
    assert result.exit_code == 0, result.output
    cases = [line for line in result.output.splitlines() if line.startswith("batch")]
    assert len(cases) == 12 and all(line.endswith(" ok") for line in cases), result.output
    out = tmp_path / "out"
    result = run_cli("sample", "--model", tmp_path / "c.onnx", "--class", 2, "-n", 2, "--steps", 3,
                     "--save", "npz", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert colourful(iio.imread(out / "samples.png")[..., :3])
    assert np.load(out / "samples.npz")["images"].shape == (2, 32, 32, 3)


def test_the_round_trip_at_3x32x32(tmp_path, monkeypatch):
    """A 3x32x32 resunet -> export-diffusers -> import-diffusers: eps to 1e-5; DDPMPipeline
    loads the folder (trust_remote_code) and returns colour images."""
    import sys

    import torch
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.train.checkpoint import save_checkpoint
    from diffusers import DDPMPipeline

    from ddpm_deploy.card import make_card
    from ddpm_deploy.onnx_model import read_card
    from ddpm_deploy.schedule import Schedule

    monkeypatch.setattr(
        "diffusers.utils.dynamic_modules_utils.HF_MODULES_CACHE", str(tmp_path / "modules")
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    model = tiny_resunet(3, 32, 4)
    classes = ["a", "b", "c", "d"]
    card = make_card(arch=model.config.to_dict(), schedule=Schedule(), dataset="mnist", classes=classes)  # fmt: skip
    save_checkpoint(tmp_path / "m.safetensors", card, model.state_dict())
    assert run_cli("export-diffusers", tmp_path / "m.safetensors", tmp_path / "pipe").exit_code == 0
    config = json.loads((tmp_path / "pipe" / "unet" / "config.json").read_text())
    assert (config["sample_size"], config["in_channels"]) == (32, 3)
    result = run_cli("import-diffusers", tmp_path / "pipe", "-o", tmp_path / "back.onnx")
    assert result.exit_code == 0, result.output
    assert read_card(tmp_path / "back.onnx")["image"]["shape"] == list(RGB)
    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(5, *RGB, generator=g), torch.tensor([0, 1, 250, 500, 999])
    y = torch.tensor([0, 1, 3, 4, 4])  # 4: the null label
    with torch.inference_mode():
        want = model(x, t, y).numpy()
    got = load_denoiser("ort", tmp_path / "back.onnx")(x.numpy(), t.numpy(), y.numpy())
    assert np.abs(got - want).max() <= 1e-5
    pipe = DDPMPipeline.from_pretrained(tmp_path / "pipe", trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(batch_size=2, num_inference_steps=2, generator=torch.manual_seed(0),
                  output_type="np").images  # fmt: skip
    assert images.shape == (2, 32, 32, 3) and np.isfinite(images).all()
    assert colourful(images[0])


def test_evaluate_says_what_to_do_with_an_imported_model(rgb_imported, tmp_path):
    onnx_path, _, card, _ = rgb_imported
    assert card["dataset"] == "diffusers"
    result = run_cli("evaluate", "--model", onnx_path, "-n", 200, "--no-two-sample")
    assert_one_line_error(
        result, "import-diffusers --dataset fashion_mnist|mnist", "not measurable by evaluate"
    )
    result = run_cli("evaluate", "--model", onnx_path, "--dataset", "mnist", "-n", 200)
    assert_one_line_error(result, "import-diffusers --dataset fashion_mnist|mnist")


def test_the_component_takes_its_shape_from_the_card():
    from ddpm_deploy.train.diffusers_unet import DdpmDeployUNet

    from ddpm_deploy.card import make_card
    from ddpm_deploy.schedule import Schedule

    model = tiny_resunet(3, 32, 0)
    card = make_card(arch=model.config.to_dict(), schedule=Schedule(), dataset="mnist")
    config = DdpmDeployUNet(card=card).config
    assert (config.sample_size, config.in_channels) == (32, 3)
