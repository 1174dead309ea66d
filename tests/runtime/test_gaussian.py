"""The analytic steps: the Gaussian posterior mean against float64 closed forms, its card entry,
and sample()'s use of it in place of the network."""

from __future__ import annotations

import numpy as np
import pytest
from ddpm_deploy.runtime.gaussian import GaussianStats, fit
from ddpm_deploy.runtime.samplers import sample
from ddpm_deploy.runtime.solvers import dpmpp_2m_step

from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

D = 12


def gaussian_images(n: int, num_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    means = rng.normal(0, 0.3, (num_classes, D))
    mix = rng.normal(0, 0.2, (num_classes, D, D))
    x = means[labels] + np.einsum("nij,nj->ni", mix[labels], rng.standard_normal((n, D)))
    return x.reshape(n, 1, 3, 4), labels


def test_full_rank_posterior_mean_is_the_closed_form():
    """At full rank the low-rank formula is E[x0|xt] = mu + a S (a^2 S + s^2 I)^-1 (xt - a mu)
    with the sample mean and covariance, for each class and for all images together."""
    images, labels = gaussian_images(400, 3)
    stats = fit(images, labels, 3, rank=D)
    flat = images.reshape(len(images), -1)
    xt = np.random.default_rng(1).normal(0, 0.5, (4, 1, 3, 4))
    for ab in (0.9, 0.3, 0.01):
        a, s2 = np.sqrt(ab), 1 - ab
        for group, rows in [(0, labels == 0), (2, labels == 2), (3, slice(None))]:
            mu, cov = flat[rows].mean(0), np.cov(flat[rows].T)
            gain = a * cov @ np.linalg.inv(a * a * cov + s2 * np.eye(D))
            want = np.clip(mu + (xt.reshape(4, -1) - a * mu) @ gain.T, -1, 1)
            got = stats.x0(xt, ab, np.full(4, group)).reshape(4, -1)
            np.testing.assert_allclose(got, want, atol=1e-10)


def test_low_rank_keeps_the_top_directions_and_the_mean_elsewhere():
    images, labels = gaussian_images(400, 1)
    stats = fit(images, labels, 1, rank=3)
    assert stats.vectors.shape == (2, 3, D)
    np.testing.assert_allclose(stats.vectors[0] @ stats.vectors[0].T, np.eye(3), atol=1e-12)
    assert np.all(np.diff(stats.variances[0]) <= 0)
    # x_t along a direction orthogonal to the kept ones predicts the mean exactly
    v = stats.vectors[0]
    other = np.linalg.svd(v, full_matrices=True)[2][3]
    xt = (0.5 * stats.mean[0] + other).reshape(1, 1, 3, 4)
    np.testing.assert_allclose(
        stats.x0(xt, 0.25, np.array([0])).ravel(), np.clip(stats.mean[0], -1, 1), atol=1e-12
    )


def test_card_round_trip_is_float16_directions_only():
    images, labels = gaussian_images(300, 2)
    stats = fit(images, labels, 2, rank=5)
    back = GaussianStats.from_card(stats.to_card(), num_classes=2, dim=D)
    np.testing.assert_array_equal(back.mean, stats.mean.astype(np.float32))
    np.testing.assert_array_equal(back.variances, stats.variances.astype(np.float32))
    np.testing.assert_allclose(back.vectors, stats.vectors, atol=1e-3)
    assert back.vectors.dtype == np.float64


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"format": "x"}, "format"),
        ({"groups": 5}, "groups must be classes"),
        ({"mean": "!!"}, "unreadable"),
        ({"rank": 4}, "vectors holds 480 base64 characters, not 384"),
        ({"dim": 784.0}, r"gaussian.dim: 784.0 is not integer"),
        ({"groups": 2**40}, r"gaussian.groups: 1099511627776 must be <= 10001"),
    ],
)
def test_a_bad_card_entry_is_one_line(change, fragment):
    images, labels = gaussian_images(100, 2)
    entry = {**fit(images, labels, 2, rank=5).to_card(), **change}
    with pytest.raises(UserError, match=fragment):
        GaussianStats.from_card(entry, num_classes=2, dim=D)


class CountingModel:
    """eps = 0.1 x, and the timesteps it was called at."""

    def __init__(self, stats, labels):
        self.stats, self.labels, self.calls = stats, labels, []

    def __call__(self, x, t):
        self.calls.append(int(t[0]))
        return 0.1 * x

    def gaussian_x0(self, x, t):
        return self.stats.x0(x, Schedule().alpha_bars[t], self.labels)


def test_analytic_steps_replace_the_first_calls_exactly():
    """float64: sample() with analytic=2 equals DPM-Solver++(2M) written out with the Gaussian
    x0 at the first two timesteps and the model's at the rest; the model is called only there."""
    images, labels = gaussian_images(300, 2)
    stats = fit(images, labels, 2, rank=6)
    schedule, ts = Schedule(), [999, 700, 400, 100, 0]
    y = np.array([0, 1, 1])
    model = CountingModel(stats, y)
    got = sample(
        model,
        schedule,
        3,
        np.random.default_rng(5),
        sampler="dpm++2m",
        timesteps=ts,
        analytic=2,
        shape=(1, 3, 4),
        dtype=np.float64,
    )
    assert model.calls == [400, 100, 0]

    x = np.random.default_rng(5).standard_normal((3, 1, 3, 4))
    last = (None, None)
    for i, t in enumerate(ts):
        ab = schedule.alpha_bars[t]
        if i < 2:
            x0 = stats.x0(x, ab, y)
        else:
            x0 = np.clip((x - np.sqrt(1 - ab) * 0.1 * x) / np.sqrt(ab), -1, 1)
        t_next = ts[i + 1] if i + 1 < len(ts) else -1
        x, last = dpmpp_2m_step(x, x0, t, t_next, schedule, last[1], last[0]), (t, x0)
    np.testing.assert_allclose(got, x, atol=1e-9)


def test_analytic_steps_need_statistics_and_a_network_call():
    with pytest.raises(UserError, match="Gaussian statistics"):
        sample(
            lambda x, t: x,
            Schedule(),
            2,
            np.random.default_rng(0),
            sampler="ddim",
            steps=4,
            analytic=1,
        )
    with pytest.raises(UserError, match="--analytic must be between 0 and 3"):
        sample(
            lambda x, t: x,
            Schedule(),
            2,
            np.random.default_rng(0),
            sampler="ddim",
            steps=4,
            analytic=4,
        )
