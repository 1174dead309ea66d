"""OpenVINO denoiser: the same ONNX file (fp32, or an int8 QDQ file) on Intel/AMD CPUs, torch-free.

``precision`` is OpenVINO's inference precision hint: fp32, or bf16 where the CPU has BF16
instructions (AVX-512 BF16 or AMX). What each precision costs in quality is measured, not assumed:
docs/BENCHMARKS.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ddpm_deploy.hardware.gpu import cpu_precisions
from ddpm_deploy.runtime.backends import Denoiser

from ddpm_deploy.errors import UserError
from ddpm_deploy.onnx_model import read_card

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}
INSTALL = "pip install 'ddpm-deploy[openvino]'"
OPENVINO_INT_LIMIT = 1 << 24


class OpenVinoDenoiser(Denoiser):
    backend = "openvino"

    def __init__(self, path: Path, precision: str = "fp32", threads: int | None = None, **_ignored):
        if path.suffix != ".onnx":
            raise UserError(f"the openvino backend reads an .onnx file, not {path.name}")
        if precision not in PRECISIONS:
            raise UserError(f"unknown --precision {precision!r}; choose from {sorted(PRECISIONS)}")
        try:
            import openvino as ov
        except ImportError:
            raise UserError(f"the openvino backend needs the openvino package: {INSTALL}") from None
        self.card, self.path = read_card(path), path
        core = ov.Core()
        offered = cpu_precisions()
        if precision == "bf16" and "BF16" not in offered:
            raise UserError(
                f"--precision bf16: this CPU offers {offered} (no BF16: it needs AVX-512 BF16 or "
                "AMX); use --precision fp32"
            )
        config = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision]}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.precision = precision
        self.device = f"OpenVINO {ov.__version__} CPU {precision}"

    def __call__(self, x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        return self._infer(self.inputs(x, t, y), "eps")

    def _infer(self, feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
        result = self.request.infer(feeds)
        # the request owns its output buffer and reuses it on the next call: copy out
        return np.array(result[self.compiled.output(output)], dtype=np.float32, copy=True)

    def run_graph(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        # its CPU plugin runs int64 as int32 and divides integers in float32 (openvino#37766)
        big = [k for k in ("seed", "index") if k in feeds and feeds[k].max() >= OPENVINO_INT_LIMIT]
        if big:
            raise UserError(
                f"--backend openvino runs a sampler graph's {' and '.join(big)} below 2^24 only "
                "(its CPU plugin divides integers in float32); use a smaller --seed or --backend ort"
            )
        return self._infer(feeds, "x0")
