"""ONNX Runtime denoiser: reads the model card from the ONNX file's metadata_props."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from ddpm_deploy.runtime.backends import Denoiser

from ddpm_deploy.card import num_classes, validate_card
from ddpm_deploy.errors import UserError

CARD_KEY = "ddpm_deploy.card"
REEXPORT = "re-export it with `ddpm-deploy export CHECKPOINT -o model.onnx`"
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
# (name, element type, shape with the batch axis symbolic); class-conditional models add LABEL_INPUT
EXPECTED_INPUTS = [("x", "tensor(float)", [1, 28, 28]), ("t", "tensor(int64)", [])]
LABEL_INPUT = ("y", "tensor(int64)", [])


def _check_io(session: ort.InferenceSession, path: Path, card: dict | None = None) -> None:
    """Inputs x, t (and y for a class-conditional card; either form before the card is read)."""
    got = [(i.name, i.type, list(i.shape[1:])) for i in session.get_inputs()]
    outs = [(o.name, o.type, list(o.shape[1:])) for o in session.get_outputs()]
    want_out = [("eps", "tensor(float)", [1, 28, 28])]
    conditional = [EXPECTED_INPUTS + [LABEL_INPUT]]
    allowed = [EXPECTED_INPUTS] if card is None or not num_classes(card) else []
    allowed += conditional if card is None or num_classes(card) else []
    if got not in allowed or outs != want_out:
        kind = "class-conditional " if card is not None and num_classes(card) else ""
        raise UserError(
            f"{path} has inputs {got} and outputs {outs}; a {kind}ddpm-deploy denoiser takes "
            f"x: float32[N,1,28,28], t: int64[N]{', y: int64[N]' if kind else ' (, y: int64[N])'} "
            f"and returns eps: float32[N,1,28,28]; {REEXPORT}"
        )


def card_of(session: ort.InferenceSession, path: Path) -> dict:
    _check_io(session, path)
    meta = session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in meta:
        raise UserError(f"{path} lacks model metadata [{CARD_KEY!r}]; {REEXPORT}")
    card = validate_card(json.loads(meta[CARD_KEY]), str(path), REEXPORT)
    _check_io(session, path, card)
    return card


def _plain_session(path: Path) -> ort.InferenceSession:
    """A CPU session without graph optimisation: cheap, for reading a file's inputs and card."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises its own pybind types for bad files
        raise UserError(
            f"{path} is not a loadable ONNX model ({str(e)[:200]}); {REEXPORT}"
        ) from None


def read_card(path: str | Path) -> dict:
    """The model card of an exported ONNX file (checked like a model the sampler would run)."""
    path = Path(path)
    return card_of(_plain_session(path), path)


# TensorRT provider profile: any batch up to 2000 rows (sample --batch 1000 with guidance)
TRT_EP_BATCH = (1, 100, 2000)


def provider_list(provider: str, path: Path, inputs: tuple[str, ...] = ("x", "t")) -> list:
    """ONNX Runtime's providers, best first: TensorRT, then CUDA, then the CPU for what they lack.

    The TensorRT provider caches its engines beside the model (else it rebuilds them in every new
    session) and builds in fp32: fp16 goes through the fp16 ONNX model, whose cost is measured.
    """
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def shapes(n: int) -> str:
        return ",".join(f"{name}:{n}x1x28x28" if name == "x" else f"{name}:{n}" for name in inputs)

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


def session_options(threads: int | None = None) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    return opts


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
        inputs = ("x", "t")
        if provider == "tensorrt":  # its shape profile names every input: read them first
            inputs = tuple(i.name for i in _plain_session(path).get_inputs())
        providers = provider_list(provider, path, inputs)
        if wanted != "CPUExecutionProvider" and hasattr(ort, "preload_dlls"):
            # onnxruntime-gpu 1.21+ finds pip-installed CUDA/cuDNN only after this; without it the
            # GPU provider fails to load and the session falls back to the CPU
            ort.preload_dlls()
        try:
            self.session = ort.InferenceSession(
                str(path), session_options(threads), providers=providers
            )
        except Exception as e:  # noqa: BLE001 - ORT raises its own pybind types for bad files
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UserError(
                f"{path} is not a loadable ONNX model ({first[:200]}); {REEXPORT}"
            ) from None
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
