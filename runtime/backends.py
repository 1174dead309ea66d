"""One denoiser interface for every backend (DESIGN.md, invariant 3).

``eps = denoiser(x, t)`` with x float32[N,1,28,28] and t int64[N], returning float32[N,1,28,28].
Each backend module is imported only when chosen, so the ONNX Runtime path never imports torch.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np

from ddpm_deploy.card import card_schedule
from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

# name -> (module, class): imported lazily, as Polygraphy's runners are.
BACKENDS = {
    "ort": ("ddpm_deploy.runtime.ort_backend", "OrtDenoiser"),
    "torch": ("ddpm_deploy.runtime.torch_backend", "TorchDenoiser"),
    "trt": ("ddpm_deploy.runtime.trt_backend", "TrtDenoiser"),
}


class Denoiser:
    """Base class: a callable noise predictor that knows its model card."""

    backend: str = ""
    card: dict
    path: Path
    device: str = "cpu"  # what actually runs it, e.g. 'CPUExecutionProvider' or 'cuda:0'

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def schedule(self) -> Schedule:
        return card_schedule(self.card)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.card["image"]["shape"])


def load_denoiser(backend: str, path: str | os.PathLike, **options) -> Denoiser:
    """Build the named backend's denoiser for the model file at ``path``."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose from {sorted(BACKENDS)}")
    path = Path(path)
    if not path.exists():
        raise UserError(f"no model file at {path}; pass an existing --model")
    module, cls = BACKENDS[backend]
    return getattr(importlib.import_module(module), cls)(path, **options)
