"""What the last probe campaign found in sampling's arguments (issue 35): a bound checked before a
multiplication, the Python API's types and bounds as the CLI's, and options a model's own sampler
does not take refused in one line instead of ignored (run.json recorded what did not run)."""

from __future__ import annotations

import json

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
