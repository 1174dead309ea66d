"""No command writes over its own input (Hardening II): each refuses in one line before any work,
and the input is byte-identical afterwards. -o naming an existing folder is refused up front."""

from __future__ import annotations

import pytest

from tests.helpers import assert_one_line_error, run_cli


def test_quantize_refuses_its_own_input(random_cond_onnx, tmp_path):
    model = tmp_path / "fm.onnx"
    model.write_bytes(random_cond_onnx.read_bytes())
    before = model.read_bytes()
    result = run_cli("quantize", model, "-o", model)
    assert_one_line_error(result, "would overwrite the input")
    assert model.read_bytes() == before


@pytest.mark.parametrize("command", ["quantize", "learn-sampler"])
def test_an_existing_folder_as_output_is_refused_before_the_work(
    command, random_cond_onnx, tmp_path
):
    folder = tmp_path / "out.onnx"
    folder.mkdir()
    assert_one_line_error(run_cli(command, random_cond_onnx, "-o", folder), "is a directory")


def test_export_web_refuses_a_folder_holding_its_model(random_cond_onnx, tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(random_cond_onnx.read_bytes())
    before = model.read_bytes()
    result = run_cli("export-web", "--model", model, "-o", tmp_path, "--force")
    assert_one_line_error(result, "would overwrite the input")
    assert model.read_bytes() == before


def test_import_diffusers_refuses_a_checkpoint_over_its_weights(tmp_path):
    folder = tmp_path / "pipe"
    (folder / "unet").mkdir(parents=True)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"weights")
    result = run_cli("import-diffusers", folder, "-o", tmp_path / "m.onnx", "--checkpoint", weights)
    assert_one_line_error(result, "would overwrite the input")
    assert weights.read_bytes() == b"weights"
    result = run_cli("import-diffusers", folder, "-o", tmp_path)
    assert_one_line_error(result, "must end in .onnx")
