import math

import numpy as np
import pytest
import torch
from ddpm_deploy.train.diffusion import ForwardProcess
from ddpm_deploy.train.reference_unet import ReferenceUNet, SinusoidalEmbedding

from ddpm_deploy.schedule import Schedule
from tests.helpers import count_trainable


def test_trainable_parameter_count_matches_reference():
    # the article: 491,172 without the LayerNorm the article creates in b_out and never uses.
    assert count_trainable(ReferenceUNet()) == 491_172


@pytest.mark.parametrize("batch", [1, 16, 100])
def test_forward_any_batch(batch):
    model = ReferenceUNet().eval()
    with torch.inference_mode():
        out = model(torch.randn(batch, 1, 28, 28), torch.randint(0, 1000, (batch,)))
    assert out.shape == (batch, 1, 28, 28)
    assert torch.isfinite(out).all()


def test_embedding_is_the_standard_sinusoid():
    d = 100
    emb = SinusoidalEmbedding(d)(torch.tensor([0, 1, 37, 999]))
    for row, t in enumerate([0, 1, 37, 999]):
        for i in (0, 1, 10, 49):
            w = 1.0 / 10000 ** (2 * i / d)
            assert emb[row, i].item() == pytest.approx(math.sin(t * w), abs=2e-4)
            assert emb[row, d // 2 + i].item() == pytest.approx(math.cos(t * w), abs=2e-4)


def test_forward_process_mean_and_variance():
    schedule = Schedule()
    fp = ForwardProcess(schedule)
    g = torch.Generator().manual_seed(0)
    n = 20000
    x0 = torch.full((n, 1, 28, 28), 0.6)
    for t_val in (0, 250, 999):
        t = torch.full((n,), t_val)
        xt = fp.q_sample(x0, t, torch.randn(x0.shape, generator=g))
        ab = schedule.alpha_bars[t_val]
        # mean sqrt(ab) x0, variance 1 - ab; n*784 draws give a standard error far below these bounds
        assert xt.mean().item() == pytest.approx(math.sqrt(ab) * 0.6, abs=2e-3)
        assert xt.var().item() == pytest.approx(1 - ab, rel=5e-3, abs=1e-6)


def test_forward_process_matches_numpy_forward_picture():
    from ddpm_deploy.forward import q_sample

    schedule = Schedule()
    x0 = np.random.default_rng(0).uniform(-1, 1, (4, 1, 28, 28)).astype(np.float32)
    eps = np.random.default_rng(1).standard_normal(x0.shape).astype(np.float32)
    t = 400
    torch_xt = ForwardProcess(schedule).q_sample(
        torch.from_numpy(x0), torch.full((4,), t), torch.from_numpy(eps)
    )
    np.testing.assert_allclose(torch_xt.numpy(), q_sample(x0, t, eps, schedule), atol=1e-6)
