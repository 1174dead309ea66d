"""The torch device a `--device` option names. Torch is imported inside the function, so the core
stays importable where torch is not installed (docs/ARCHITECTURE.md, invariant 2)."""

from __future__ import annotations

from ddpm_deploy.errors import UserError


def pick_device(name: str):
    """``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu`` or ``cuda``, as a torch.device."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r}; choose from ['auto', 'cpu', 'cuda']")
    return torch.device(name)
