"""Classifier-free guidance and --class parsing."""

from pathlib import Path

import numpy as np
import pytest
from ddpm_deploy.runtime.backends import Denoiser
from ddpm_deploy.runtime.guidance import ALL, Guided, labels_for, parse_class

from ddpm_deploy.card import make_card
from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

K = 10


def _card(k=K, dataset="fashion_mnist"):
    arch = {"name": "resunet", "num_classes": k} if k else {"name": "reference-unet"}
    return make_card(arch=arch, schedule=Schedule(), dataset=dataset)


class FakeConditional(Denoiser):
    """A real Denoiser whose network is eps = x * (1 + y) + t / 1000 (a different, known answer
    for every label): its feeds come from ``Denoiser.inputs``, so a call without labels goes
    through the backends' own null-label path. Counts calls."""

    def __init__(self):
        self.card, self.calls, self.path = _card(), [], Path("fake.onnx")

    def __call__(self, x, t, y=None):
        feeds = self.inputs(x, t, y)
        self.calls.append(len(x))
        return feeds["x"] * (1.0 + feeds["y"][:, None, None, None]) + feeds["t"][:, None, None, None] / 1000.0  # fmt: skip


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
    eps = Guided(fake, None, 3.0)(x, t)
    np.testing.assert_array_equal(eps, 1.0 + K + t[:, None, None, None] / 1000.0 + 0 * x)
    assert fake.inputs(x, t, None)["y"].tolist() == [K, K]


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


@pytest.mark.parametrize("w", [-0.5, float("nan"), float("inf"), 100.5])
def test_bad_guidance(w):
    with pytest.raises(UserError, match="--guidance must be a finite number in \\[0, 100\\]"):
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
