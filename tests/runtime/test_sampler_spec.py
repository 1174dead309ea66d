"""The sampler as data: the registry, the JSON spec a card carries, and how `sample`'s options
resolve against it (a learned spec is a default, a distilled one binds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ddpm_deploy.runtime.sampler_settings import SamplerSettings
from ddpm_deploy.runtime.sampler_spec import SamplerSpec, model_spec
from ddpm_deploy.runtime.samplers import SAMPLERS, Sampler, sample

from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

SPEC = {
    "sampler": "dpm++2m",
    "timesteps": [999, 800, 500, 100, 0],
    "clip": True,
    "analytic": 1,
    "mix": [0.0, 0.1, -0.2, 0.0, 0.05],
    "guidance": 1.5,
}
CARD = {"schedule": Schedule().to_dict(), "gaussian": {"format": "x"}, "sampler": SPEC}


def test_every_registered_sampler_is_a_sampler_with_its_name():
    assert list(SAMPLERS) == ["ddpm", "ddim", "dpm++2m", "dpm++3m", "ipndm"]
    for name, cls in SAMPLERS.items():
        assert issubclass(cls, Sampler) and cls.name == name


def test_the_spec_round_trips_through_json():
    spec = SamplerSpec.from_json(json.loads(json.dumps(SPEC)), 1000, has_gaussian=True)
    assert spec.calls == 4 and spec.mix == (0.0, 0.1, -0.2, 0.0, 0.05)
    assert spec.to_json() == SPEC
    assert SamplerSpec.from_json(spec.to_json(), 1000, True) == spec


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"sampler": "evil"}, "'evil' is unknown"),
        ({"timesteps": [5000, 10, -3]}, "strictly descending integers in [0, 1000)"),
        ({"timesteps": [999, 1.5]}, "list of integers"),
        ({"guidance": 1e300}, "guidance must be a number in [0, 100]"),
        ({"mix": [0.0, float("nan"), 0, 0, 0]}, "mix must be a list of numbers"),
        ({"mix": [0.0, 0.1]}, "mix must be 5 finite numbers"),
        ({"analytic": 5}, "--analytic must be between 0 and 4"),
        ({"clip": "yes"}, "clip must be true or false"),
        ({"eta": -1}, "eta must be a number in [0, 1]"),
        ({"script": "x"}, "only the keys"),
        ({"sampler": "ddim", "mix": [0.0] * 5}, "takes no learned corrections"),
    ],
)
def test_a_bad_spec_is_one_line(change, fragment):
    with pytest.raises(UserError, match=None) as e:
        SamplerSpec.from_json({**SPEC, **change}, 1000, has_gaussian=True)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_analytic_steps_without_statistics_are_refused():
    with pytest.raises(UserError, match="no Gaussian statistics"):
        SamplerSpec.from_json(SPEC, 1000, has_gaussian=False)


def test_a_learned_spec_is_the_default_and_any_option_replaces_it():
    own = SamplerSettings().for_model(CARD)
    assert (own.sampler, own.timesteps, own.analytic, own.mix) == (
        "dpm++2m",
        tuple(SPEC["timesteps"]),
        1,
        tuple(SPEC["mix"]),
    )
    assert own.calls == 4
    other = SamplerSettings(steps=20).for_model(CARD)
    assert (other.sampler, other.steps, other.timesteps, other.analytic, other.mix) == (
        "dpm++2m",
        20,
        None,
        0,
        None,
    )
    ddim = SamplerSettings(sampler="ddim", analytic=2).for_model(CARD)
    assert (ddim.sampler, ddim.steps, ddim.analytic) == ("ddim", 8, 2)


def test_a_distilled_spec_binds():
    card = {**CARD, "distilled": {"guidance": 1.0}}
    with pytest.raises(UserError, match="--steps 20: this model was distilled"):
        SamplerSettings(steps=20).for_model(card)
    assert SamplerSettings(sampler="dpm++2m").for_model(card).timesteps == tuple(SPEC["timesteps"])
    # resolving twice (evaluate resolves, then its generator does) asks for nothing new
    resolved = SamplerSettings().for_model(card)
    assert resolved.for_model(card) == resolved and resolved.analytic == 1
    plain = {**card, "sampler": {**SPEC, "analytic": 0, "mix": None}}
    assert SamplerSettings().for_model(plain).for_model(plain).analytic == 0
    with pytest.raises(UserError, match="--analytic 2: this model was distilled"):
        SamplerSettings(analytic=2).for_model(card)


def test_analytic_on_a_model_without_statistics_is_one_line():
    card = {"schedule": Schedule().to_dict()}
    with pytest.raises(UserError, match="carries no Gaussian statistics"):
        SamplerSettings(analytic=2).for_model(card)
    assert model_spec(card) is None


def test_zero_mix_is_the_plain_solver_and_mix_changes_it():
    schedule, ts = Schedule(), [999, 600, 200, 0]

    def run(mix):
        model = lambda x, t: 0.9 * np.tanh(x) * (t[:, None, None, None] / 1000)  # noqa: E731
        return sample(
            model,
            schedule,
            2,
            np.random.default_rng(1),
            sampler="dpm++2m",
            timesteps=ts,
            mix=mix,
            clip=False,
            shape=(1, 4, 4),
        )

    np.testing.assert_array_equal(run(None), run([0.0] * 4))
    assert np.abs(run([0.0, 0.3, 0.0, 0.0]) - run(None)).max() > 1e-3
    assert np.abs(run([0.0, 0.0, 0.0, 0.5]) - run(None)).max() > 1e-3
