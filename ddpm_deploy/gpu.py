"""What GPU and TensorRT this process sees, via cuda-python and tensorrt; both imported lazily.

Kept torch-free and import-light: `doctor`, the engine cache and the trt backend all ask here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


def cudart():
    """cuda-python's runtime module (its import path moved in cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime  # older cuda-python
    return runtime


def check(result):
    """cuda-python returns (err, *values); raise on error, return the values."""
    err, *values = result
    if int(err) != 0:
        raise RuntimeError(f"CUDA call failed: {err}")
    return values[0] if len(values) == 1 else tuple(values)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str


def current_gpu(device: int = 0) -> GpuInfo:
    prop = check(cudart().cudaGetDeviceProperties(device))
    name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
    return GpuInfo(name=name.strip("\x00 "), compute_capability=f"{prop.major}.{prop.minor}")


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def tensorrt_version() -> str | None:
    """TensorRT's version, or None where it is absent or its bindings fail to import."""
    if not has_module("tensorrt"):
        return None
    try:
        import tensorrt as trt

        return trt.__version__
    except Exception:  # noqa: BLE001 - JetPack's bindings may be present but broken
        return None
