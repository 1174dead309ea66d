"""TensorRT denoiser: a serialized engine plus its JSON sidecar, run with the name-based tensor API.

Device memory comes from cuda-python (no torch); buffers are allocated once per batch size and
reused for every step of the sampling loop. UNVERIFIED: written against the TensorRT 10 Python API
and cuda-python; no machine this project is built on has TensorRT (see README, "TensorRT and Jetson").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ddpm_deploy.runtime.backends import Denoiser
from ddpm_deploy.runtime.engine_cache import INSTALL_TRT, check_sidecar, read_sidecar

from ddpm_deploy.errors import UserError
from ddpm_deploy.gpu import check, cudart, current_gpu, has_module

IMAGE = (1, 28, 28)


class TrtDenoiser(Denoiser):
    backend = "trt"

    def __init__(self, path: Path, **_ignored):
        if path.suffix == ".onnx":
            raise UserError(
                f"the trt backend runs a TensorRT engine, not {path.name}; build one on this machine "
                f"with `ddpm-deploy build-engine {path}` and pass the .engine file"
            )
        if not (has_module("tensorrt") and has_module("cuda")):
            raise UserError(f"the trt backend needs TensorRT and cuda-python: {INSTALL_TRT}")
        import tensorrt as trt

        record = read_sidecar(path)
        gpu = current_gpu()
        check_sidecar(path, record, trt.__version__, gpu.name, gpu.compute_capability)
        self.profile = record["key"]["profile"]
        self.card, self.path = record["card"], path
        self.device = f"TensorRT {trt.__version__} on {gpu.name}"

        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise UserError(
                f"{path} is not a TensorRT engine, or is truncated; rebuild it with "
                "`ddpm-deploy build-engine MODEL.onnx --rebuild`"
            )
        self.context = self.engine.create_execution_context()
        self._cuda = cudart()
        self.stream = check(self._cuda.cudaStreamCreate())
        self._buffers: dict[int, tuple[dict[str, int], np.ndarray]] = {}

    def _buffers_for(self, n: int) -> tuple[dict[str, int], np.ndarray]:
        if n not in self._buffers:
            self.profile.check(n)
            sizes = {"x": n * 784 * 4, "t": n * 8, "eps": n * 784 * 4}
            if self.num_classes:
                sizes["y"] = n * 8
            ptrs = {name: int(check(self._cuda.cudaMalloc(size))) for name, size in sizes.items()}
            self._buffers[n] = (ptrs, np.empty((n, *IMAGE), dtype=np.float32))
        return self._buffers[n]

    def __call__(self, x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        cuda, n = self._cuda, len(x)
        ptrs, out = self._buffers_for(n)
        feeds = {
            "x": np.ascontiguousarray(x, dtype=np.float32),
            **{
                k: np.ascontiguousarray(v, np.int64)
                for k, v in self.inputs(x, t, y).items()
                if k != "x"
            },
        }
        ctx = self.context
        for name, value in feeds.items():
            ctx.set_input_shape(name, value.shape)
        for name, ptr in ptrs.items():
            ctx.set_tensor_address(name, ptr)
        h2d = cuda.cudaMemcpyKind.cudaMemcpyHostToDevice
        for name, value in feeds.items():  # the host arrays live until the synchronize below
            check(
                cuda.cudaMemcpyAsync(ptrs[name], value.ctypes.data, value.nbytes, h2d, self.stream)
            )
        if not ctx.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed; see the TensorRT log above")
        d2h = cuda.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(cuda.cudaMemcpyAsync(out.ctypes.data, ptrs["eps"], out.nbytes, d2h, self.stream))
        check(cuda.cudaStreamSynchronize(self.stream))
        return out.copy()

    def __del__(self):
        cuda = getattr(self, "_cuda", None)
        for ptrs, _ in getattr(self, "_buffers", {}).values():
            for ptr in ptrs.values():
                cuda.cudaFree(ptr)
