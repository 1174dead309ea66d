"""TensorRT denoiser: a serialized engine plus its JSON sidecar, run by Polygraphy's ``TrtRunner``.

NVIDIA's tested loader and runner own the engine's deserialization, device buffers, shapes and
stream (Polygraphy is in the trt extras); this module checks what ddpm-deploy needs around them:
the engine cache's sidecar (TensorRT version, GPU, batch profile), the engine's declared I/O (an
engine may take ``t`` as int32, as TensorRT 8.6 made them: inputs are cast to what it declares),
and one-line errors. UNVERIFIED: written against Polygraphy 0.49+ and TensorRT 10/11; no machine
this project is built on has TensorRT (see docs/TENSORRT.md).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ddpm_deploy.hardware.engine_cache import INSTALL_TRT, check_sidecar, read_sidecar
from ddpm_deploy.hardware.gpu import current_gpu, has_module, import_tensorrt
from ddpm_deploy.runtime.backends import Denoiser

from ddpm_deploy.errors import UserError


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
        if not (has_module("tensorrt") and has_module("polygraphy")):
            raise UserError(f"the trt backend needs TensorRT and Polygraphy: {INSTALL_TRT}")
        trt = import_tensorrt()
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner

        record = read_sidecar(path)
        gpu = current_gpu()
        check_sidecar(path, record, trt.__version__, gpu.name, gpu.compute_capability)
        self.profile = record["key"]["profile"]
        self.card, self.path = record["card"], path
        self.device = f"TensorRT {trt.__version__} on {gpu.name}"
        with polygraphy_errors(
            f"{path} is not a TensorRT engine this TensorRT can load, or is truncated; rebuild it with `ddpm-deploy build-engine MODEL.onnx --rebuild`"
        ):
            self.engine = EngineFromBytes(path.read_bytes())()
        if self.engine is None:
            raise UserError(
                f"{path} is not a TensorRT engine, or is truncated; rebuild it with "
                "`ddpm-deploy build-engine MODEL.onnx --rebuild`"
            )
        self.io = engine_io(self.engine, trt)
        check_io(self.io, bool(self.num_classes), path)
        self.runner = TrtRunner(self.engine)  # the engine stays ours (freed with this object)
        with polygraphy_errors(
            f"TensorRT could not create an execution context for {path} (usually out of GPU memory): close other GPU programs or rebuild with a smaller --max-batch"
        ):
            self.runner.activate()

    def __call__(self, x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        self.profile.check(len(x))  # one line naming the engine's batch range
        # cast every input to the dtype the engine declares (t may be int32 in older engines)
        feeds = {
            name: np.ascontiguousarray(value, dtype=self.io[name].dtype)
            for name, value in self.inputs(x, t, y).items()
        }
        with polygraphy_errors(
            f"TensorRT failed to run {self.path} on inputs of shapes {[v.shape for v in feeds.values()]}; rebuild the engine with a profile that covers them (--max-batch)"
        ):
            eps = self.runner.infer(feeds)["eps"]
        return np.array(eps, dtype=np.float32, copy=True).reshape(x.shape)

    def close(self) -> None:
        """Free the runner's device buffers, context and stream (also when collected)."""
        runner = getattr(self, "runner", None)
        if runner is not None and getattr(runner, "is_active", False):
            runner.deactivate()
        self.runner = None

    def __del__(self):
        self.close()


@contextlib.contextmanager
def polygraphy_errors(message: str):
    """Polygraphy reports failures as PolygraphyException (after logging them): one line instead."""
    try:
        yield
    except Exception as e:
        if type(e).__name__ != "PolygraphyException":
            raise
        raise UserError(
            f"{message} ({str(e).strip().splitlines()[-1] if str(e).strip() else 'see the log above'})"
        ) from None
