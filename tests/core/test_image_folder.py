"""`train --dataset folder`: reading a folder of images, and every bad input as one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ddpm_deploy.cli import main
from ddpm_deploy.errors import UserError
from ddpm_deploy.image_folder import FolderSpec, parse_background, read_folder


def _png(path: Path, rgba=(255, 0, 0, 255), size=(8, 8), mode="RGBA") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, rgba if mode == "RGBA" else rgba[0]).save(path)
    return path


def _classes(root: Path, size=(8, 8)) -> Path:
    _png(root / "cats" / "a.png", (255, 0, 0, 255), size)
    _png(root / "cats" / "b.png", (0, 0, 255, 0), size)  # fully transparent: the background
    _png(root / "dogs" / "c.png", (0, 255, 0, 128), size)  # half transparent green
    return root


def test_class_folders_labels_background_and_card_info(tmp_path):
    root = _classes(tmp_path / "imgs")
    data = read_folder(FolderSpec(str(root), background=(0, 0, 0)))
    assert data.classes == ["cats", "dogs"]
    assert data.labels.tolist() == [0, 0, 1]
    assert data.images.shape == (3, 3, 8, 8) and data.images.dtype == np.uint8
    assert data.images[0, :, 0, 0].tolist() == [255, 0, 0]
    assert data.images[1, :, 0, 0].tolist() == [0, 0, 0]  # composited on black, not blue
    assert data.images[2, :, 0, 0].tolist() == [0, 128, 0]  # alpha 128 over black
    white = read_folder(FolderSpec(str(root), background=(255, 255, 255)))
    assert white.images[1, :, 0, 0].tolist() == [255, 255, 255]
    assert white.info["sha256"] == data.info["sha256"]  # the files, not the reading
    assert data.info["layout"] == "class-folders" and data.info["files"] == 3


def test_resize_grey_and_flat_folder(tmp_path):
    _png(tmp_path / "x.png", size=(16, 16))
    _png(tmp_path / "y.png", size=(12, 12))
    data = read_folder(FolderSpec(str(tmp_path), size=8, channels=1))
    assert data.images.shape == (2, 1, 8, 8) and data.classes == []
    assert data.info["layout"] == "flat"


def test_hash_changes_with_contents(tmp_path):
    root = _classes(tmp_path / "imgs")
    before = read_folder(FolderSpec(str(root))).info["sha256"]
    _png(root / "dogs" / "c.png", (0, 255, 1, 128))
    assert read_folder(FolderSpec(str(root))).info["sha256"] != before


@pytest.mark.parametrize("text,rgb", [("white", (255, 255, 255)), ("#102030", (16, 32, 48)),
                                      ("1,2,3", (1, 2, 3))])  # fmt: skip
def test_parse_background(text, rgb):
    assert parse_background(text) == rgb


def test_bad_background_is_one_line():
    with pytest.raises(UserError, match="is not a colour"):
        parse_background("purple-ish")


def _train(args: list[str]):
    return CliRunner().invoke(main, ["train", "--dataset", "folder", "--epochs", "1", *args])


def _one_line(result, pattern: str, out: Path | None = None) -> None:
    """One line naming ``pattern``; and "nothing written" means no --out folder either."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and pattern in lines[0], result.output
    if out is not None:
        assert not out.exists(), f"a refused run left {out}"


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    r = _train(["--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
    _one_line(r, "holds no .png/.jpg/.jpeg images")
    assert not (tmp_path / "run" / "best.safetensors").exists()


def test_truncated_file(tmp_path):
    root = _classes(tmp_path / "imgs")
    bad = root / "dogs" / "broken.png"
    bad.write_bytes((root / "cats" / "a.png").read_bytes()[:40])
    _one_line(
        _train(["--data-root", str(root), "--out", str(tmp_path / "run")]),
        "broken.png",
        tmp_path / "run",
    )


def test_mixed_sizes_need_image_size(tmp_path):
    root = _classes(tmp_path / "imgs")
    _png(root / "dogs" / "big.png", size=(16, 16))
    r = _train(["--data-root", str(root), "--out", str(tmp_path / "run")])
    _one_line(r, "mixed sizes", tmp_path / "run")
    assert "--image-size" in r.output


def test_cond_needs_two_classes(tmp_path):
    _png(tmp_path / "flat" / "a.png")
    r = _train(["--data-root", str(tmp_path / "flat"), "--cond", "--out", str(tmp_path / "run")])
    _one_line(r, "--cond needs at least 2 classes")


def test_folder_options_refused_for_idx_datasets(tmp_path):
    r = CliRunner().invoke(main, ["train", "--dataset", "mnist", "--image-size", "32"])
    _one_line(r, "--image-size and --channels apply to --dataset folder")


def test_reference_arch_refuses_other_shapes(tmp_path):
    root = _classes(tmp_path / "imgs")
    r = _train(["--data-root", str(root), "--arch", "reference", "--out", str(tmp_path / "run")])
    _one_line(r, "takes 1 x 28 x 28 images only")


def test_train_rgb_folder_writes_card(tmp_path):
    root = _classes(tmp_path / "imgs", size=(12, 12))
    out = tmp_path / "run"
    r = _train(["--data-root", str(root), "--image-size", "8", "--cond", "--base", "8",
                "--background", "black", "--out", str(out), "--batch-size", "2"])  # fmt: skip
    assert r.exit_code == 0, r.output
    card = json.loads((out / "card.json").read_text())
    assert card["image"]["shape"] == [3, 8, 8]
    assert card["dataset"] == "folder" and card["classes"] == ["cats", "dogs"]
    assert card["arch"]["num_classes"] == 2 and card["arch"]["channels"] == 3
    assert card["data"]["background"] == [0, 0, 0] and card["data"]["size"] == 8


@pytest.fixture(scope="module")
def folder_model(tmp_path_factory):
    """A tiny colour model trained one epoch on a two-class folder of 8 x 8 images, exported."""
    tmp = tmp_path_factory.mktemp("folder_model")
    rng = np.random.default_rng(0)
    for cls, base in (("reds", (200, 40, 40)), ("blues", (40, 40, 200))):
        for i in range(70):
            pixels = np.clip(rng.normal(base, 30, (8, 8, 3)), 0, 255).astype(np.uint8)
            (tmp / "imgs" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(tmp / "imgs" / cls / f"{i}.png")
    out = tmp / "run"
    r = _train(["--data-root", str(tmp / "imgs"), "--cond", "--base", "8", "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        main, ["export", str(out / "best.safetensors"), "-o", str(tmp / "m.onnx")]
    )
    assert r.exit_code == 0, r.output
    return tmp


def test_evaluate_folder_model_without_a_classifier(folder_model):
    from ddpm_deploy.runtime.evaluate import EvalRequest, evaluate, summary

    req = EvalRequest(model=str(folder_model / "m.onnx"), n=70, batch=70, two_sample=False,
                      data_root=str(folder_model / "imgs"), progress=False)  # fmt: skip
    r = evaluate(req)
    assert r["dataset"] == "folder" and r["features"] == "pixel PCA-64"
    assert r["n_real"] == 70 and r["real"]["n"] == 70  # the folder's two halves
    assert 0.0 <= r["precision"] <= 1.0 and 0.0 <= r["real"]["recall"] <= 1.0
    assert r["real"]["fd_pixel_pca"] < r["fd_pixel_pca"]  # one epoch is far from the data
    assert "fd" not in r and r["classifier"] is None  # no classifier report, only the request
    assert "judged in pixel space" in summary(r) and "skipped: --no-two-sample" in summary(r)


def test_evaluate_refuses_another_folder(folder_model, tmp_path):
    other = tmp_path / "other"
    for f in (folder_model / "imgs").rglob("*.png"):
        (other / f.parent.name).mkdir(parents=True, exist_ok=True)
        (other / f.parent.name / f.name).write_bytes(f.read_bytes())
    next(other.rglob("*.png")).unlink()
    r = CliRunner().invoke(main, ["evaluate", "--model", str(folder_model / "m.onnx"), "-n", "70",
                                  "--data-root", str(other), "--no-two-sample"])  # fmt: skip
    _one_line(r, "holds other images than the model was trained on")
    r = CliRunner().invoke(main, ["evaluate", "--model", str(folder_model / "m.onnx"), "-n", "70",
                                  "--classifier", "x.onnx", "--data-root", str(other)])  # fmt: skip
    _one_line(r, "judged without a domain classifier")


def _modes(root: Path) -> dict[str, float]:
    """One 16 x 16 image per Pillow mode, each a left-to-right ramp; name -> its true mean in 0..1."""
    ramp = np.tile(np.linspace(0.0, 1.0, 16), (16, 1))
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(ramp * 65535).astype(np.uint16)).save(root / "i16.png")  # I;16
    Image.fromarray(np.round(ramp * 255).astype(np.uint8)).convert("P").save(root / "p.png")
    la = np.stack([np.round(ramp * 255), np.full((16, 16), 255.0)], -1).astype(np.uint8)
    Image.fromarray(la, "LA").save(root / "la.png")
    grey = Image.fromarray(np.round(ramp * 255).astype(np.uint8))
    grey.convert("CMYK").save(root / "cmyk.jpg", quality=100)
    return {"i16.png": 0.5, "p.png": 0.5, "la.png": 0.5, "cmyk.jpg": 0.5}


def test_every_image_mode_is_read_to_its_true_values(tmp_path):
    """A 16-bit PNG is scaled from 0..65535, not clipped at 255 (99.6% of its pixels were), and
    palette, LA and CMYK images keep their values."""
    modes = _modes(tmp_path / "m")
    for name, mean in modes.items():
        one = tmp_path / name.replace(".", "_")
        one.mkdir()
        (one / name).write_bytes((tmp_path / "m" / name).read_bytes())
        got = read_folder(FolderSpec(str(one), channels=1)).images[0, 0] / 255.0
        assert abs(got.mean() - mean) < 0.02, (name, got.mean())
        assert (got == 1.0).mean() < 0.2, name  # not clipped to white
        np.testing.assert_allclose(got[0], np.linspace(0, 1, 16), atol=0.03, err_msg=name)


def test_a_float_or_out_of_range_image_is_refused_by_name(tmp_path):
    Image.fromarray(np.full((8, 8), 70000, np.int32), "I").save(tmp_path / "a.tif")
    import ddpm_deploy.image_folder as folder

    with pytest.raises(
        UserError, match=r"a\.tif is a 16-bit image \(I\) with values outside 0\.\.65535"
    ):
        folder._open(tmp_path / "a.tif", FolderSpec(str(tmp_path)))
    Image.fromarray(np.full((8, 8), 2.5, np.float32), "F").save(tmp_path / "f.tif")
    with pytest.raises(
        UserError, match=r"f\.tif is a float image \(F\) with values outside 0\.\.1"
    ):
        folder._open(tmp_path / "f.tif", FolderSpec(str(tmp_path)))
    Image.fromarray(np.full((8, 8), 0.5, np.float32), "F").save(tmp_path / "g.tif")
    assert np.asarray(folder._open(tmp_path / "g.tif", FolderSpec(str(tmp_path)))).max() == 128


def test_a_huge_image_is_refused_from_its_header(tmp_path, monkeypatch):
    """The pixel cap is checked before decoding (a small file can declare 10,000 x 10,000)."""
    import ddpm_deploy.image_folder as folder

    root = _classes(tmp_path / "imgs")
    _png(root / "dogs" / "huge.png", size=(64, 64))
    monkeypatch.setattr(folder, "MAX_PIXELS", 32 * 32)
    decoded = []
    monkeypatch.setattr(folder, "_eight_bit", lambda img, path: decoded.append(path.name) or img)
    with pytest.raises(UserError, match="huge.png is 64x64 pixels, more than the 1,024"):
        read_folder(FolderSpec(str(root)))
    assert "huge.png" not in decoded


@pytest.mark.parametrize("where", ["same", "inside", "holding"])
def test_out_may_not_overlap_the_image_folder(tmp_path, where):
    """Writing a run into (or around) the image folder would make its PNGs training data."""
    root = _classes(tmp_path / "imgs")
    out = {"same": root, "inside": root / "run", "holding": tmp_path}[where]
    before = sorted(p.name for p in root.rglob("*"))
    _one_line(_train(["--data-root", str(root), "--out", str(out)]), "overlap")
    assert sorted(p.name for p in root.rglob("*")) == before


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--arch", "reference"], "reference"),
        (["--image-size", "30"], "30"),
        (["--cond"], "--cond needs at least 2 classes"),
    ],
)
def test_refusals_after_the_data_is_read_leave_no_out_folder(tmp_path, args, fragment):
    """'Nothing written' means no --out folder either, also for refusals that need the data."""
    flat = tmp_path / "flat"
    for i in range(2):
        _png(flat / f"{i}.png", size=(8, 8))
    out = tmp_path / "run"
    r = _train(["--data-root", str(flat), "--out", str(out), *args])
    assert r.exit_code != 0 and "Traceback" not in r.output and fragment in r.output, r.output
    assert not out.exists()
