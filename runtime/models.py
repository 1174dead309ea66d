"""Models shipped inside the package, so `ddpm-deploy sample` works on a fresh install."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ddpm_deploy.card import DATASETS
from ddpm_deploy.errors import UserError


def packaged(filename: str) -> Path:
    """A file in the package's models/ folder (it may be missing from a stripped install)."""
    return Path(str(resources.files("ddpm_deploy") / "models" / filename))


def shipped_model(dataset: str) -> Path:
    name = DATASETS[dataset.lower().replace("-", "_")]
    path = packaged(f"{name}.onnx")
    if not path.is_file():
        raise UserError(
            f"this install ships no {name} model; pass --model PATH to an exported .onnx"
        )
    return path


def resolve_model(model: str) -> Path:
    """A dataset name (fashion_mnist, fashion, mnist) picks the shipped model; anything else is a path."""
    if model.lower().replace("-", "_") in DATASETS and not Path(model).exists():
        return shipped_model(model)
    return Path(model)
