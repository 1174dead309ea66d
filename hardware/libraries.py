"""Where the dynamic loader would find a shared library, read without loading it: `doctor` asks
this of the TensorRT libraries onnxruntime-gpu's TensorRT provider links."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

DEFAULT_LIB_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64")


def _ldconfig_cache() -> dict[str, str]:
    """soname -> path from the dynamic loader's cache (`ldconfig -p`); {} where unreadable."""
    for exe in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        cache: dict[str, str] = {}
        for line in out.splitlines():
            name, sep, path = line.strip().partition(" => ")
            if sep:
                cache.setdefault(name.split(" (")[0], path.strip())
        return cache
    return {}


def _pip_tensorrt_libs() -> list[Path]:
    """Where pip's tensorrt-cuNN-libs put TensorRT (site-packages/tensorrt_libs), not imported."""
    try:
        spec = importlib.util.find_spec("tensorrt_libs")
    except (ImportError, ValueError):
        return []
    return [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


def find_library(soname: str, library: Path, rpath=(), runpath=()) -> tuple[str, Path] | None:
    """Where the dynamic loader would find `soname` for `library`: ("loader", path), else
    ("tensorrt_libs", path) where only pip's TensorRT folder has it (which the loader does not
    search), else None. Search order as ld.so: DT_RPATH (without RUNPATH), LD_LIBRARY_PATH,
    DT_RUNPATH, the ldconfig cache, the default folders."""

    def expand(dirs) -> list[str]:
        return [
            d.replace("$ORIGIN", str(library.parent)).replace("${ORIGIN}", str(library.parent))
            for d in dirs
        ]

    env = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    dirs = (expand(rpath) if not runpath else []) + env + expand(runpath)
    for d in dirs:
        if (Path(d) / soname).exists():
            return "loader", Path(d) / soname
    cached = _ldconfig_cache().get(soname)
    if cached and Path(cached).exists():
        return "loader", Path(cached)
    for d in DEFAULT_LIB_DIRS:
        if (Path(d) / soname).exists():
            return "loader", Path(d) / soname
    for d in _pip_tensorrt_libs():
        if (d / soname).exists():
            return "tensorrt_libs", d / soname
    return None
