"""`sample` as a user meets it: seeds per image, chunks, npz, all-or-nothing outputs, model names."""

import json

import numpy as np
import pytest

from tests.helpers import run_cli


def _run(model, out, *args):
    result = run_cli("sample", "--model", model, "--out", out, "--sampler", "ddpm", "--steps", "4",
                     "--save", "npz", *args)  # fmt: skip
    assert result.exit_code == 0, result.output
    return np.load(out / "samples.npz")["images"]


def test_image_i_is_the_same_at_any_n_and_batch(random_onnx, tmp_path):
    sixteen = _run(random_onnx, tmp_path / "a", "-n", "16")
    thirty_seven = _run(random_onnx, tmp_path / "b", "-n", "37")
    chunked = _run(random_onnx, tmp_path / "c", "-n", "16", "--batch", "10")
    assert sixteen.shape == (16, 28, 28) and thirty_seven.shape == (37, 28, 28)
    np.testing.assert_array_equal(sixteen[5], thirty_seven[5])
    np.testing.assert_array_equal(sixteen, chunked)
    np.testing.assert_array_equal(sixteen, thirty_seven[:16])


def test_guided_classes_are_the_same_at_any_batch(random_cond_onnx, tmp_path):
    whole = _run(random_cond_onnx, tmp_path / "a", "-n", "3", "--class", "all", "--guidance", "2")
    chunked = _run(random_cond_onnx, tmp_path / "b", "-n", "3", "--class", "all", "--guidance",
                   "2", "--batch", "4")  # fmt: skip
    np.testing.assert_array_equal(whole, chunked)
    labels = np.load(tmp_path / "a" / "samples.npz")["labels"]
    assert labels.tolist() == [c for c in range(10) for _ in range(3)]


def test_save_float_keeps_the_raw_samples(random_onnx, tmp_path):
    run_cli("sample", "--model", random_onnx, "--out", tmp_path, "--sampler", "ddim", "--steps",
            "2", "-n", "3", "--save", "npz", "--save-float")  # fmt: skip
    data = np.load(tmp_path / "samples.npz")
    assert data["samples"].dtype == np.float32 and data["samples"].shape == (3, 1, 28, 28)
    from ddpm_deploy.images import to_uint8

    np.testing.assert_array_equal(to_uint8(data["samples"])[:, 0], data["images"])
    assert json.loads((tmp_path / "run.json").read_text())["outputs"][-1] == "samples.npz"


@pytest.mark.parametrize(
    "args", [["--steps", "1"], ["--frames", "1"], ["--steps", "1", "--frames", "1"]]
)
def test_one_step_or_one_frame_writes_every_output(random_onnx, tmp_path, args):
    result = run_cli("sample", "--model", random_onnx, "--out", tmp_path, "--sampler", "ddim",
                     "-n", "2", *(["--steps", "3"] if "--steps" not in args else []), *args)  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("samples.png", "sampling.gif", "run.json"):
        assert (tmp_path / name).stat().st_size > 0


def test_a_failed_run_leaves_the_previous_run_intact(random_onnx, tmp_path, monkeypatch):
    ok = run_cli("sample", "--model", random_onnx, "--out", tmp_path, "--sampler", "ddim",
                 "--steps", "2", "-n", "2")  # fmt: skip
    assert ok.exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    import ddpm_deploy.runtime.pipeline as pipeline

    def broken_gif(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(pipeline, "save_gif", broken_gif)
    with pytest.raises(OSError, match="disk full"):
        run_cli("sample", "--model", random_onnx, "--out", tmp_path, "--sampler", "ddim",
                "--steps", "3", "-n", "4")  # fmt: skip
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # no new samples.png beside the old run.json, no staging folder left


def test_a_folder_named_like_a_shipped_model_does_not_shadow_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fashion_mnist").mkdir()
    (tmp_path / "fashion_mnist" / "notes.txt").write_text("a user's own folder")
    result = run_cli("sample", "--model", "fashion_mnist", "--sampler", "ddim", "--steps", "2",
                     "-n", "1", "--out", tmp_path / "out")  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["model"].endswith("ddpm_deploy/models/fashion_mnist.onnx")


def test_random_classes_are_recorded_and_batch_invariant(random_cond_onnx, tmp_path):
    whole = _run(random_cond_onnx, tmp_path / "a", "-n", "6", "--class", "random")
    chunked = _run(random_cond_onnx, tmp_path / "b", "-n", "6", "--class", "random", "--batch", "4")
    np.testing.assert_array_equal(whole, chunked)
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["class"] == "random" and record["n"] == 6
    labels = np.load(tmp_path / "a" / "samples.npz")["labels"]
    assert labels.shape == (6,) and labels.max() < 10


def test_shipped_emoji_model_draws_colour_images_of_its_classes(tmp_path):
    """`--model emoji`: a 3 x 32 x 32 folder model shipped in the package, with its card's classes."""
    from ddpm_deploy.onnx_model import read_card
    from ddpm_deploy.shipped import resolve_model

    card = read_card(resolve_model("emoji"))
    assert card["dataset"] == "folder" and card["image"]["shape"] == [3, 32, 32]
    assert card["data"]["files"] == 3781 and len(card["classes"]) == 9
    images = _run("emoji", tmp_path, "-n", "1", "--class", "smileys_emotion")
    assert images.shape == (1, 32, 32, 3)
    assert (
        np.abs(images[0].astype(int) - images[0].mean(axis=-1, keepdims=True)).max() > 20
    )  # colour
