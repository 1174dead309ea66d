"""The torch-free runtime: numpy samplers around a denoiser backend: ONNX Runtime, OpenVINO,
TensorRT, a Triton server, or torch for a training checkpoint (runtime/backends.py BACKENDS).

Nothing here imports torch at module level (docs/ARCHITECTURE.md, invariant 2); backends load lazily.
"""

from ddpm_deploy.runtime.backends import BACKENDS, Denoiser, load_denoiser
from ddpm_deploy.runtime.samplers import SAMPLERS, ddim_step, ddpm_step, sample
from ddpm_deploy.runtime.timesteps import ddim_timesteps

__all__ = [
    "BACKENDS",
    "SAMPLERS",
    "Denoiser",
    "load_denoiser",
    "sample",
    "ddpm_step",
    "ddim_step",
    "ddim_timesteps",
]
