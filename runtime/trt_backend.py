"""TensorRT denoiser: a serialized engine plus its JSON sidecar, run with the name-based tensor API.

Tensor names, dtypes and sizes come from the engine itself (an engine may take ``t`` as int32, as
TensorRT 8.6 made them), and inputs are cast to what it declares. Device memory comes from
cuda-python (no torch); buffers are allocated once per batch size and reused for every step.
UNVERIFIED: written against the TensorRT 10/11 Python API and cuda-python 12/13; no machine this
project is built on has TensorRT (see README, "TensorRT and Jetson").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ddpm_deploy.runtime.backends import Denoiser

from ddpm_deploy.engine_cache import INSTALL_TRT, check_sidecar, read_sidecar
from ddpm_deploy.errors import UserError
from ddpm_deploy.gpu import check, cudart, current_gpu, has_cuda_python, has_module, import_tensorrt


def row_elements(image: tuple[int, ...]) -> dict[str, int]:
    """Elements per image of each tensor: x and eps are one image of the card's shape."""
    pixels = int(np.prod(image))
    return {"x": pixels, "t": 1, "y": 1, "eps": pixels}


@dataclass(frozen=True)
class IoTensor:
    name: str
    is_input: bool
    dtype: np.dtype


def engine_io(engine, trt) -> dict[str, IoTensor]:
    """The engine's I/O tensors as it declares them (name, direction, numpy dtype)."""
    io = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        io[name] = IoTensor(name, is_input, np.dtype(trt.nptype(engine.get_tensor_dtype(name))))
    return io


def check_io(io: dict[str, IoTensor], conditional: bool, path: Path) -> None:
    want_in = {"x", "t", "y"} if conditional else {"x", "t"}
    got_in = {n for n, t in io.items() if t.is_input}
    got_out = {n for n, t in io.items() if not t.is_input}
    if got_in != want_in or got_out != {"eps"}:
        raise UserError(
            f"{path} has inputs {sorted(got_in)} and outputs {sorted(got_out)}; a ddpm-deploy engine "
            f"takes {sorted(want_in)} and returns ['eps']: rebuild it with `ddpm-deploy build-engine`"
        )
    if io["x"].dtype != np.float32 or io["eps"].dtype != np.float32:
        raise UserError(
            f"{path} takes x as {io['x'].dtype} and returns eps as {io['eps'].dtype}; ddpm-deploy "
            "engines keep fp32 inputs and outputs: rebuild it with `ddpm-deploy build-engine`"
        )
    for name in want_in - {"x"}:
        if io[name].dtype.kind != "i":
            raise UserError(f"{path} takes {name} as {io[name].dtype}, not an integer: rebuild it")


class TrtDenoiser(Denoiser):
    backend = "trt"

    def __init__(self, path: Path, **_ignored):
        if path.suffix == ".onnx":
            raise UserError(
                f"the trt backend runs a TensorRT engine, not {path.name}; build one on this machine "
                f"with `ddpm-deploy build-engine {path}` and pass the .engine file"
            )
        if not (has_module("tensorrt") and has_cuda_python()):
            raise UserError(f"the trt backend needs TensorRT and cuda-python: {INSTALL_TRT}")
        trt = import_tensorrt()

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
        self.io = engine_io(self.engine, trt)
        check_io(self.io, bool(self.num_classes), path)
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise UserError(
                f"TensorRT could not create an execution context for {path} (usually out of GPU "
                "memory): close other GPU programs or rebuild with a smaller --max-batch"
            )
        self._cuda = cudart()
        self.stream = check(self._cuda.cudaStreamCreate(), "cudaStreamCreate")
        self._buffers: dict[int, tuple[dict[str, int], np.ndarray]] = {}

    def _buffers_for(self, n: int) -> tuple[dict[str, int], np.ndarray]:
        if n not in self._buffers:
            self.profile.check(n)
            ptrs, image = {}, self.image_shape
            row = row_elements(image)
            for name, tensor in self.io.items():
                size = n * row[name] * tensor.dtype.itemsize
                ptrs[name] = int(check(self._cuda.cudaMalloc(size), f"cudaMalloc({size} bytes)"))
            self._buffers[n] = (ptrs, np.empty((n, *image), dtype=self.io["eps"].dtype))
        return self._buffers[n]

    def __call__(self, x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        cuda, n = self._cuda, len(x)
        ptrs, out = self._buffers_for(n)
        # cast every input to the dtype the engine declares (t may be int32 in older engines)
        feeds = {
            name: np.ascontiguousarray(value, dtype=self.io[name].dtype)
            for name, value in self.inputs(x, t, y).items()
        }
        ctx = self.context
        for name, value in feeds.items():
            if not ctx.set_input_shape(name, value.shape):
                raise UserError(
                    f"TensorRT refused shape {value.shape} for input {name!r} of {self.path}; "
                    "rebuild the engine with a profile that covers it (--max-batch)"
                )
        for name, ptr in ptrs.items():
            ctx.set_tensor_address(name, ptr)
        h2d = cuda.cudaMemcpyKind.cudaMemcpyHostToDevice
        for name, value in feeds.items():  # the host arrays live until the synchronize below
            check(
                cuda.cudaMemcpyAsync(ptrs[name], value.ctypes.data, value.nbytes, h2d, self.stream),
                f"copying {name} to the GPU",
            )
        if not ctx.execute_async_v3(self.stream):
            raise UserError("TensorRT execute_async_v3 failed; see the TensorRT log above")
        d2h = cuda.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(
            cuda.cudaMemcpyAsync(out.ctypes.data, ptrs["eps"], out.nbytes, d2h, self.stream),
            "copying eps from the GPU",
        )
        check(cuda.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        return out.astype(np.float32, copy=True)

    def close(self) -> None:
        """Free the device buffers and the stream (also done when the denoiser is collected)."""
        cuda = getattr(self, "_cuda", None)
        if cuda is None:
            return
        for ptrs, _ in getattr(self, "_buffers", {}).values():
            for ptr in ptrs.values():
                cuda.cudaFree(ptr)
        self._buffers = {}
        if getattr(self, "stream", None) is not None:
            cuda.cudaStreamDestroy(self.stream)
            self.stream = None

    def __del__(self):
        self.close()
