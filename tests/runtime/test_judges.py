"""The judges beside FD: AUC, the two-sample test (and its floor), precision/recall, pixel FD."""

import itertools

import numpy as np
import pytest
from ddpm_deploy.runtime.judges import judge, judge_lines, pixel_fd, pixel_pca
from ddpm_deploy.runtime.precision_recall import knn_radii, precision_recall
from ddpm_deploy.runtime.two_sample import auc, two_sample_test

from ddpm_deploy.errors import UserError

# trains, exports, serves or drives a browser: outside the quick loop (`pytest -m "not slow"`)
pytestmark = pytest.mark.slow


def brute_auc(scores, labels) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_the_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, 40).astype(float)  # many ties
    labels = rng.integers(0, 2, 40)
    assert auc(scores, labels) == pytest.approx(brute_auc(scores, labels), abs=1e-12)


def test_auc_extremes():
    assert auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auc([1.0, 1.0, 1.0, 1.0], [0, 1, 0, 1]) == 0.5


def items(n: int, seed: int, haze: bool = False, bright: bool = False) -> np.ndarray:
    """Fashion-like 8-bit pictures: a random rectangle on a zero background, optionally with a
    background haze of 1-3 levels or a much brighter item."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 1, 28, 28), np.uint8)
    for img in out:
        top, left = rng.integers(2, 8, 2)
        h, w = rng.integers(12, 20, 2)
        img[0, top : top + h, left : left + w] = rng.integers(60, 120) + (120 if bright else 0)
    if haze:
        out = np.where(out == 0, rng.integers(1, 4, out.shape), out).astype(np.uint8)
    return out


# fewer discriminator updates than evaluate's 400 keep these tests quick; the sets are easy
FAST = {"steps": 100}


def test_two_sample_test_separates_different_sets_and_not_equal_ones():
    real, other_real = items(400, 0), items(400, 1)
    same = two_sample_test(other_real, real, seeds=(0, 1), **FAST)
    different = two_sample_test(items(400, 2, bright=True), real, seeds=(0,), **FAST)
    assert abs(same["auc"] - 0.5) < 0.1
    assert different["auc"] > 0.95
    assert same["n"] == 400 and len(same["aucs"]) == 2


def test_the_floor_removes_a_background_haze_and_nothing_else():
    real, hazy = items(400, 0), items(400, 3, haze=True)
    raw = two_sample_test(hazy, real, seeds=(0,), **FAST)
    floored = two_sample_test(hazy, real, floor=4, seeds=(0,), **FAST)
    assert raw["auc"] > 0.95  # the haze alone gives every sample away
    assert abs(floored["auc"] - 0.5) < 0.1


def test_two_sample_test_refuses_too_few_images_and_other_shapes():
    with pytest.raises(UserError, match="at least 100"):
        two_sample_test(items(50, 0), items(50, 1))
    with pytest.raises(UserError, match="shapes differ"):
        two_sample_test(items(200, 0), np.zeros((200, 1, 32, 32), np.uint8))


def test_knn_radii_exclude_the_point_itself():
    pts = np.array([[0.0], [1.0], [3.0], [7.0]])
    # squared distance to the 1st and 2nd nearest other point
    assert knn_radii(pts, k=1).tolist() == [1.0, 1.0, 4.0, 16.0]
    assert knn_radii(pts, k=2).tolist() == [9.0, 4.0, 9.0, 36.0]


def test_precision_and_recall_separate_fidelity_from_diversity():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(800, 4))
    same = precision_recall(real, rng.normal(size=(800, 4)))
    assert same["precision"] > 0.8 and same["recall"] > 0.8
    # mode collapse: every sample near the centre is faithful, and covers little of the data
    collapsed = precision_recall(real, 0.1 * rng.normal(size=(800, 4)))
    assert collapsed["precision"] > 0.95 and collapsed["recall"] < 0.3
    # samples off the data: neither
    far = precision_recall(real, rng.normal(size=(800, 4)) + 10.0)
    assert far["precision"] == 0.0 and far["recall"] == 0.0


def test_pixel_fd_is_small_for_the_same_distribution_and_grows_with_a_shift():
    real, other, bright = items(500, 0), items(500, 1), items(500, 2, bright=True)
    basis = pixel_pca(real, k=16)
    assert pixel_fd(other, real, basis) < 0.2 * pixel_fd(bright, real, basis)


def test_judge_reports_every_number_with_its_floor():
    real_train, real_test, fake = items(300, 0), items(300, 1), items(300, 2, haze=True)
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(300, 8)) for _ in range(3)]
    r = judge(fake, feats[0], real_train, feats[1], real_test, feats[2], two_sample=True)
    for key in ("precision", "recall", "fd_pixel_pca", "two_sample", "two_sample_floor"):
        assert key in r and key in r["real"]
    assert r["two_sample"]["auc"] > 0.9 > r["two_sample_floor"]["auc"]
    text = "\n".join(judge_lines(r))
    assert "two-sample AUC" in text and "floor <= 4" in text and "real:" in text
