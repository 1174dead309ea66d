"""What the last probe campaign found in sampling's arguments (issue 35): a bound checked before a
multiplication, the Python API's types and bounds as the CLI's, and options a model's own sampler
does not take refused in one line instead of ignored (run.json recorded what did not run)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import ddpm_deploy
from tests.helpers import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def mnist():
    return ddpm_deploy.load("mnist")


@pytest.fixture(scope="module")
def sampler_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("graph") / "s.onnx"
    made = run_cli("export-sampler", "mnist", "--steps", "3", "-o", path)
    assert made.exit_code == 0, made.output
    return path


def test_class_all_counts_every_class_against_the_bound(tmp_path, mnist):
    args = [
        "sample",
        "--model",
        "emoji",
        "--class",
        "all",
        "-n",
        "1000000",
        "--out",
        tmp_path / "o",
    ]
    assert_one_line_error(run_cli(*args), "--class all makes", "at most 1,000,000", "lower -n")
    assert not (tmp_path / "o").exists()
    with pytest.raises(ddpm_deploy.UserError, match="10,000,000 in all"):
        mnist.sample(1_000_000, classes="all")


@pytest.mark.parametrize("batch", ["99999999999999999999", "20000", "0", "1,16,10001"])
def test_bench_batch_sizes_are_bounded(batch):
    result = run_cli("bench", "--batch", batch, "--steps", "2", "--rounds", "1")
    assert_one_line_error(result, "--batch sizes must be between 1 and 10,000")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"clip": "no"}, "clip must be True or False, got 'no'"),
        ({"steps": True}, "steps must be an integer, got True"),
        ({"eta": 5, "sampler": "ddim", "steps": 4}, "--eta must be between 0 and 1, got 5"),
        ({"eta": float("nan"), "sampler": "ddim", "steps": 4}, "--eta must be between 0 and 1"),
        ({"analytic": 1.5}, "--analytic must be an integer >= 0, got 1.5"),
    ],
)
def test_the_api_checks_types_and_bounds_as_the_cli_does(mnist, kwargs, message):
    with pytest.raises(ddpm_deploy.UserError, match=message.replace("(", r"\(")):
        mnist.sample(1, **kwargs)


@pytest.mark.parametrize("n", ["3", 2.0, True])
def test_the_api_refuses_a_count_that_is_no_integer(mnist, n):
    with pytest.raises(ddpm_deploy.UserError, match="n must be an integer"):
        mnist.sample(n)


@pytest.mark.parametrize("threads", [10**9, 0, 1.5, True])
def test_the_api_bounds_threads(threads):
    with pytest.raises(ddpm_deploy.UserError, match="--threads must be an integer between 1 and"):
        ddpm_deploy.load("mnist", threads=threads)


@pytest.mark.parametrize("option", [["--no-clip"], ["--eta", "0.5"]])
def test_the_models_own_sampler_refuses_what_it_does_not_take(tmp_path, option):
    result = run_cli("sample", "--model", "mnist", "-n", "1", "--out", tmp_path / "o", *option)
    assert_one_line_error(result, option[0], "the model's own sampler", "add --sampler or --steps")


def test_another_sampler_takes_them(tmp_path):
    out = tmp_path / "o"
    args = ["--sampler", "ddim", "--steps", "6", "--eta", "0.5", "--no-clip"]
    result = run_cli("sample", "--model", "mnist", "-n", "1", "--out", out, *args)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    assert (record["clip"], record["eta"]) == (False, 0.5)


@pytest.mark.parametrize("option", [["--no-clip"], ["--eta", "0.5"], ["--variance", "posterior"]])
def test_a_sampler_file_refuses_what_it_fixed(tmp_path, sampler_file, option):
    result = run_cli("sample", "--model", sampler_file, "-n", "1", "--out", tmp_path / "o", *option)
    assert_one_line_error(result, option[0], "holds its whole sampler", "drop the sampler options")


@pytest.mark.parametrize("where, key", [("arch", "embedding"), ("image", "range")])
def test_export_of_a_card_without_its_optional_fields(tmp_path, where, key):
    """Both are optional in the schema; export read them as required (a KeyError traceback)."""
    pytest.importorskip("torch")
    from ddpm_deploy.train.checkpoint import save_checkpoint

    from ddpm_deploy.card import make_card
    from ddpm_deploy.schedule import Schedule
    from tests.helpers import tiny_resunet

    model = tiny_resunet(1, 28, 10)
    card = make_card(arch=model.config.to_dict(), schedule=Schedule(), dataset="mnist")
    del card[where][key]
    save_checkpoint(tmp_path / "c.safetensors", card, model.state_dict())
    args = ["export", tmp_path / "c.safetensors", "-o", tmp_path / "c.onnx", "--no-verify"]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.onnx").is_file()


@pytest.mark.parametrize("command", ["quantize", "learn-sampler"])
def test_commands_on_the_denoiser_refuse_a_sampler_file(tmp_path, sampler_file, command):
    """quantize ended in KeyError: 'x', learn-sampler in a ValueError from ONNX Runtime."""
    args = [command, sampler_file, "-o", tmp_path / "x.onnx"]
    if command == "learn-sampler":
        args += ["--data-root", tmp_path]  # the refusal must come before the data is needed
    result = run_cli(*args)
    assert_one_line_error(result, "holds its whole sampler", f"{command} works on the denoiser")
    assert not (tmp_path / "x.onnx").exists()


def test_triton_repo_writes_through_a_link_to_an_empty_folder(tmp_path):
    """As every --out: the folder the link names is written (it said "Not a directory")."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    result = run_cli("triton-repo", "mnist", "-o", tmp_path / "link")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "real" / "ddpm_denoiser" / "config.pbtxt").is_file()


def test_triton_repo_refuses_a_link_to_nothing(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    result = run_cli("triton-repo", "mnist", "-o", tmp_path / "link")
    assert_one_line_error(result, "is a link to", "which does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link"]


def test_quantize_bounds_its_calibration_rows(tmp_path):
    """10,000 x 4,096 rows (each bound alone allows it) was refused as "-n must be ...", an option
    quantize does not have; on the forward path it would have collected 128 GB."""
    args = ["--calibration-batches", "10000", "--calibration-batch", "4096"]
    result = run_cli("quantize", "mnist", "-o", tmp_path / "q.onnx", *args)
    assert_one_line_error(result, "= 40,960,000 rows; at most 65,536", "lower either")


def test_a_long_output_name_is_written(tmp_path, mnist_root):
    """A legal 240-character name was refused: its temporary sibling's name passed NAME_MAX."""
    out = tmp_path / ("y" * 240 + ".png")
    args = ["--dataset", "mnist", "-n", "1", "--data-root", mnist_root, "--out", out]
    result = run_cli("forward", *args)
    assert result.exit_code == 0, result.output
    assert out.is_file() and [p.name for p in tmp_path.iterdir()] == [out.name]


def test_forward_writes_a_png_under_a_png_name_only(tmp_path):
    result = run_cli("forward", "--dataset", "mnist", "--out", tmp_path / "x.jpg")
    assert_one_line_error(result, "forward writes a PNG; give it a .png name")
    assert list(tmp_path.iterdir()) == []


def test_dot_onnx_alone_is_named_as_the_form_expected(tmp_path):
    result = run_cli("export-sampler", "mnist", "-o", tmp_path / ".onnx")
    assert_one_line_error(result, "must end in .onnx, as in model.onnx")


@pytest.mark.parametrize("command", ["sample", "export-sampler"])
def test_guidance_on_an_unconditional_model_is_refused_not_ignored(tmp_path, command):
    """sample ignored it (run.json said null); export-sampler wrote "guidance 3.0" in the card."""
    args = ["--model", "mnist_reference", "--out", tmp_path / "o"]
    if command == "export-sampler":
        args = ["mnist_reference", "-o", tmp_path / "g.onnx"]
    result = run_cli(command, *args, "--guidance", "3")
    assert_one_line_error(result, "--guidance 3: this mnist model is unconditional")
    assert list(tmp_path.iterdir()) == []


def test_bench_refuses_an_fp32_model_as_its_int8_row():
    from ddpm_deploy.shipped import resolve_model

    args = ["--backend", "ort:int8", "--int8-model", resolve_model("mnist"), "--steps", "2"]
    result = run_cli("bench", *args, "--batch", "1", "--rounds", "1")
    assert_one_line_error(result, "is a fp32 model; pass the QDQ file")


def test_export_refuses_engine_options_without_an_engine(tmp_path, trained_checkpoint):
    out = tmp_path / "x.onnx"
    args = ["export", trained_checkpoint, "--no-verify", "-o", out, "--max-batch", "10"]
    assert_one_line_error(run_cli(*args), "--max-batch shapes the engine --fp16 builds")
    bad = run_cli(*args, "--min-batch", "50", "--fp16")  # refused before the export
    assert_one_line_error(bad, "batch profile needs 1 <= min <= opt <= max")
    assert not out.exists()


def test_a_folder_or_a_checkpoint_as_an_onnx_model_says_what_it_is(tmp_path, trained_checkpoint):
    """Both were "not a loadable ONNX model (Protobuf parsing failed)"."""
    cases = {
        tmp_path: "is a folder, not an ONNX file",
        trained_checkpoint: "is a training checkpoint",
    }
    for model, fragment in cases.items():
        result = run_cli("sample", "--model", model, "-n", "1", "--out", tmp_path / "o")
        assert_one_line_error(result, fragment, "--backend torch")


@pytest.mark.parametrize("model", ["mnist", "mnist_reference"])
@pytest.mark.parametrize("w", ["2", True, [2]])
def test_the_api_checks_the_guidance_type(model, w):
    """ "2" failed in a format string (unconditional) or in np.isfinite (conditional)."""
    with pytest.raises(ddpm_deploy.UserError, match="--guidance must be a finite number"):
        ddpm_deploy.load(model).sample(1, guidance=w)


@pytest.mark.parametrize(
    "option, fragment",
    [
        (["--variance", "posterior"], "--variance posterior is DDPM's; dpm++2m has none"),
        (["--eta", "0.5", "--steps", "3"], "--eta 0.5 is DDIM's noise; dpm++2m takes none"),
    ],
)
def test_an_option_the_sampler_ignores_is_refused(tmp_path, option, fragment):
    """Both ran with no effect while run.json recorded them."""
    result = run_cli("sample", "--model", "mnist", "-n", "1", "--out", tmp_path / "o", *option)
    assert_one_line_error(result, fragment)


def test_the_api_takes_numpy_bools_and_refuses_no_count(mnist):
    images, _ = mnist.sample(1, steps=3, clip=np.bool_(False))
    assert images.shape == (1, 28, 28)
    with pytest.raises(ddpm_deploy.UserError, match="n must be an integer, got None"):
        mnist.sample(None)


def test_triton_repo_makes_missing_parents_with_the_usual_mode(tmp_path):
    """A missing parent was a FileNotFoundError traceback; the repository came back 0700 (mkdtemp),
    unreadable to a Triton server running as another user."""
    out = tmp_path / "nope" / "x" / "repo"
    result = run_cli("triton-repo", "mnist", "-o", out)
    assert result.exit_code == 0, result.output
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
