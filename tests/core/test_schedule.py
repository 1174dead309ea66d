import json

import numpy as np
import pytest

from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule


def test_linear_schedule_matches_closed_form():
    s = Schedule()
    T = 1000
    betas = np.array([1e-4 + (0.02 - 1e-4) * t / (T - 1) for t in range(T)])
    np.testing.assert_allclose(s.betas, betas, rtol=0, atol=1e-17)
    assert s.betas.dtype == np.float64
    alpha_bar = np.ones(T)
    prod = 1.0
    for t in range(T):
        prod *= 1.0 - betas[t]
        alpha_bar[t] = prod
    np.testing.assert_allclose(s.alpha_bars, alpha_bar, rtol=1e-13)
    # beta-tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t, with abar_{-1} = 1
    for t in (1, 10, 500, 999):
        expect = (1 - alpha_bar[t - 1]) / (1 - alpha_bar[t]) * betas[t]
        assert s.posterior_variance[t] == pytest.approx(expect, rel=1e-13)
    assert s.posterior_variance[0] == 0.0
    assert s.alpha_bars[-1] == pytest.approx(4.0358e-05, rel=1e-4)  # nearly pure noise at t = T-1


def test_cosine_schedule_matches_nichol_dhariwal():
    s = Schedule("cosine", T=1000)
    f = lambda t: np.cos((t / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    for t in (0, 100, 500, 900):
        assert s.alpha_bars[t] == pytest.approx(f(t + 1) / f(0), rel=1e-10)
    assert s.betas.max() <= 0.999


def test_variance_choices():
    s = Schedule()
    assert s.variance("beta") is s.betas
    np.testing.assert_array_equal(s.variance("posterior"), s.posterior_variance)
    with pytest.raises(UserError, match="choose from"):
        s.variance("learned")


def test_round_trip_through_json():
    for s in (Schedule(), Schedule("cosine", T=500), Schedule("linear", 10, {"beta_end": 0.05})):
        again = Schedule.from_json(json.dumps(json.loads(s.to_json())))
        assert again == s
        np.testing.assert_array_equal(again.betas, s.betas)


def test_arrays_are_read_only():
    s = Schedule()
    with pytest.raises(ValueError):
        s.alpha_bars[0] = 0.5


def test_bad_schedules_name_the_choices():
    with pytest.raises(
        UserError, match=r"unknown schedule 'quadratic'; choose from \['cosine', 'linear'\]"
    ):
        Schedule("quadratic")
    with pytest.raises(UserError, match="unknown parameters"):
        Schedule("linear", params={"s": 0.1})
