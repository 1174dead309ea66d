"""PyTorch reference denoiser: runs the checkpoint's model eagerly (needs the `train` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ddpm_deploy.runtime.backends import Denoiser

from ddpm_deploy.errors import UserError


class TorchDenoiser(Denoiser):
    backend = "torch"

    def __init__(
        self, path: Path, device: str = "cpu", weights: str = "auto", threads: int | None = None
    ):
        if path.suffix == ".onnx":
            raise UserError(
                f"the torch backend reads a training checkpoint (.safetensors), not {path.name}; "
                "use --backend ort for ONNX files"
            )
        import torch
        from ddpm_deploy.train.checkpoint import load_model, resolve

        from ddpm_deploy.device import pick_device

        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        device = pick_device(device)
        # The reference backend computes in true fp32: no TF32 convolutions on Ampere and later.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        model, self.card = load_model(path, weights=weights)
        self.model = model.to(device).eval()
        self.path, self.device = resolve(path), str(device)

    def __call__(self, x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            args = [torch.from_numpy(v).to(self.device) for v in self.inputs(x, t, y).values()]
            return self.model(*args).cpu().numpy()
