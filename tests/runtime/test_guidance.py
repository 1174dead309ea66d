"""Classifier-free guidance and --class parsing."""

import numpy as np
import pytest
from ddpm_deploy.runtime.guidance import ALL, Guided, labels_for, parse_class

from ddpm_deploy.card import make_card
from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

K = 10


def _card(k=K, dataset="fashion_mnist"):
    arch = {"name": "resunet", "num_classes": k} if k else {"name": "reference-unet"}
    return make_card(arch=arch, schedule=Schedule(), dataset=dataset)


class FakeConditional:
    """eps = x * (1 + y) + t / 1000: a different, known answer for every label; counts calls."""

    def __init__(self):
        self.card, self.calls = _card(), []

    def __call__(self, x, t, y=None):
        y = np.full(len(x), K) if y is None else y
        self.calls.append(len(x))
        return x * (1.0 + y[:, None, None, None]) + t[:, None, None, None] / 1000.0


def test_guided_eps_is_one_call_on_a_doubled_batch():
    fake = FakeConditional()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 28, 28))
    t = np.array([5, 500, 999])
    labels = np.array([0, 4, 9])
    w = 3.0
    eps = Guided(fake, labels, w)(x, t)
    assert fake.calls == [6]
    cond, uncond = fake(x, t, labels), fake(x, t, np.full(3, K))
    np.testing.assert_allclose(eps, uncond + w * (cond - uncond), rtol=0, atol=1e-12)


@pytest.mark.parametrize("w,expected_label", [(0.0, K), (1.0, None)])
def test_guidance_zero_and_one_need_no_doubling(w, expected_label):
    fake = FakeConditional()
    x, t, labels = np.ones((2, 1, 28, 28)), np.array([1, 2]), np.array([3, 7])
    eps = Guided(fake, labels, w)(x, t)
    assert fake.calls == [2]
    y = labels if expected_label is None else np.full(2, expected_label)
    np.testing.assert_array_equal(eps, fake(x, t, y))


def test_unconditional_sampling_of_a_conditional_model_uses_the_null_label():
    fake = FakeConditional()
    x, t = np.ones((2, 1, 28, 28)), np.array([1, 2])
    np.testing.assert_array_equal(Guided(fake, None, 3.0)(x, t), fake(x, t, np.full(2, K)))


def test_parse_class_names_indices_and_all():
    card = _card()
    assert parse_class(card, None) == "random"  # the default of a conditional model
    assert parse_class(_card(0), None) is None  # an unconditional model samples unconditionally
    assert parse_class(card, "none") is None  # the null label
    assert parse_class(card, "sneaker") == 7
    assert parse_class(card, "Ankle_boot") == 9
    assert parse_class(card, "t-shirt") == 0 and parse_class(card, "top") == 0
    assert parse_class(card, "3") == 3
    assert parse_class(card, "ALL") == ALL
    np.testing.assert_array_equal(labels_for(card, 7, 3), [7, 7, 7])
    np.testing.assert_array_equal(labels_for(card, ALL, 2)[:5], [0, 0, 1, 1, 2])
    assert len(labels_for(card, ALL, 2)) == 2 * K


@pytest.mark.parametrize(
    "card,spec,fragment",
    [
        (_card(0), "3", "this fashion_mnist model is unconditional"),
        (_card(), "hat", "unknown class 'hat'; choose a name from ['T-shirt/top'"),
        (_card(), "10", "--class 10 is out of range; this model has classes 0..9"),
        (_card(), "-1", "--class -1 is out of range"),
    ],
)
def test_parse_class_errors(card, spec, fragment):
    with pytest.raises(UserError, match=None) as e:
        parse_class(card, spec)
    assert fragment in str(e.value)


@pytest.mark.parametrize("w", [-0.5, float("nan"), float("inf")])
def test_bad_guidance(w):
    with pytest.raises(UserError, match="--guidance must be a finite number >= 0"):
        Guided(FakeConditional(), np.array([1]), w)


def test_random_classes_depend_only_on_seed_and_index():
    from ddpm_deploy.runtime.guidance import RANDOM, random_labels

    card = _card()
    assert parse_class(card, "random") == RANDOM
    sixteen, thirty_seven = (
        labels_for(card, RANDOM, 16, seed=3),
        labels_for(card, RANDOM, 37, seed=3),
    )
    np.testing.assert_array_equal(sixteen, thirty_seven[:16])
    np.testing.assert_array_equal(random_labels(K, 3, 10, 6), thirty_seven[10:16])
    assert not np.array_equal(sixteen, labels_for(card, RANDOM, 16, seed=4))
    counts = np.bincount(random_labels(K, 0, 0, 5000), minlength=K)
    assert counts.min() > 400 and counts.max() < 600  # uniform: 500 each, sd about 21


# -- guidance over an interval of t (Kynkaanniemi et al. 2024) --------------------------------------
def _guided_by_hand(fake, x, t, labels, w):
    cond, uncond = fake(x, t, labels), fake(x, t, np.full(len(x), K))
    return uncond + w * (cond - uncond)


def test_guidance_interval_inside_is_guided_outside_is_the_conditional_eps():
    fake = FakeConditional()
    rng = np.random.default_rng(1)
    x, labels, w = rng.standard_normal((3, 1, 28, 28)), np.array([0, 4, 9]), 2.5
    guided = Guided(fake, labels, w, interval=(200, 600))
    for step, doubled in ((999, False), (601, False), (600, True), (400, True), (200, True),
                          (199, False), (0, False)):  # fmt: skip
        fake.calls.clear()
        t = np.full(3, step)
        eps = guided(x, t)
        assert fake.calls == ([6] if doubled else [3]), step
        want = _guided_by_hand(fake, x, t, labels, w) if doubled else fake(x, t, labels)
        np.testing.assert_allclose(eps, want, rtol=0, atol=1e-12)
        if not doubled:
            np.testing.assert_array_equal(eps, fake(x, t, labels))  # exactly the conditional
        assert guided.rows_at(step) == (2 if doubled else 1)


def test_guidance_interval_counts_calls_over_a_grid_and_mixed_batches():
    fake = FakeConditional()
    labels = np.array([1, 2, 3, 4])
    guided = Guided(fake, labels, 3.0, interval=(300, 700))
    grid = [999, 800, 700, 500, 300, 100, 0]
    assert guided.calls_for(grid) == 7 + 3 and guided.calls_per_step == 2
    assert Guided(fake, labels, 3.0).calls_for(grid) == 14  # no interval: every step doubled
    assert Guided(fake, labels, 1.0, interval=(300, 700)).calls_for(grid) == 7
    # one batch with images at different t (serve): the null-label rows only for those inside
    x = np.random.default_rng(2).standard_normal((4, 1, 28, 28))
    t = np.array([999, 500, 300, 10])
    fake.calls.clear()
    eps = guided(x, t)
    assert fake.calls == [4 + 2]
    want = fake(x, t, labels)
    inside = [1, 2]
    want[inside] = _guided_by_hand(fake, x[inside], t[inside], labels[inside], 3.0)
    np.testing.assert_allclose(eps, want, rtol=0, atol=1e-12)
    # w = 0 inside (the unconditional model) and the conditional outside: one undoubled call
    fake.calls.clear()
    eps0 = Guided(fake, labels, 0.0, interval=(300, 700))(x, t)
    assert fake.calls == [4]
    np.testing.assert_array_equal(eps0, fake(x, t, np.array([1, K, K, 4])))


def test_no_interval_keeps_the_old_behaviour_exactly():
    fake = FakeConditional()
    x = np.random.default_rng(3).standard_normal((2, 1, 28, 28)).astype(np.float32)
    t, labels = np.array([10, 900]), np.array([5, 6])
    a = Guided(fake, labels, 2.0)(x, t)
    b = Guided(fake, labels, 2.0, interval=(0, 999))(x, t)
    np.testing.assert_array_equal(a, b)
    assert Guided(fake, labels, 2.0).interval is None


def test_guidance_interval_in_a_sampler_run():
    from ddpm_deploy.runtime.samplers import sample
    from ddpm_deploy.runtime.timesteps import timesteps_for

    fake = FakeConditional()
    labels = np.array([2, 7])
    fake.card = _card()
    fake.schedule = Schedule()

    def small(x, t, y=None):  # a tame model so the sampler stays finite
        return 0.1 * fake(x, t, y)

    small.card = fake.card
    guided = Guided(small, labels, 2.0, interval=(250, 750))
    sample(guided, Schedule(), 2, np.random.default_rng(0), sampler="dpm++2m", steps=10)
    ts = timesteps_for(1000, 10)
    assert fake.calls == [4 if 250 <= t <= 750 else 2 for t in ts]
    assert guided.calls_for(ts) == sum(c // 2 for c in fake.calls)


@pytest.mark.parametrize("interval", [(5, 2), (-1, 10), (1.5, 3), ("a", 3), (1, 2, 3), 7])
def test_bad_guidance_interval(interval):
    with pytest.raises(UserError, match="guidance interval"):
        Guided(FakeConditional(), np.array([1]), 2.0, interval=interval)
