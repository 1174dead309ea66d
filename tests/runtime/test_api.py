"""The Python API (runtime/api.py, `ddpm_deploy.load`): the images `ddpm-deploy sample` draws for
the same arguments, chunks with bounded memory, one exception type, a light `import ddpm_deploy`."""

import subprocess
import sys

import numpy as np
import pytest

import ddpm_deploy
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def model():
    return ddpm_deploy.load("fashion_mnist")


def cli_npz(tmp_path, *args):
    result = run_cli("sample", *args, "--out", tmp_path / "cli", "--save", "npz")
    assert result.exit_code == 0, result.output
    return np.load(tmp_path / "cli" / "samples.npz")


@pytest.mark.parametrize(
    "kwargs, args",
    [
        ({"seed": 3}, ["--seed", "3"]),
        ({"seed": 1, "classes": "sneaker", "guidance": 2.0}, ["--seed", "1", "--class", "sneaker", "--guidance", "2"]),
        ({"seed": 2, "classes": "all", "sampler": "ddim", "steps": 5}, ["--seed", "2", "--class", "all", "--sampler", "ddim", "--steps", "5"]),
    ],
)  # fmt: skip
def test_sample_draws_the_cli_s_images(model, tmp_path, kwargs, args):
    images, labels = model.sample(5, **kwargs)
    cli = cli_npz(tmp_path, "-n", "5", *args)
    np.testing.assert_array_equal(images, cli["images"])
    np.testing.assert_array_equal(labels, cli["labels"])
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)


def test_sample_iter_is_sample_in_bounded_chunks(model):
    whole, labels = model.sample(23, seed=4, batch=100)
    parts = list(model.sample_iter(23, seed=4, batch=10))
    assert [len(p[0]) for p in parts] == [10, 10, 3]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), whole)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), labels)


def test_what_the_file_says_about_itself(model):
    assert model.classes[7] == "Sneaker" and model.image_shape == (1, 28, 28)
    assert model.card["dataset"] == "fashion_mnist"
    own = model.sampler
    assert own["sampler"] == "dpm++2m" and own["analytic"] == 3 and own["network_calls"] == 4
    assert own["timesteps"][0] == 999 and not own["whole_graph"]


def test_an_unconditional_run_has_no_labels(model):
    images, labels = model.sample(2, seed=0, classes="none")
    assert labels is None and images.shape == (2, 28, 28)


def test_colour_images_are_channels_last():
    images, labels = ddpm_deploy.load("emoji").sample(2, seed=0, classes=3, steps=4)
    assert images.shape == (2, 32, 32, 3) and labels.tolist() == [3, 3]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.sample(0), "-n must be between 1"),
        (lambda m: m.sample(2, seed=-1), "seed must be an integer"),
        (lambda m: m.sample(2, classes="hat"), "unknown class 'hat'"),
        (lambda m: m.sample(2, sampler="nope"), "unknown sampler"),
        (lambda m: m.sample(2, stepz=4), "unknown sampler option(s) ['stepz']"),
        (lambda m: m.sample(2, batch=0), "batch must be a positive integer"),
        (lambda m: m.sample(2, guidance=-1.0), "--guidance must be"),
    ],
)
def test_errors_are_one_type_with_one_line(model, call, message):
    with pytest.raises(ddpm_deploy.UserError) as e:
        call(model)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_load_errors_are_user_errors(tmp_path):
    with pytest.raises(ddpm_deploy.UserError, match="no model file"):
        ddpm_deploy.load(tmp_path / "missing.onnx")
    with pytest.raises(ddpm_deploy.UserError, match="unknown backend"):
        ddpm_deploy.load(backend="nope")


def test_import_is_light_and_torch_free():
    """`import ddpm_deploy` loads neither numpy nor onnxruntime; load() then works without torch."""
    code = (
        "import sys, time; sys.modules['torch'] = None\n"
        "t = time.perf_counter(); import ddpm_deploy; t = time.perf_counter() - t\n"
        "heavy = sorted(m for m in ('numpy', 'onnxruntime', 'onnx') if m in sys.modules)\n"
        "images, _ = ddpm_deploy.load().sample(1)\n"
        "print(f'import {t * 1e3:.1f} ms, heavy {heavy}, images {images.shape}')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    print(proc.stdout)
    assert "heavy []" in proc.stdout and "images (1, 28, 28)" in proc.stdout
