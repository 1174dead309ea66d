"""Whole sampling trajectories: torch reference vs ONNX Runtime, fed identical noise.

Max |x_torch - x_ort| over the final images (n=4, seed 123), measured on the 2-core CI machine:
  20-epoch Fashion-MNIST model: DDPM-1000 5.0e-06, DDIM-50 4.4e-06
  random initialisation:        DDPM-1000 7.2e-07, DDIM-50 1.2e-06
The bounds leave a 10x margin: the x0 clip inside each step is not smooth, so a pixel that sits on
the clip boundary can amplify per-step differences of ~1e-6 (see tests/export/test_export.py), and
other CPUs' kernels round differently. Run with -s to print the measured values.
"""

import numpy as np
import pytest
from ddpm_deploy.runtime import load_denoiser, sample

# trains, exports, serves or drives a browser: outside the quick loop (`pytest -m "not slow"`)
pytestmark = pytest.mark.slow

DDPM_1000_BOUND = 5e-5
DDIM_50_BOUND = 5e-5


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
