"""The Frechet distance against closed forms and against scipy's general matrix square root."""

import numpy as np
import pytest
import scipy.linalg
from ddpm_deploy.runtime.frechet import frechet_distance, gaussian_stats

from ddpm_deploy.errors import UserError


def _random_cov(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_diagonal_gaussians_closed_form():
    # For diagonal covariances FD = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert expected == pytest.approx(1 + 6.25 + 4 + 1)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_scaled_covariance_closed_form():
    # S2 = c^2 S1 commutes with S1: tr((S1 S2)^(1/2)) = c tr(S1), so FD = |dmu|^2 + (1 - c)^2 tr(S1).
    rng = np.random.default_rng(0)
    s1 = _random_cov(rng, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    c = 1.7
    expected = np.sum((mu1 - mu2) ** 2) + (1 - c) ** 2 * np.trace(s1)
    assert frechet_distance(mu1, s1, mu2, c**2 * s1) == pytest.approx(expected, rel=1e-10)


def test_matches_scipy_sqrtm_on_general_covariances():
    rng = np.random.default_rng(1)
    d = 32
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_identical_is_zero_and_symmetric():
    rng = np.random.default_rng(2)
    s1, s2 = _random_cov(rng, 8), _random_cov(rng, 8)
    mu = rng.standard_normal(8)
    assert frechet_distance(mu, s1, mu, s1) == pytest.approx(0.0, abs=1e-10)
    assert frechet_distance(mu, s1, mu + 1, s2) == pytest.approx(
        frechet_distance(mu + 1, s2, mu, s1), rel=1e-9
    )


def test_sample_estimate_converges_to_the_true_distance():
    rng = np.random.default_rng(3)
    d = 4
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    true = frechet_distance(mu1, s1, mu2, s2)
    x = rng.multivariate_normal(mu1, s1, 200_000)
    y = rng.multivariate_normal(mu2, s2, 200_000)
    assert frechet_distance(*gaussian_stats(x), *gaussian_stats(y)) == pytest.approx(true, rel=0.02)


def test_too_few_samples_names_the_minimum():
    with pytest.raises(UserError, match="singular below n=129; use -n 129 or more"):
        gaussian_stats(np.zeros((128, 128)))
