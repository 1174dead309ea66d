"""Where `ddpm-deploy serve` finds Triton: the tritonserver of the nvidia-pytriton wheel, its Python
backend stub for this Python, and the shared libpython the stub loads. In the core, because
`doctor` reports them and serve (serve/server.py) runs them.
"""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
from pathlib import Path

from ddpm_deploy.errors import UserError


def triton_dist() -> Path:
    """The folder of the tritonserver distribution inside the nvidia-pytriton wheel."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise UserError("serve needs Triton: pip install 'ddpm-deploy[serve]' (nvidia-pytriton)")
    dist = Path(spec.origin).parent / "tritonserver"
    if not (dist / "bin" / "tritonserver").exists():
        raise UserError(f"no tritonserver binary under {dist}; reinstall nvidia-pytriton")
    return dist


def libpython_dir() -> str:
    """The running interpreter's shared libpython folder, or one line saying why there is none."""
    libdir, name = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
    if (
        not sysconfig.get_config_var("Py_ENABLE_SHARED")
        or not libdir
        or not (Path(libdir) / name).exists()
    ):
        raise UserError(
            f"this Python ({sys.executable}) has no shared libpython, so Triton's Python backend "
            "cannot host the model; use a Python built with --enable-shared (distribution packages "
            "and the python.org builds are)"
        )
    return libdir


def stub_path(dist: Path) -> Path:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise UserError(f"nvidia-pytriton has no Python backend stub for Python {version}")
    return stub
