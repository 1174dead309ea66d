"""The image shape comes from the model card everywhere: a tiny random 3x32x32 model (and a 1x28x28
one, `shaped_model` in conftest.py) through export with parity, every CPU backend, every sampler with
guidance, serve's rows and repository, FLOPs, and the pictures, which come out in colour."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import onnx
import pytest
from ddpm_deploy.runtime.backends import load_denoiser
from ddpm_deploy.runtime.guidance import Guided
from ddpm_deploy.runtime.samplers import SAMPLERS, sample

from ddpm_deploy.card import CARD_KEY, image_shape
from ddpm_deploy.errors import UserError
from ddpm_deploy.onnx_model import read_card
from tests.helpers import assert_one_line_error, run_cli


def _inputs(shape, n=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape), dtype=np.float32)
    return x, np.array([0, 500, 999][:n], np.int64), np.arange(n, dtype=np.int64)


def _with_card(src, dst, **changes):
    """A copy of an ONNX file whose card has ``changes`` (e.g. another image section)."""
    proto = onnx.load(str(src))
    prop = next(p for p in proto.metadata_props if p.key == CARD_KEY)
    prop.value = json.dumps({**json.loads(prop.value), **changes})
    onnx.save(proto, str(dst))
    return dst


def test_export_with_parity_in_the_cards_shape(shaped_model):
    assert len(shaped_model.cases) == 12 and all(c.ok for c in shaped_model.cases)
    card = read_card(shaped_model.onnx)
    assert image_shape(card) == shaped_model.shape
    x = onnx.load(str(shaped_model.onnx)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in x[1:]] == list(shaped_model.shape)


def test_a_graph_unlike_its_card_is_one_line_naming_the_cards_shape(shaped_model, tmp_path):
    """A self-consistent card (image shape and architecture agree) on a graph of another shape."""
    other = [1, 28, 28] if shaped_model.shape != (1, 28, 28) else [3, 32, 32]
    arch = {**read_card(shaped_model.onnx)["arch"], "channels": other[0], "image_size": other[1]}
    bad = _with_card(shaped_model.onnx, tmp_path / "bad.onnx", image={"shape": other}, arch=arch)
    want = ",".join(map(str, other))
    with pytest.raises(UserError, match=rf"takes x: float32\[N,{want}\].*eps: float32\[N,{want}\]"):
        read_card(bad)


def test_a_card_unlike_its_own_architecture_is_one_line(shaped_model, tmp_path):
    other = [1, 28, 28] if shaped_model.shape != (1, 28, 28) else [3, 32, 32]
    bad = _with_card(shaped_model.onnx, tmp_path / "bad.onnx", image={"shape": other})
    with pytest.raises(UserError, match=r"image shape .* differs from the architecture's"):
        read_card(bad)


@pytest.mark.parametrize("backend", ["ort", "openvino", "torch"])
def test_every_cpu_backend_runs_the_shape(shaped_model, backend):
    path = shaped_model.checkpoint if backend == "torch" else shaped_model.onnx
    den = load_denoiser(backend, path)
    assert den.image_shape == shaped_model.shape
    x, t, y = _inputs(shaped_model.shape)
    eps = den(x, t, y)
    assert eps.shape == x.shape and eps.dtype == np.float32
    reference = load_denoiser("ort", shaped_model.onnx)(x, t, y)
    np.testing.assert_allclose(eps, reference, atol=1e-4)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_with_guidance_takes_the_shape_from_the_card(shaped_model, sampler):
    den = load_denoiser("ort", shaped_model.onnx)
    guided = Guided(den, np.array([0, 1], np.int64), 2.0)
    x = sample(guided, den.schedule, 2, np.random.default_rng(0), sampler=sampler, steps=3)
    assert x.shape == (2, *shaped_model.shape) and np.isfinite(x).all()


def _colourful(picture: np.ndarray) -> bool:
    """Some pixel whose channels differ."""
    return picture.ndim == 3 and bool((picture.max(axis=-1) != picture.min(axis=-1)).any())


def test_sample_writes_pictures_in_the_models_colours(shaped_model, tmp_path):
    out = tmp_path / "out"
    result = run_cli("sample", "--model", shaped_model.onnx, "-n", "4", "--steps", "3",
                     "--frames", "2", "--save", "npz", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    c, h, w = shaped_model.shape
    png, gif = iio.imread(out / "samples.png"), iio.imread(out / "sampling.gif", index=None)
    images = np.load(out / "samples.npz")["images"]
    if c == 3:
        assert _colourful(png[..., :3]) and _colourful(gif[-1][..., :3])
        assert images.shape == (4, h, w, 3)
    else:
        assert png.ndim == 2 and images.shape == (4, h, w)
    assert len(gif) == 2


def test_serve_rows_give_the_local_images_and_check_xs_shape(shaped_model):
    from ddpm_deploy.serve.rows import DenoiserService, SampleService

    den = load_denoiser("ort", shaped_model.onnx)
    rows = {"seed": np.zeros((2, 1), np.int64), "index": np.array([[0], [1]]),
            "class": np.array([[0], [1]]), "steps": np.full((2, 1), 3, np.int32)}  # fmt: skip
    (served,) = SampleService(den).run([rows])
    assert served["image"].shape == (2, *shaped_model.shape)
    x, t, y = _inputs(shaped_model.shape)
    good = {"x": x, "t": t[:, None], "y": y[:, None]}
    bad = {**good, "x": np.zeros((3, 2, 8, 8), np.float32)}
    ok, refused = DenoiserService(den).run([good, bad])
    np.testing.assert_array_equal(ok["eps"], den(x, t, y))
    assert "x must be N x " + " x ".join(map(str, shaped_model.shape)) in str(refused)


def test_the_triton_repositories_declare_the_cards_dims(shaped_model, tmp_path):
    from ddpm_deploy.serve.repository import (
        TritonRepoOptions,
        write_serve_repository,
        write_triton_repository,
    )

    card = read_card(shaped_model.onnx)
    write_serve_repository(tmp_path / "serve", card, str(shaped_model.onnx), "ort", {}, 8, 100)
    opts = TritonRepoOptions(str(shaped_model.onnx), str(tmp_path / "repo"), max_batch=8,
                             queue_delay_us=100, kind="cpu")  # fmt: skip
    write_triton_repository(tmp_path / "repo", card, shaped_model.onnx, opts)
    dims = f"dims: {list(shaped_model.shape)}"
    for model in ("serve/ddpm_sample", "serve/ddpm_denoiser", "repo/ddpm_denoiser"):
        assert (tmp_path / model / "config.pbtxt").read_text().count(dims) == 2  # in and out


def test_flops_are_counted_for_the_real_shape(shaped_model):
    from ddpm_deploy.runtime.flops import count_flops

    c, h, w = shaped_model.shape
    total = count_flops(shaped_model.onnx)["total"]
    # the first conv alone, 3x3 from C to the base width 8 at every pixel, is in the total
    assert total > 2 * h * w * 8 * c * 9


def test_evaluate_refuses_a_model_its_classifier_cannot_read(shaped_model, tmp_path):
    if shaped_model.shape == (1, 28, 28):
        pytest.skip("the shipped classifiers read 1x28x28 images: this model is judged by them")
    model = _with_card(shaped_model.onnx, tmp_path / "m.onnx", dataset="mnist")
    result = run_cli("evaluate", "--model", model, "-n", "200")
    assert_one_line_error(result, "makes 3x32x32 images", "reads 1x28x28 (mnist) images")
