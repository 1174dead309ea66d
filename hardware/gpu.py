"""What accelerators this process sees: the GPU and TensorRT via cuda-python and tensorrt, the
CPU's precisions via OpenVINO; each imported lazily.

Kept torch-free and import-light: `doctor`, the engine cache and the trt backend all ask here.
UNVERIFIED on hardware (no GPU with TensorRT where this was written): see docs/TENSORRT.md.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ddpm_deploy.errors import UserError

MIN_TENSORRT = 10  # strongly typed networks and the name-based tensor API
CUDA_PYTHON_MODULES = ("cuda.bindings", "cuda.cudart")  # new layout (12.6+), old layout


class CudaError(UserError):
    """A CUDA runtime call failed; the message names the call, the error and what to check."""


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def has_cuda_python() -> bool:
    """cuda-python's runtime bindings, not merely a ``cuda`` namespace (cuda-pathfinder makes one)."""
    return any(has_module(m) for m in CUDA_PYTHON_MODULES)


def cudart():
    """cuda-python's runtime module (its import path moved in cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # older cuda-python
        except ImportError:
            raise UserError(
                "cuda-python's runtime bindings are not importable; install the trt-cu12 or "
                "trt-cu13 extra that matches your driver (`ddpm-deploy doctor` shows it)"
            ) from None
    return runtime


def _versions(rt) -> str:
    """'driver X, runtime Y' as CUDA encodes them (12060 -> 12.6), or what could be read."""

    def fmt(call) -> str:
        try:
            err, v = call()
            return f"{v // 1000}.{v % 1000 // 10}" if int(err) == 0 else "unknown"
        except Exception:  # noqa: BLE001 - only used to word an error
            return "unknown"

    return f"driver supports CUDA {fmt(rt.cudaDriverGetVersion)}, cuda-python's runtime is CUDA {fmt(rt.cudaRuntimeGetVersion)}"


def check(result, call: str = "CUDA call"):
    """cuda-python returns (err, *values); raise a one-line CudaError, else return the values."""
    err, *values = result
    if int(err) != 0:
        rt = cudart()
        hint = ""
        name = getattr(err, "name", str(err))
        key = name.lower().replace("_", "")
        if "driver" in key:  # cudaErrorInsufficientDriver and kin
            hint = f" ({_versions(rt)}): install the cuda-python/TensorRT build of your driver's CUDA major"
        elif "nodevice" in key:
            hint = ": no CUDA GPU is visible (on Jetson, run the container with --group-add video)"
        raise CudaError(f"{call} failed with {name}{hint}")
    return values[0] if len(values) == 1 else tuple(values)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str


def current_gpu(device: int = 0) -> GpuInfo:
    prop = check(cudart().cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
    return GpuInfo(name=name.strip("\x00 "), compute_capability=f"{prop.major}.{prop.minor}")


def nvidia_smi() -> tuple[list[str], str | None]:
    """(GPU lines, error): nvidia-smi's answer, trusted only when it exits 0."""
    if not shutil.which("nvidia-smi"):
        return [], None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as e:
        return [], f"nvidia-smi did not run: {e}"
    if out.returncode != 0:
        text = (out.stdout + out.stderr).strip().splitlines()
        return [], f"nvidia-smi exited {out.returncode}: {text[0] if text else 'no output'}"
    return [line.strip() for line in out.stdout.splitlines() if line.strip()], None


def gpu_evidence() -> list[str]:
    """Signs that this machine has an NVIDIA GPU, whether or not CUDA works here."""
    signs = []
    if Path("/dev/nvidia0").exists():
        signs.append("/dev/nvidia0")
    if Path("/etc/nv_tegra_release").is_file():
        signs.append("/etc/nv_tegra_release (Jetson)")
    if nvidia_smi()[0]:
        signs.append("nvidia-smi lists a GPU")
    return signs


def cpu_precisions() -> list[str]:
    """What OpenVINO says this CPU can compute in (e.g. ['BF16', 'FP32', 'FP16', 'INT8', ...])."""
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def tensorrt_version() -> str | None:
    """TensorRT's version, or None where it is absent or its bindings fail to import."""
    if not has_module("tensorrt"):
        return None
    try:
        import tensorrt as trt

        return trt.__version__
    except Exception:  # noqa: BLE001 - JetPack's bindings may be present but broken
        return None


def import_tensorrt():
    """tensorrt, at version MIN_TENSORRT or later, or one line saying what is wrong."""
    try:
        import tensorrt as trt
    except Exception as e:  # noqa: BLE001 - an ImportError, or a missing libnvinfer (OSError)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(
            f"TensorRT's Python bindings did not load ({first}); on a desktop GPU install the "
            "trt-cu12 or trt-cu13 extra, on Jetson use JetPack 6.1+ (see docs/TENSORRT.md)"
        ) from None
    major = int(str(trt.__version__).split(".")[0])
    if major < MIN_TENSORRT:
        raise UserError(
            f"TensorRT {trt.__version__} is too old: ddpm-deploy needs TensorRT {MIN_TENSORRT} or "
            "later (JetPack 6.1+ on Jetson, or the trt-cu12/trt-cu13 extra)"
        )
    return trt
