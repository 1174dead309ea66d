"""Atomic writes and output-folder checks: a killed process never leaves a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ddpm_deploy.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        # mkstemp makes 0600 (and some writers recreate the file): give outputs the usual mode
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)  # atomic on POSIX and Windows when on the same filesystem
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and prove it is writable, before any real work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as e:
        raise UserError(
            f"cannot write to output folder {str(path)!r} ({e.strerror or e}); "
            "choose a writable folder with --out"
        ) from None
    return path


def check_writable(path: str | os.PathLike) -> None:
    """The checks of ``writable_dir`` without creating anything: ``path`` is a writable folder, or
    the nearest folder above it that exists is writable (a refused run leaves no empty folder)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"output folder {str(path)!r} is a file; choose a folder with --out")
    existing = next((p for p in [path, *path.absolute().parents] if p.exists()), Path("/"))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"cannot write to output folder {str(path)!r} ({existing} is not writable); "
            "choose a writable folder with --out"
        )


def refuse_output_over_data(
    out: str | os.PathLike, data_root: str | os.PathLike, images: bool
) -> None:
    """A run's --out must not hold its data, nor, for a folder of images (``images``), sit inside
    it: what the run writes there (PNGs too) would become training data next time."""
    target, root = Path(out).resolve(), Path(data_root).resolve()
    if target == root or target in root.parents or (images and root in target.parents):
        raise UserError(
            f"--out {out} and --data-root {data_root} overlap; write the run outside the data"
        )


def onnx_output(path: str | os.PathLike, *inputs: str | os.PathLike) -> Path:
    """``path`` (an ONNX writer's ``-o``) as a Path, refused in one line before any work unless it
    ends in .onnx, is not a directory, and is none of the command's ``inputs``."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise UserError(f"-o {path}: the output file must end in .onnx")
    if path.is_dir():
        raise UserError(f"-o {path} is a directory; name the .onnx file to write")
    refuse_overwriting_input(path, *inputs)
    return path


def refuse_overwriting_input(out: str | os.PathLike, *inputs: str | os.PathLike) -> None:
    """No command writes over its own input: one line, before any work, when ``out`` is (or,
    for a folder output, holds) one of ``inputs``."""
    target = Path(out).resolve()
    for given in inputs:
        src = Path(given).resolve()
        if src == target or target in src.parents:
            raise UserError(
                f"the output {out} would overwrite the input {given}; write to another path"
            )


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def publish(out: Path, names: list[str], write) -> None:
    """Write a run's outputs together or not at all: ``write(folder)`` fills a hidden temporary
    folder inside ``out``; only if it succeeds is every file moved into place, the last name
    (run.json) last, so a run.json always describes the files beside it."""
    import shutil

    staging = Path(tempfile.mkdtemp(prefix=".ddpm-deploy-run-", dir=out))
    try:
        write(staging)
        (out / names[-1]).unlink(missing_ok=True)  # the old record goes first: it would mislead
        for name in names:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
