"""quantize's end-to-end gate: a broken int8 file is refused unwritten, --force writes it, and a
model judged against itself passes (tiny random models, CPU, under a minute)."""

import json

import numpy as np
import pytest

from tests.helpers import assert_one_line_error, run_cli, write_idx

# trains, exports, serves or drives a browser: outside the quick loop (`pytest -m "not slow"`)
pytestmark = pytest.mark.slow

GATE_N = "200"  # the smallest the gate takes: FD needs n > 128 features


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_idx(tmp_path_factory.mktemp("data") / "d", n=256)


def _corrupted_quantizer(src, dst, settings, feeds):
    """A quantizer gone wrong: every conv weight off by 50% of its spread."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    convs = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        if init.name in convs:
            w = numpy_helper.to_array(init)
            noisy = w + 0.5 * w.std() * rng.standard_normal(w.shape).astype(w.dtype)
            init.CopyFrom(numpy_helper.from_array(noisy, init.name))
    onnx.save(model, str(dst))


def test_a_model_against_itself_passes_the_gate(random_cond_onnx):
    from ddpm_deploy.export.quantize_gate import gate

    report = gate(random_cond_onnx, random_cond_onnx, "fashion_mnist", n=200)
    assert report.passed, str(report)
    m = report.metrics
    assert m["precision"] == m["recall"] == 1.0 and m["fd"] < 1e-6 and m["fd_pixel_pca"] < 1e-6
    assert "gate: passed" in str(report) and report.to_dict()["passed"]


def test_a_broken_quantization_is_refused_unwritten_and_force_writes_it(
    random_cond_onnx, tiny_data, tmp_path, monkeypatch
):
    from ddpm_deploy.export import quantize

    from ddpm_deploy.onnx_model import read_card

    monkeypatch.setattr(quantize, "quantize_file", _corrupted_quantizer)
    out = tmp_path / "m.int8.onnx"
    args = ["quantize", random_cond_onnx, "-o", out, "--data-root", tiny_data,
            "--calibration-batches", "2", "--calibration-batch", "8", "--setting", "convs",
            "--gate-n", GATE_N]  # fmt: skip
    refused = run_cli(*args)
    assert_one_line_error(
        refused, "failed the end-to-end gate", "two_sample_auc", "nothing was written"
    )
    assert "MISSED by" in refused.output and "gate: FAILED" in refused.output
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one

    forced = run_cli(*args, "--force", "--json")
    assert forced.exit_code == 0, forced.output
    report = json.loads(forced.stdout)
    assert report["written"] and not report["gate"]["passed"]
    auc = report["gate"]["metrics"]["two_sample_auc"]
    assert auc["missed_by"] == pytest.approx(auc["value"] - auc["bound"])
    assert read_card(out)["int8_gate"]["passed"] is False  # the file says it failed
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--setting", "nope"], "unknown --setting 'nope'; choose from convs"),
        (["--gate-n", "50"], "--gate-n 50 is too small"),
    ],
)
def test_bad_quantize_options_are_one_line(random_cond_onnx, tiny_data, tmp_path, extra, fragment):
    out = tmp_path / "q.onnx"
    result = run_cli("quantize", random_cond_onnx, "-o", out, "--data-root", tiny_data, *extra)
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_q_sample_takes_one_timestep_per_image():
    from ddpm_deploy.forward import q_sample
    from ddpm_deploy.schedule import Schedule

    s = Schedule()
    x0, eps = np.ones((2, 1, 2, 2)), np.zeros((2, 1, 2, 2))
    got = q_sample(x0, np.array([0, 999]), eps, s)
    assert np.allclose(got[0], np.sqrt(s.alpha_bars[0])) and np.allclose(
        got[1], np.sqrt(s.alpha_bars[999])
    )
    assert np.allclose(q_sample(x0, 10, eps, s), np.sqrt(s.alpha_bars[10]))


def test_a_folder_model_is_calibrated_checked_and_judged_on_its_folder(tmp_path):
    """quantize on a folder model (emoji) read the IDX files and failed after calibration: its
    calibration and test images now come from its folder (named by --data-root: a path in a card
    is never followed), and the gate judges in pixel-PCA features (no domain classifier), as
    `evaluate` does."""
    from ddpm_deploy.export.quantize import dataset_images, forward_batches
    from ddpm_deploy.export.quantize_gate import compare
    from PIL import Image

    from ddpm_deploy.card import make_card
    from ddpm_deploy.image_folder import FolderSpec, read_folder
    from ddpm_deploy.schedule import Schedule

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / c / f"{i}.png")
    data = read_folder(FolderSpec(str(tmp_path / "imgs")))
    arch = {"name": "resunet", "channels": 3, "image_size": 8, "num_classes": 2}
    card = make_card(arch=arch, schedule=Schedule(), dataset="folder", classes=["a", "b"], data=data.info)  # fmt: skip
    root = str(tmp_path / "imgs")
    train, labels = dataset_images(card, root, train=True)
    test, test_labels = dataset_images(card, root, train=False)
    assert train.shape == (24, 3, 8, 8) and test.shape == (12, 3, 8, 8)
    assert sorted(set(labels.tolist())) == [0, 1] and len(test_labels) == 12
    feeds = forward_batches(card, root, batches=2, batch=4, seed=0)
    assert feeds[0]["x"].shape == (4, 3, 8, 8) and feeds[0]["y"].dtype == np.int64
    ref = rng.uniform(-1, 1, (120, 3, 8, 8)).astype(np.float32)
    metrics = compare(ref + 0.01, ref, "folder")
    assert 0 <= metrics["precision"] <= 1 and np.isfinite(metrics["fd"])
