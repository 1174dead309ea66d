"""The numpy steps against an independent float64 transcription of the papers' equations."""

import numpy as np
import pytest
from ddpm_deploy.runtime.noise import PerImageNoise
from ddpm_deploy.runtime.samplers import (
    NonFiniteError,
    ddim_step,
    ddim_timesteps,
    ddpm_step,
    dpmpp_2m_step,
    sample,
    timesteps_for,
)

from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

T = 1000
BETAS = [1e-4 + (0.02 - 1e-4) * i / (T - 1) for i in range(T)]  # written out again, not imported


def abar(t):
    p = 1.0
    for b in BETAS[: t + 1]:
        p *= 1.0 - b
    return p


def ho_eq11(x, eps, t, z, sigma2):
    """Ho et al. 2020, Algorithm 2 / eq. 11."""
    a = 1.0 - BETAS[t]
    mean = (x - (1.0 - a) / np.sqrt(1.0 - abar(t)) * eps) / np.sqrt(a)
    return mean + (np.sqrt(sigma2) * z if t > 0 else 0.0)


def ho_eq7_clipped(x, eps, t, z, sigma2):
    """Posterior mean (eq. 7) around the predicted x0 (eq. 15) clipped to [-1, 1]."""
    ab, ab_prev, b = abar(t), (abar(t - 1) if t > 0 else 1.0), BETAS[t]
    x0 = np.clip((x - np.sqrt(1 - ab) * eps) / np.sqrt(ab), -1, 1)
    mean = np.sqrt(ab_prev) * b / (1 - ab) * x0 + np.sqrt(1 - b) * (1 - ab_prev) / (1 - ab) * x
    return mean + (np.sqrt(sigma2) * z if t > 0 else 0.0)


def song_eq12(x, eps, t, t_prev, z, eta, clip):
    """Song et al. 2021, eq. 12 with sigma from eq. 16."""
    a_t, a_prev = abar(t), (abar(t_prev) if t_prev >= 0 else 1.0)
    x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
    if clip:
        x0 = np.clip(x0, -1, 1)
        eps = (x - np.sqrt(a_t) * x0) / np.sqrt(1 - a_t)
    sigma = eta * np.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    return np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev - sigma**2) * eps + sigma * z


def _inputs(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x, eps, z = (rng.standard_normal((3, 1, 28, 28)).astype(dtype) * 1.5 for _ in range(3))
    return x, eps, z


@pytest.mark.parametrize("t", [0, 1, 17, 500, 998, 999])
@pytest.mark.parametrize("variance", ["beta", "posterior"])
def test_ddpm_step_float64_matches_paper(t, variance):
    s = Schedule()
    x, eps, z = _inputs(np.float64)
    b = BETAS[t]
    sigma2 = b if variance == "beta" else ((1 - (abar(t - 1) if t else 1.0)) / (1 - abar(t)) * b)
    got = ddpm_step(x, eps, t, s, z, variance=variance, clip=False)
    np.testing.assert_allclose(got, ho_eq11(x, eps, t, z, sigma2), rtol=0, atol=1e-12)
    got = ddpm_step(x, eps, t, s, z, variance=variance, clip=True)
    np.testing.assert_allclose(got, ho_eq7_clipped(x, eps, t, z, sigma2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("t,t_prev", [(999, 979), (500, 480), (20, 0), (0, -1), (999, -1)])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip", [False, True])
def test_ddim_step_float64_matches_paper(t, t_prev, eta, clip):
    s = Schedule()
    x, eps, z = _inputs(np.float64, seed=1)
    got = ddim_step(x, eps, t, t_prev, s, z, eta=eta, clip=clip)
    np.testing.assert_allclose(got, song_eq12(x, eps, t, t_prev, z, eta, clip), rtol=0, atol=1e-12)


@pytest.mark.parametrize("t", [1, 250, 999])
def test_float32_steps_stay_float32_within_rounding(t):
    s = Schedule()
    x, eps, z = _inputs(np.float32)
    ref = ho_eq11(x.astype(np.float64), eps.astype(np.float64), t, z.astype(np.float64), BETAS[t])
    got = ddpm_step(x, eps, t, s, z, clip=False)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    ref = song_eq12(
        *(a.astype(np.float64) for a in (x, eps)), t, t - 1, z.astype(np.float64), 0.0, True
    )
    got = ddim_step(x, eps, t, t - 1, s, z, eta=0.0, clip=True)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


def test_ddim_timesteps_spacing():
    assert ddim_timesteps(1000, 1000).tolist() == list(range(999, -1, -1))
    ts = ddim_timesteps(1000, 50)
    assert ts[0] == 999 and ts[-1] == 0 and len(set(ts.tolist())) == 50 and np.all(np.diff(ts) < 0)
    assert ddim_timesteps(1000, 1).tolist() == [999]
    for bad in (0, 1001):
        with pytest.raises(UserError, match="between 1 and T=1000"):
            ddim_timesteps(1000, bad)


def _oracle(value, schedule):
    """The exact noise predictor for data that is always the constant image `value`."""

    def denoiser(x, t):
        ab = schedule.alpha_bars[t][:, None, None, None]
        return ((x - np.sqrt(ab) * value) / np.sqrt(1 - ab)).astype(x.dtype)

    return denoiser


@pytest.mark.parametrize(
    "sampler,steps",
    [("ddim", 10), ("ddim", 100), ("ddpm", None), ("ddpm", 100), ("dpm++2m", 10), ("dpm++2m", 20)],
)
def test_samplers_recover_the_data_with_an_exact_denoiser(sampler, steps):
    s = Schedule()
    x = sample(_oracle(0.3, s), s, 4, np.random.default_rng(0), sampler=sampler, steps=steps)
    assert x.shape == (4, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x, 0.3, atol=1e-4)


def test_ddim_eta0_is_deterministic_and_seeded():
    s = Schedule()
    den = _oracle(0.0, s)
    noisy = lambda x, t: den(x, t) + 0.3 * np.sin(x)  # noqa: E731 - an imperfect model, so x_T matters
    a = sample(noisy, s, 2, np.random.default_rng(5), sampler="ddim", steps=20)
    b = sample(noisy, s, 2, np.random.default_rng(5), sampler="ddim", steps=20)
    c = sample(noisy, s, 2, np.random.default_rng(6), sampler="ddim", steps=20)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_callback_sees_every_step():
    s = Schedule()
    seen = []
    sample(
        _oracle(0.0, s),
        s,
        1,
        np.random.default_rng(0),
        sampler="ddim",
        steps=7,
        callback=lambda i, t, x: seen.append((i, t)),
    )
    assert [i for i, _ in seen] == list(range(7)) and seen[0][1] == 999 and seen[-1][1] == 0


def test_non_finite_output_stops_with_the_step_number():
    s = Schedule()
    calls = {"n": 0}

    def broken(x, t):
        calls["n"] += 1
        return np.full_like(x, np.nan if calls["n"] == 3 else 0.0)

    with pytest.raises(NonFiniteError, match=r"NaN/Inf at step 3 of 10 \(t="):
        sample(broken, s, 1, np.random.default_rng(0), sampler="ddim", steps=10, clip=False)


def test_bad_arguments():
    s = Schedule()
    den = _oracle(0.0, s)
    rng = np.random.default_rng(0)
    with pytest.raises(UserError, match=r"unknown sampler 'plms'; choose from \['ddpm', 'ddim', "):
        sample(den, s, 1, rng, sampler="plms")
    with pytest.raises(UserError, match="unknown spacing 'log'; choose from"):
        sample(den, s, 1, rng, sampler="ddim", steps=5, spacing="log")
    with pytest.raises(UserError, match="at most T=1000"):
        sample(den, s, 1, rng, sampler="dpm++2m", steps=1001)
    with pytest.raises(UserError, match="eta"):
        sample(den, s, 1, rng, sampler="ddim", eta=-0.1)


# -- respaced DDPM, DPM-Solver++(2M), spacings, per-image noise -------------------------------------
def respaced_ho(x, eps, t, t_prev, z, variance, clip):
    """improved-diffusion's respacing written out: beta' = 1 - abar(t) / abar(t_prev), then eq. 7/11."""
    ab, ab_prev = abar(t), (abar(t_prev) if t_prev >= 0 else 1.0)
    b = 1.0 - ab / ab_prev
    sigma2 = b if variance == "beta" else (1 - ab_prev) / (1 - ab) * b
    if clip:
        x0 = np.clip((x - np.sqrt(1 - ab) * eps) / np.sqrt(ab), -1, 1)
        mean = np.sqrt(ab_prev) * b / (1 - ab) * x0 + np.sqrt(1 - b) * (1 - ab_prev) / (1 - ab) * x
    else:
        mean = (x - b / np.sqrt(1.0 - ab) * eps) / np.sqrt(1 - b)
    return mean + (np.sqrt(sigma2) * z if t_prev >= 0 else 0.0)


@pytest.mark.parametrize("t,t_prev", [(999, 899), (500, 450), (40, 0), (10, -1)])
@pytest.mark.parametrize("variance", ["beta", "posterior"])
@pytest.mark.parametrize("clip", [False, True])
def test_respaced_ddpm_step_float64_matches_improved_diffusion(t, t_prev, variance, clip):
    x, eps, z = _inputs(np.float64, seed=3)
    got = ddpm_step(x, eps, t, Schedule(), z, variance=variance, clip=clip, t_prev=t_prev)
    want = respaced_ho(x, eps, t, t_prev, z, variance, clip)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def lu_2m(x, d_now, d_last, t, t_next, t_last):
    """Lu et al. 2022 (DPM-Solver++), Algorithm 2, one multistep update, written from the paper."""

    def lam(s):
        return 0.5 * np.log(abar(s)) - 0.5 * np.log(1.0 - abar(s))

    h = lam(t_next) - lam(t)
    if d_last is None:
        d = d_now
    else:
        r = (lam(t) - lam(t_last)) / h
        d = (1 + 1 / (2 * r)) * d_now - 1 / (2 * r) * d_last
    sigma_ratio = np.sqrt(1 - abar(t_next)) / np.sqrt(1 - abar(t))
    return sigma_ratio * x - np.sqrt(abar(t_next)) * (np.exp(-h) - 1.0) * d


@pytest.mark.parametrize("t,t_next,t_last", [(999, 949, None), (949, 899, 999), (100, 50, 150)])
def test_dpmpp_2m_step_float64_matches_paper(t, t_next, t_last):
    x, d_now, d_last = _inputs(np.float64, seed=4)
    d_last = None if t_last is None else d_last
    got = dpmpp_2m_step(x, d_now, t, t_next, Schedule(), d_last, t_last)
    np.testing.assert_allclose(got, lu_2m(x, d_now, d_last, t, t_next, t_last), rtol=0, atol=1e-12)
    # the last step lands on the data prediction (sigma = 0)
    np.testing.assert_array_equal(dpmpp_2m_step(x, d_now, t, -1, Schedule(), d_last, t_last), d_now)


def test_first_dpmpp_step_is_ddim():
    s = Schedule()
    x, eps, _ = _inputs(np.float64, seed=5)
    x0 = (x - np.sqrt(1 - s.alpha_bars[700]) * eps) / np.sqrt(s.alpha_bars[700])
    got = dpmpp_2m_step(x, x0, 700, 650, s)
    np.testing.assert_allclose(got, song_eq12(x, eps, 700, 650, 0.0, 0.0, False), atol=1e-12)


def test_spacings():
    assert timesteps_for(1000, 5, "linspace").tolist() == [999, 749, 500, 250, 0]
    assert timesteps_for(1000, 5, "leading").tolist() == [800, 600, 400, 200, 0]
    assert timesteps_for(1000, 5, "trailing").tolist() == [999, 799, 599, 399, 199]
    for spacing in ("linspace", "leading", "trailing"):
        for steps in (1, 7, 20, 999, 1000):
            ts = timesteps_for(1000, steps, spacing)
            assert len(ts) == steps and np.all(np.diff(ts) < 0) and 0 <= ts[-1] and ts[0] <= 999
    assert timesteps_for(1000, 1000, "trailing").tolist() == list(range(999, -1, -1))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++2m"])
def test_image_i_depends_only_on_seed_and_index(sampler):
    s = Schedule()
    den = _oracle(0.0, s)
    noisy = lambda x, t: den(x, t) + 0.3 * np.sin(x)  # noqa: E731 - so that the noise matters
    kw = {"sampler": sampler, "steps": 8, "eta": 1.0}

    def run(start, count):
        return sample(noisy, s, count, PerImageNoise(7, start, count), **kw)

    sixteen, thirty_seven = run(0, 16), run(0, 37)
    chunked = np.concatenate([run(0, 10), run(10, 10)])
    np.testing.assert_array_equal(sixteen[5], thirty_seven[5])
    np.testing.assert_array_equal(sixteen[5], chunked[5])
    np.testing.assert_array_equal(thirty_seven[:20], chunked)
    other_seed = sample(noisy, s, 16, PerImageNoise(8, 0, 16), **kw)
    assert not np.array_equal(sixteen[5], other_seed[5])
