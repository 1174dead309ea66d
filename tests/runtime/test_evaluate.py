"""`ddpm-deploy evaluate`: a small real run, reproducible chunks, and every bad input."""

import json

import numpy as np
import pytest
from ddpm_deploy.runtime.backends import load_denoiser
from ddpm_deploy.runtime.classifier import shipped_classifier
from ddpm_deploy.runtime.evaluate import EvalRequest, class_report, generate
from ddpm_deploy.runtime.noise import PerImageNoise
from ddpm_deploy.runtime.samplers import sample

from ddpm_deploy.shipped import shipped_model
from tests.helpers import assert_one_line_error, run_cli

# trains, exports, serves or drives a browser: outside the quick loop (`pytest -m "not slow"`)
pytestmark = pytest.mark.slow


def test_small_run_reports_every_figure(data_root):
    result = run_cli(
        "evaluate", "--sampler", "ddim", "--steps", "5", "-n", "200", "--batch", "100",
        "--data-root", data_root, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert (r["dataset"], r["n"], r["steps"], r["backend"]) == ("fashion_mnist", 200, 5, "ort")
    assert sum(r["class_counts"].values()) == 200
    assert r["share_outside_range"] == 0.0  # x0 clipping keeps every value in range
    assert 0.1 <= r["mean_confidence"] <= 1.0 and 0.0 <= r["max_class_deviation"] <= 0.9
    # 10,000 real images sit far closer to the test split (1.16, docs/QUALITY.md) than 200
    # five-step samples do
    assert 0.0 < r["real"]["fd"] < 3.0
    assert r["fd"] > 50 * r["real"]["fd"]
    assert r["real"]["max_class_deviation"] < 0.02  # the training split is balanced
    assert r["classifier"]["test_accuracy_here"] == pytest.approx(
        r["classifier"]["test_accuracy"], abs=2e-4
    )
    # every judge comes with its real-vs-real floor, and the floors read as real data should
    for key in ("precision", "recall", "fd_pixel_pca", "two_sample", "two_sample_floor"):
        assert key in r and key in r["real"], key
    assert abs(r["real"]["two_sample_floor"]["auc"] - 0.5) < 0.15
    assert r["two_sample"]["auc"] > r["real"]["two_sample"]["auc"]  # five DDIM steps are blurry
    assert r["fd_pixel_pca"] > r["real"]["fd_pixel_pca"]
    assert r["real"]["precision"] > 0.5 and r["real"]["recall"] > 0.5


def test_image_i_depends_only_on_seed_and_index_whatever_the_chunks():
    denoiser = load_denoiser("ort", shipped_model("fashion_mnist"))
    req = EvalRequest(
        sampler="ddpm",
        steps=3,
        spacing="linspace",
        n=5,
        batch=2,
        seed=7,
        progress=False,
        class_="none",
    )
    x, _ = generate(denoiser, req)
    again, _ = generate(denoiser, req)
    np.testing.assert_array_equal(x, again)
    whole, _ = generate(denoiser, EvalRequest(**{**req.__dict__, "batch": 5}))
    np.testing.assert_allclose(x, whole, rtol=0, atol=1e-6)  # batch size may change ORT's sums
    fifth = sample(denoiser, denoiser.schedule, 1, PerImageNoise(7, 4, 1), sampler="ddpm", steps=3)
    np.testing.assert_array_equal(x[4:], fifth)


def test_class_report():
    probs = np.zeros((10, 4))
    probs[np.arange(10), [0, 0, 0, 0, 0, 1, 1, 2, 2, 3]] = 0.7
    probs[:, :] += 0.1 * (probs == 0)
    r = class_report(probs, ["a", "b", "c", "d"])
    assert r["class_counts"] == {"a": 5, "b": 2, "c": 2, "d": 1}
    assert r["max_class_deviation"] == pytest.approx(0.5 - 0.25)
    assert r["mean_confidence"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["-n", "128"], ["-n 128 is too small", "singular below n=129; use -n 129 or more"]),
        (["--dataset", "mnist"], ["is a fashion_mnist model, but --dataset mnist was asked for"]),
        (["--batch", "0"], ["--batch must be positive, got 0"]),
        (["--sampler", "euler"], ["unknown sampler 'euler'"]),
        (["--device", "cuda"], ["--device cuda applies to --backend torch only, not ort"]),
    ],
)
def test_bad_options(args, fragments):
    assert_one_line_error(run_cli("evaluate", *args), *fragments)


def test_classifier_of_the_other_dataset_is_refused():
    result = run_cli("evaluate", "--classifier", shipped_classifier("mnist"))
    assert_one_line_error(
        result, "was trained on mnist, but", "generates fashion_mnist images; pass a fashion_mnist"
    )


def test_mnist_model_with_the_fashion_classifier_is_refused():
    result = run_cli("evaluate", "--model", "mnist", "--classifier", shipped_classifier("fashion"))
    assert_one_line_error(result, "was trained on fashion_mnist, but", "generates mnist images")


def test_a_denoiser_is_not_a_classifier():
    result = run_cli("evaluate", "--classifier", shipped_model("fashion_mnist"))
    assert_one_line_error(result, "is not a ddpm-deploy classifier")


def test_missing_data_says_where_it_looked(tmp_path):
    result = run_cli("evaluate", "-n", "129", "--data-root", tmp_path)
    assert_one_line_error(result, "no fashion_mnist IDX files found; looked in")


def test_conditional_report_counts_hits_per_asked_class():
    from ddpm_deploy.runtime.evaluate import EvalRequest, asked_labels, conditional_report

    def card(k: int) -> dict:
        return {"arch": {"num_classes": k}, "dataset": "fashion_mnist", "classes": list("abc")[:k]}

    asked = asked_labels(EvalRequest(n=6, class_="all"), card(3))
    assert asked.tolist() == [0, 1, 2, 0, 1, 2]
    predicted = np.array([0, 1, 1, 0, 1, 2])  # classes 0 and 1 always found, class 2 once of twice
    probs = np.eye(3)[predicted]
    report = conditional_report(probs, asked, ["a", "b", "c"])
    assert report["per_class_accuracy"] == {"a": 1.0, "b": 1.0, "c": 0.5}
    assert report["class_accuracy"] == pytest.approx(5 / 6)
    assert asked_labels(EvalRequest(n=6, class_="none"), card(3)) is None
    assert asked_labels(EvalRequest(n=6), card(0)) is None  # an unconditional model
    default = asked_labels(
        EvalRequest(n=6), card(3)
    )  # a conditional model: random classes, as sample
    assert default.shape == (6,) and default.max() < 3
