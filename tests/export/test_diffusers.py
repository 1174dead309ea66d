"""Hugging Face diffusers in and out: `import-diffusers` (parity, card, every CPU backend, one-line
refusals) and `export-diffusers` (DDPMPipeline loads and runs it; the round trip keeps eps).

Every diffusers folder here is a tiny random UNet2DModel written with save_pretrained: no downloads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TINY_UNET_SHAPE, assert_one_line_error, run_cli, tiny_unet

# trains, exports, serves or drives a browser: outside the quick loop (`pytest -m "not slow"`)
pytestmark = pytest.mark.slow

pytest.importorskip("diffusers")
SHAPE = TINY_UNET_SHAPE  # grey; test_diffusers_rgb.py imports 3x32x32


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory) -> Path:
    """save_pretrained's layout: an unconditional UNet with the cosine schedule."""
    from diffusers import DDPMPipeline, DDPMScheduler

    out = tmp_path_factory.mktemp("diffusers") / "pipeline"
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", variance_type="fixed_small")
    DDPMPipeline(unet=tiny_unet(), scheduler=scheduler).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def flat_cond_folder(tmp_path_factory) -> Path:
    """The flat layout: a class-conditional UNet (4 class embeddings, no null label), linear."""
    from diffusers import DDPMScheduler

    out = tmp_path_factory.mktemp("diffusers") / "flat"
    tiny_unet(num_class_embeds=4, seed=1).save_pretrained(out)
    DDPMScheduler(beta_start=2e-4, beta_end=0.03, clip_sample=False).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def imported(pipeline_folder, tmp_path_factory):
    from ddpm_deploy.export.diffusers_import import import_diffusers

    out = tmp_path_factory.mktemp("imported")
    lines: list[str] = []
    card = import_diffusers(
        pipeline_folder, out / "m.onnx", checkpoint=out / "m.safetensors", echo=lines.append
    )
    return out / "m.onnx", out / "m.safetensors", card, lines


@pytest.fixture(scope="module")
def imported_cond(flat_cond_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported_cond") / "cond.onnx"
    result = run_cli("import-diffusers", flat_cond_folder, "-o", out)
    assert result.exit_code == 0, result.output
    return out


def test_import_proves_parity_and_writes_the_card(imported):
    onnx_path, _, card, lines = imported
    cases = [line for line in lines if line.startswith("batch")]
    assert len(cases) == 12 and all(line.endswith(" ok") for line in cases), lines
    assert {line.split()[1] for line in cases} == {"1", "16", "100"}
    assert card["schedule"] == {"name": "cosine", "T": 1000, "s": 0.008, "max_beta": 0.999}
    assert card["image"]["shape"] == list(SHAPE) and card["dataset"] == "diffusers"
    facts = card["diffusers"]
    assert facts["prediction_type"] == "epsilon" and facts["variance_type"] == "fixed_small"
    assert facts["runtime_flags"] == "--sampler ddpm --variance posterior --clip"
    from ddpm_deploy.onnx_model import read_card

    assert read_card(onnx_path) == card


def test_flat_layout_and_class_labels(imported_cond, flat_cond_folder):
    from ddpm_deploy.onnx_model import read_card

    card = read_card(imported_cond)
    assert card["arch"]["num_classes"] == 4 and card["arch"]["null_label"] is False
    assert card["schedule"] == {"name": "linear", "T": 1000, "beta_start": 2e-4, "beta_end": 0.03}
    assert card["diffusers"]["layout"] == "flat" and card["diffusers"]["clip_sample"] is False


@pytest.mark.parametrize("backend", ["ort", "openvino", "torch"])
def test_every_cpu_backend_samples_the_imported_model(imported, backend, tmp_path):
    onnx_path, checkpoint, _, _ = imported
    if backend == "openvino":
        pytest.importorskip("openvino")
    model = checkpoint if backend == "torch" else onnx_path
    result = run_cli(
        "sample", "--model", model, "--backend", backend, "-n", 2, "--steps", 3, "--out", tmp_path,
        "--save", "npz", "--frames", 2,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "samples.npz") as saved:
        images = saved[next(iter(saved.files))]
    assert len(images) == 2


def test_the_backends_agree_on_eps(imported):
    from ddpm_deploy.runtime.backends import load_denoiser

    onnx_path, checkpoint, _, _ = imported
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((3, *SHAPE), dtype=np.float32), np.array([0, 500, 999])
    eps = [load_denoiser(b, p)(x, t) for b, p in [("ort", onnx_path), ("torch", checkpoint)]]
    if __import__("importlib").util.find_spec("openvino"):
        eps.append(load_denoiser("openvino", onnx_path)(x, t))
    for other in eps[1:]:
        assert np.abs(other - eps[0]).max() < 1e-5


def test_a_unet_without_null_label_refuses_guidance(imported_cond, tmp_path):
    result = run_cli("sample", "--model", imported_cond, "--guidance", 2, "--out", tmp_path)
    assert_one_line_error(result, "--guidance 2.0", "no null label")
    result = run_cli("sample", "--model", imported_cond, "--class", "none", "--out", tmp_path)
    assert_one_line_error(result, "--class none", "no null label")
    result = run_cli(
        "sample", "--model", imported_cond, "--class", "3", "-n", 2, "--steps", 2, "--out", tmp_path
    )
    assert result.exit_code == 0, result.output


def test_last_class_is_null_maps_onto_the_null_label(flat_cond_folder):
    from ddpm_deploy.export.diffusers_config import read_folder
    from ddpm_deploy.export.diffusers_import import imported_card, unet2d_model

    found = read_folder(flat_cond_folder)
    _, _, arch = unet2d_model(found, last_class_is_null=True)
    card = imported_card(found, arch, None, None)
    assert card["arch"]["num_classes"] == 3 and card["arch"]["null_label"] is True
    assert card["classes"] == ["0", "1", "2"]
    from ddpm_deploy.runtime.guidance import guidance_for

    assert guidance_for(card, 3.0) == 3.0


def test_a_unet_without_null_label_needs_a_class_in_every_call(imported_cond):
    from ddpm_deploy.runtime.backends import load_denoiser

    from ddpm_deploy.errors import UserError

    denoiser = load_denoiser("ort", imported_cond)
    x, t = np.zeros((1, *SHAPE), np.float32), np.array([5])
    assert denoiser(x, t, np.array([3])).shape == (1, *SHAPE)
    with pytest.raises(UserError, match="no null label"):
        denoiser(x, t)
