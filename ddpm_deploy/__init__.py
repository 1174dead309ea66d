"""ddpm-deploy: train a small DDPM, export it to ONNX, sample it without torch.

    import ddpm_deploy

    model = ddpm_deploy.load("fashion_mnist")
    images, labels = model.sample(16, seed=0, classes="sneaker")

The public names: `load`, `Model`, `Plan` (runtime/api.py) and `UserError`, the one exception type.
This module stays import-light on purpose: the runtime must never pull in torch (docs/ARCHITECTURE.md,
invariant 2), and `import ddpm_deploy` loads nothing heavy; `load` and `Model` import the runtime
(numpy, onnxruntime) on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ddpm_deploy.errors import UserError

if TYPE_CHECKING:
    from ddpm_deploy.runtime.api import Model, Plan, load

__version__ = "0.1.0"
__all__ = ["Model", "Plan", "UserError", "__version__", "load"]


def __getattr__(name: str):
    if name in ("load", "Model", "Plan"):
        import ddpm_deploy.runtime.api

        return getattr(ddpm_deploy.runtime.api, name)
    raise AttributeError(f"module 'ddpm_deploy' has no attribute {name!r}")
