"""The commands a user runs, end to end on small inputs."""

import json

import imageio.v3 as iio
import pytest

from ddpm_deploy.cli import main
from tests.helpers import run_cli, write_idx


@pytest.mark.parametrize("command", ["train", "forward", "export", "sample"])
def test_help_shows_defaults(command):
    result = run_cli(command, "--help")
    assert result.exit_code == 0
    assert "[default:" in result.output


def test_every_command_is_listed():
    assert set(main.commands) >= {"train", "forward", "export", "sample"}


def test_forward_picture_from_real_data(data_root, tmp_path):
    out = tmp_path / "forward.png"
    result = run_cli("forward", "--data-root", data_root, "-n", "6", "--out", out)
    assert result.exit_code == 0, result.output
    img = iio.imread(out)
    assert img.shape == (5 * 30 + 2, 6 * 30 + 2)  # real row + 4 noise levels, 6 images each
    real_row, last_row = img[2:30], img[4 * 30 + 2 : 5 * 30]
    assert real_row.std() > 0 and last_row.std() > real_row.std() * 0.5


def test_train_export_sample_round_trip(tmp_path):
    data = write_idx(tmp_path / "data", n=128)
    run = tmp_path / "run"
    result = run_cli(
        "train", "--data-root", data, "--out", run, "--epochs", "1", "--batch-size", "64"
    )
    assert result.exit_code == 0, result.output
    assert {"best.safetensors", "last.safetensors", "card.json", "loss.csv", "loss.png"} <= {
        p.name for p in run.iterdir()
    }
    card = json.loads((run / "card.json").read_text())
    assert card["training"]["epochs_done"] == 1 and card["schedule"]["name"] == "linear"
    assert card["training"]["final_loss"] > 0 and "git_revision" in card["training"]

    onnx_path = tmp_path / "m.onnx"
    result = run_cli("export", run, "-o", onnx_path)
    assert result.exit_code == 0, result.output
    assert "batch 100" in result.output and "MISMATCH" not in result.output

    # an (almost) untrained model samples fine: noise in, noise out
    for backend, model in (("ort", onnx_path), ("torch", run)):
        out = tmp_path / backend
        result = run_cli(
            "sample",
            "--model",
            model,
            "--backend",
            backend,
            "--sampler",
            "ddim",
            "--steps",
            "4",
            "-n",
            "3",
            "--seed",
            "7",
            "--out",
            out,
        )
        assert result.exit_code == 0, result.output
        record = json.loads((out / "run.json").read_text())
        assert record["backend"] == backend and record["n"] == 3 and record["steps"] == 4
        assert len(record["model_sha256"]) == 64 and record["seconds"] > 0
        assert iio.imread(out / "samples.png").ndim == 2
        # one frame per step; the GIF writer merges frames that quantise to the same picture
        assert 2 <= len(iio.imread(out / "sampling.gif", index=None)) <= 4
