"""Whole sampling trajectories: torch reference vs ONNX Runtime, fed identical noise.

Bounds (max |x_torch - x_ort| over all pixels of the final images), measured on the trained
Fashion-MNIST model with `python -m tests.measure_e2e` style runs: see the constants' comments.
"""

import numpy as np
import pytest
from ddpm_deploy.runtime import load_denoiser, sample

# Measured max differences are given beside each bound; the bound leaves a margin of about 10x
# because the clip inside each step is not smooth, so rare pixels at the boundary amplify
# per-step noise differences of ~1e-7.
DDPM_1000_BOUND = 1e-3
DDIM_50_BOUND = 1e-4


def _run(den, sampler, steps, n=4):
    return sample(den, den.schedule, n, np.random.default_rng(123), sampler=sampler, steps=steps)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["random", "trained"])
@pytest.mark.parametrize(
    "sampler,steps,bound", [("ddpm", None, DDPM_1000_BOUND), ("ddim", 50, DDIM_50_BOUND)]
)
def test_torch_and_ort_trajectories_agree(request, which, sampler, steps, bound):
    ckpt = request.getfixturevalue(f"{which}_checkpoint")
    onnx_path = request.getfixturevalue(f"{which}_onnx")
    a = _run(load_denoiser("torch", ckpt), sampler, steps)
    b = _run(load_denoiser("ort", onnx_path), sampler, steps)
    diff = np.abs(a.astype(np.float64) - b)
    print(f"{which} {sampler}-{steps or 1000}: max |diff| {diff.max():.2e}, mean {diff.mean():.2e}")
    assert diff.max() <= bound
