"""ONNX Runtime denoiser: reads the model card from the ONNX file's metadata_props."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from ddpm_deploy.runtime.backends import Denoiser

from ddpm_deploy.card import image_shape
from ddpm_deploy.errors import UserError
from ddpm_deploy.onnx_model import card_of, open_session, plain_session, session_options

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
# TensorRT provider profile: any batch up to 2000 rows (sample --batch 1000 with guidance)
TRT_EP_BATCH = (1, 100, 2000)


def provider_list(
    provider: str,
    path: Path,
    inputs: tuple[str, ...] = ("x", "t"),
    image: tuple[int, int, int] | None = None,
) -> list:
    """ONNX Runtime's providers, best first: TensorRT, then CUDA, then the CPU for what they lack.

    The TensorRT provider caches its engines beside the model (else it rebuilds them in every new
    session) and builds in fp32: fp16 goes through the fp16 ONNX model, whose cost is measured.
    Its shape profile names ``image``, the card's (C, H, W) (required for ``tensorrt``).
    """
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    if image is None:
        raise ValueError("the TensorRT provider's profile needs the model's image shape")
    row = "x".join(map(str, image))

    def shapes(n: int) -> str:
        return ",".join(f"{name}:{n}x{row}" if name == "x" else f"{name}:{n}" for name in inputs)

    lo, opt, hi = TRT_EP_BATCH
    options = {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(path.parent / "ort_trt_cache"),
        "trt_timing_cache_enable": True,
        "trt_fp16_enable": False,
        "trt_profile_min_shapes": shapes(lo),
        "trt_profile_opt_shapes": shapes(opt),
        "trt_profile_max_shapes": shapes(hi),
    }
    return [("TensorrtExecutionProvider", options), "CUDAExecutionProvider", "CPUExecutionProvider"]


class OrtDenoiser(Denoiser):
    backend = "ort"

    def __init__(
        self,
        path: Path,
        provider: str = "cpu",
        allow_cpu_fallback: bool = False,
        threads: int | None = None,
    ):
        if provider not in PROVIDERS:
            raise UserError(
                f"unknown ONNX Runtime provider {provider!r}; choose from {sorted(PROVIDERS)}"
            )
        wanted = PROVIDERS[provider]
        available = ort.get_available_providers()
        fallback_hint = "or pass --allow-cpu-fallback to run on the CPU"
        if wanted not in available and not allow_cpu_fallback:
            raise UserError(
                f"ONNX Runtime has no {wanted} (available: {available}); the installed onnxruntime "
                f"is probably the CPU build: install onnxruntime-gpu instead (one per environment), "
                f"{fallback_hint}"
            )
        inputs, image = ("x", "t"), None
        if provider == "tensorrt":  # its shape profile names every input and the image shape
            plain = plain_session(path)
            inputs = tuple(i.name for i in plain.get_inputs())
            image = image_shape(card_of(plain, path))
        providers = provider_list(provider, path, inputs, image)
        if wanted != "CPUExecutionProvider" and hasattr(ort, "preload_dlls"):
            # onnxruntime-gpu 1.21+ finds pip-installed CUDA/cuDNN only after this; without it the
            # GPU provider fails to load and the session falls back to the CPU
            ort.preload_dlls()
        self.session = open_session(path, options=session_options(threads), providers=providers)
        actual = self.session.get_providers()[0]
        if actual != wanted and not allow_cpu_fallback:
            raise UserError(
                f"ONNX Runtime could not start {wanted} and fell back to {actual}; its CUDA/cuDNN "
                f"libraries are probably missing or mismatched (run `ddpm-deploy doctor`), {fallback_hint}"
            )
        self.path, self.device = path, actual
        self.card = card_of(self.session, path)

    def __call__(self, x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        return self.session.run(["eps"], self.inputs(x, t, y))[0]

    def run_graph(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["x0"], feeds)[0]
