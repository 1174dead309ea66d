"""`ddpm-deploy doctor`: what this machine can run. Never imports torch; never fails."""

from __future__ import annotations

import importlib.metadata as md
import platform
from importlib import resources
from pathlib import Path

import numpy as np
from ddpm_deploy.hardware.gpu import (
    cpu_precisions,
    has_cuda_python,
    has_module,
    nvidia_smi,
    tensorrt_version,
)
from ddpm_deploy.hardware.libraries import find_library
from ddpm_deploy.hardware.trt_facts import (
    PROVIDER_LIBRARY,
    ElfError,
    major_of,
    ort_extra,
    read_dynamic_file,
    tensorrt_libraries,
)

from ddpm_deploy import __version__


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _onnxruntime() -> dict:
    dists = {d: _version(d) for d in ("onnxruntime", "onnxruntime-gpu") if _version(d)}
    info: dict = {"installed": dists}
    if len(dists) > 1:
        info["warning"] = (
            "onnxruntime and onnxruntime-gpu are both installed and share one module; "
            "uninstall both and install one"
        )
    try:
        import onnxruntime as ort
    except ImportError as e:
        return {**info, "error": str(e)}
    probe = str(resources.files("ddpm_deploy") / "models" / "probe.onnx")
    loads = {}
    for provider in ort.get_available_providers():
        try:
            session = ort.InferenceSession(probe, providers=[provider])
            ok = session.get_providers()[0] == provider
            loads[provider] = "loads" if ok else f"falls back to {session.get_providers()[0]}"
        except Exception as e:  # noqa: BLE001 - report, never fail
            loads[provider] = f"fails: {str(e).splitlines()[0][:160]}"
    return {**info, "version": ort.__version__, "device": ort.get_device(), "providers": loads}


def _provider_library() -> tuple[str, Path | None] | None:
    """(onnxruntime-gpu's version, its TensorRT provider library or None); None without it."""
    try:
        dist = md.distribution("onnxruntime-gpu")
    except md.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if f.name == PROVIDER_LIBRARY:
            return dist.version, Path(str(dist.locate_file(f)))
    return dist.version, None


def _ort_tensorrt_provider(trt: str | None) -> dict | None:
    """Which TensorRT major onnxruntime-gpu's TensorRT provider links (its NEEDED entries, read
    here) and whether those libraries are found; None where onnxruntime-gpu is not installed."""
    found = _provider_library()
    if found is None:
        return None
    version, library = found
    info: dict = {"onnxruntime_gpu": version}
    if library is None or not library.is_file():
        return {**info, "state": f"onnxruntime-gpu {version} has no {PROVIDER_LIBRARY}"}
    info["library"] = str(library)
    try:
        dynamic = read_dynamic_file(library)
    except (OSError, ElfError) as e:
        return {**info, "state": f"could not read {library.name}: {e}"}
    major = major_of(dynamic.needed, "libnvinfer")
    info.update(tensorrt=major, cuda=major_of(dynamic.needed, "libcudart"))
    libs: dict[str, str] = {}
    for soname in tensorrt_libraries(dynamic.needed):
        where = find_library(soname, library, dynamic.rpath, dynamic.runpath)
        if where is None:
            libs[soname] = "not found"
        elif where[0] == "loader":
            libs[soname] = f"found ({where[1]})"
        else:
            libs[soname] = (
                f"only in pip's {where[1].parent}, which the loader does not search: add that "
                "folder to LD_LIBRARY_PATH"
            )
    info["libraries"] = libs
    problems = [f"{name} {state}" for name, state in libs.items() if not state.startswith("found")]
    if trt and major is not None and int(str(trt).split(".")[0]) != major:
        extra = ort_extra(info["cuda"]) if info["cuda"] else None
        problems.append(
            f"the installed TensorRT {trt} is not {major}.x"
            + (f" (install the {extra} extra)" if extra else "")
        )
    if major is None:
        info["state"] = f"{library.name} links no libnvinfer: not a TensorRT provider?"
    else:
        info["state"] = "; ".join(problems) or "its TensorRT libraries are found"
    return info


def _gpus() -> dict:
    lines, smi_error = nvidia_smi()
    info: dict = {"nvidia_smi": lines}
    if smi_error:
        info["nvidia_smi_error"] = smi_error
    if has_cuda_python():
        try:
            from ddpm_deploy.hardware.gpu import check, cudart, current_gpu

            count = check(cudart().cudaGetDeviceCount(), "cudaGetDeviceCount")
            info["cuda_devices"] = [current_gpu(i).__dict__ for i in range(count)]
            info["cuda_driver"] = check(cudart().cudaDriverGetVersion(), "cudaDriverGetVersion")
        except Exception as e:  # noqa: BLE001 - report, never fail
            info["cuda_error"] = str(e)[:300]
    return info


def _openvino() -> dict | None:
    if not has_module("openvino"):
        return None
    try:
        return {"version": _version("openvino"), "cpu_precisions": cpu_precisions()}
    except Exception as e:  # noqa: BLE001 - report, never fail
        return {"version": _version("openvino"), "error": str(e)[:200]}


def _serve() -> str:
    """Whether `ddpm-deploy serve` can start Triton here, or why not (one line)."""
    from ddpm_deploy.hardware.triton_dist import libpython_dir, stub_path, triton_dist

    from ddpm_deploy.errors import UserError

    try:
        stub_path(triton_dist())
        libpython_dir()
    except UserError as e:
        return f"no: {e}"
    return f"ready (tritonserver from nvidia-pytriton {_version('nvidia-pytriton')})"


def _jetson() -> str | None:
    release = Path("/etc/nv_tegra_release")
    return release.read_text().splitlines()[0].strip("# ") if release.is_file() else None


def _trt_state(trt: str | None, gpus: dict) -> str:
    """'ready' only when TensorRT, cuda-python and a GPU that CUDA really opens are all here."""
    missing = [
        what for what, ok in (("TensorRT", trt), ("cuda-python", has_cuda_python())) if not ok
    ]
    if missing:
        return f"needs {' and '.join(missing)} and an NVIDIA GPU (trt-cu12/trt-cu13 extra)"
    if "cuda_error" in gpus:
        return f"CUDA fails here: {gpus['cuda_error']}"
    if not gpus.get("cuda_devices"):
        return "no CUDA GPU is visible"
    if int(str(trt).split(".")[0]) < 10:
        return f"TensorRT {trt} is too old: needs 10 or later"
    return "ready"


def collect() -> dict:
    ort_info = _onnxruntime()
    gpus = _gpus()
    ov_info = _openvino()
    trt = _version("tensorrt") or tensorrt_version()
    try:
        ort_trt = _ort_tensorrt_provider(trt)
    except Exception as e:  # noqa: BLE001 - report, never fail
        ort_trt = {"state": f"could not check: {str(e)[:200]}"}
    if ort_trt is not None:
        ort_info["tensorrt_provider"] = ort_trt
    backends = {
        "ort": "ready" if "version" in ort_info else "onnxruntime is not importable",
        "torch": "ready" if has_module("torch") else "needs `pip install 'ddpm-deploy[train]'`",
        "trt": _trt_state(trt, gpus),
        "openvino": "ready"
        if ov_info and "error" not in ov_info
        else "needs `pip install 'ddpm-deploy[openvino]'`",
        "triton": "ready (with --url)"
        if has_module("tritonclient")
        else "needs `pip install 'tritonclient[http]'`",
    }
    return {
        "ddpm_deploy": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "onnxruntime": ort_info,
        "tensorrt": trt,
        "polygraphy": _version("polygraphy"),
        "openvino": ov_info,
        "cuda_python": _version("cuda-python") or _version("cuda-bindings"),
        "torch": _version("torch"),
        "gpus": gpus,
        "jetson_l4t": _jetson(),
        "backends": backends,
        "serve": _serve(),
    }


def _ov_line(ov: dict | None) -> str:
    if not ov:
        return "not installed"
    if "error" in ov:
        return f"{ov['version']} (fails: {ov['error']})"
    return f"{ov['version']} (CPU precisions: {', '.join(ov['cpu_precisions'])})"


def _ort_trt_line(p: dict) -> str:
    """One line: which TensorRT major onnxruntime-gpu's TensorRT provider needs, and if found."""
    if p.get("tensorrt") is None:
        return p["state"]
    libs = ", ".join(p.get("libraries", {})) or "no TensorRT library"
    return (
        f"of onnxruntime-gpu {p['onnxruntime_gpu']} needs TensorRT {p['tensorrt']} "
        f"(CUDA {p['cuda']}; {libs}): {p['state']}"
    )


def report(info: dict) -> str:
    o = info["onnxruntime"]
    lines = [
        f"ddpm-deploy {info['ddpm_deploy']} on Python {info['python']}, {info['platform']}",
        f"numpy        {info['numpy']}",
        f"onnxruntime  {o.get('version', 'not importable')} "
        f"(installed: {', '.join(f'{k} {v}' for k, v in o['installed'].items()) or 'none'})",
    ]
    lines += [f"  provider   {p}: {state}" for p, state in o.get("providers", {}).items()]
    if "tensorrt_provider" in o:
        lines.append(f"  TensorRT provider {_ort_trt_line(o['tensorrt_provider'])}")
    if "warning" in o:
        lines.append(f"  WARNING    {o['warning']}")
    lines += [
        f"tensorrt     {info['tensorrt'] or 'not installed'}",
        f"polygraphy   {info['polygraphy'] or 'not installed'}",
        f"openvino     {_ov_line(info['openvino'])}",
        f"cuda-python  {info['cuda_python'] or 'not installed'}",
        f"torch        {info['torch'] or 'not installed'} (not imported)",
        f"GPUs         {'; '.join(info['gpus']['nvidia_smi']) or info['gpus'].get('nvidia_smi_error') or 'none seen by nvidia-smi'}",
        f"Jetson       {info['jetson_l4t'] or 'no (no /etc/nv_tegra_release)'}",
        "backends for `ddpm-deploy sample`:",
    ]
    lines += [f"  {name:<8} {state}" for name, state in info["backends"].items()]
    lines.append(f"serve        {info['serve']}")
    return "\n".join(lines)
