"""Models shipped inside the package, so `ddpm-deploy sample` works on a fresh install.

Precedence, decided once: a shipped name (``fashion_mnist``, ``mnist``, their ``_reference``
variants, ``emoji``, or an alias such as ``fashion``) always means the shipped model, even when a folder of
that name sits in the current directory; an existing *file* of that exact name is the only
exception, and ``./NAME`` or any path with a folder or a suffix always means the file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ddpm_deploy.errors import UserError
from ddpm_deploy.files import regular_input

REFERENCE_SUFFIX = "_reference"  # the seed article's UNet, shipped for comparison
# name or alias -> the shipped model's file stem (ddpm_deploy/models/<stem>.onnx)
SHIPPED = {
    "fashion_mnist": "fashion_mnist",
    "fashion": "fashion_mnist",
    "mnist": "mnist",
    "emoji": "emoji",
}


def packaged(filename: str) -> Path:
    """A file in the package's models/ folder (it may be missing from a stripped install)."""
    return Path(str(resources.files("ddpm_deploy") / "models" / filename))


def shipped_name(model: str) -> str | None:
    """The canonical shipped name (e.g. 'fashion_mnist_reference') that ``model`` spells, or None."""
    key = model.lower().replace("-", "_")
    reference = key.endswith(REFERENCE_SUFFIX)
    base = key[: -len(REFERENCE_SUFFIX)] if reference else key
    if base not in SHIPPED:
        return None
    return SHIPPED[base] + (REFERENCE_SUFFIX if reference else "")


def shipped_model(name: str) -> Path:
    canonical = shipped_name(name)
    if canonical is None:
        raise UserError(f"{name!r} is not a shipped model name; pass --model PATH to a .onnx file")
    path = packaged(f"{canonical}.onnx")
    if not path.is_file():
        raise UserError(
            f"this install ships no {canonical} model (looked for {path}); "
            "pass --model PATH to an exported .onnx"
        )
    return path


def resolve_model(model: str) -> Path:
    """A shipped model name picks the shipped model (see the module's precedence); else a path."""
    if shipped_name(model) is not None and not Path(model).is_file():
        return shipped_model(model)
    return regular_input(model)  # a FIFO would block every reader for ever
