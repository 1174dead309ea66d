"""mkdocs hooks (mkdocs.yml `hooks:`): the installed package's layout for mkdocstrings.

The stage folders sit at the top of the repository and pyproject.toml maps them into the package
(`[tool.setuptools.package-dir]`: runtime/ is `ddpm_deploy.runtime`). griffe, which reads the
docstrings for mkdocstrings without importing anything, follows folders only, so this builds the
installed layout from links under build/docs-src (mkdocs.yml's `paths`) when mkdocs starts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "build" / "docs-src"


def package_layout(root: Path = ROOT, out: Path = SOURCE) -> Path:
    """Link every package of pyproject's package-dir into its installed place under ``out``."""
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    shutil.rmtree(out, ignore_errors=True)
    for package, folder in sorted(mapping["package-dir"].items()):
        target = out.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for entry in (root / folder).iterdir():
            if entry.name != "__pycache__" and not (target / entry.name).exists():
                (target / entry.name).symlink_to(entry)
    return out


def on_startup(command, dirty):
    """Before any plugin's config event: mkdocstrings resolves its `paths` when it is configured."""
    package_layout()
