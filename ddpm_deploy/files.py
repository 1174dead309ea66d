"""Atomic writes and output-folder checks: a killed process never leaves a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ddpm_deploy.errors import UserError

SPECIAL = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a link"
    return next((what for test, what in SPECIAL if test(mode)), "a special file")


def check_output(path: str | os.PathLike, folder: bool = False) -> None:
    """The one check of an output path that exists, before any work: a file output must be a
    regular file or a link (which is replaced, never followed), a folder output a folder (or a
    link to one). Anything else is refused in one line: renaming over a FIFO or a device node
    would replace it (as root, /dev/null itself). lstat and stat only: open() on a FIFO blocks."""
    try:
        mode = os.lstat(path).st_mode
        if folder and stat.S_ISLNK(mode):
            mode = os.stat(path).st_mode  # a link naming the folder: the folder is written
    except OSError:
        return  # absent (or unreachable: creating it reports why)
    fits = stat.S_ISDIR(mode) if folder else stat.S_ISREG(mode) or stat.S_ISLNK(mode)
    if fits:
        return
    if folder or stat.S_ISDIR(mode):
        want = "a folder" if folder else "a file"
        raise UserError(f"the output {path} is {_kind(mode)}, not {want}; choose another path")
    raise UserError(
        f"the output {path} is {_kind(mode)}, not a regular file or a folder; writing would "
        "replace it: choose another path"
    )


def regular_input(path: str | os.PathLike, what: str = "the model") -> Path:
    """``path`` as given, refused in one line when it exists and is neither a regular file nor a
    folder: reading a FIFO would wait for a writer for ever. stat only, never open()."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return Path(path)  # absent: the reader says so in its own words
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UserError(f"{what} {path} is {_kind(mode)}, not a regular file; pass the file itself")
    return Path(path)


def under_link(out: Path, name: str) -> bool:
    """Whether a sub-folder on the way from ``out`` to ``name`` is a link (``publish`` replaces
    it with a real folder rather than write through it)."""
    return any((out / sub).is_symlink() for sub in Path(name).parents if sub != Path("."))


def check_outputs(out: Path, names: Iterable[str]) -> None:
    """``check_output`` for every file a command writes in the folder ``out`` (``names``, maybe
    in sub-folders) and for those sub-folders, before any work."""
    for name in names:
        if under_link(out, name):
            continue  # the link is replaced, so what lies behind it is never written
        for sub in Path(name).parents:
            if sub != Path("."):
                check_output(out / sub, folder=True)
        check_output(out / name)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def staging_folder(beside: Path, name: str) -> Path:
    """A hidden folder in ``beside`` to write an output folder ``name`` in before it is renamed
    into place, with the mode a new folder gets (mkdtemp's 0700 would hide a Triton repository
    from a server running as another user)."""
    folder = Path(tempfile.mkdtemp(prefix=f".{name[:64]}.", dir=beside))
    folder.chmod(0o777 & ~_umask())
    return folder


def missing_folders(path: str | os.PathLike) -> list[Path]:
    """The folders that making ``path`` with its parents creates, outermost first, as real paths
    taken before they exist (``ghost/../victim`` makes ghost, never victim): what a failed run
    removes again (``remove_made``)."""
    path, made = Path(path), []
    for prefix in reversed([path, *path.parents]):
        real = Path(os.path.realpath(prefix))
        if not os.path.lexists(real) and real not in made:
            made.append(real)
    return made


def remove_made(made: list[Path]) -> None:
    """Remove the folders a run made (``missing_folders``), innermost first, each only if empty."""
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (something was published) or gone


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.
    Missing folders above ``path`` are made here, and removed again if the block fails."""
    path = Path(path)
    check_output(path)  # commands check first; this is the net under every writer
    made = missing_folders(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(
            # the name cut short: a 250-character name plus the temporary parts would pass NAME_MAX
            prefix=f".{path.name[:64]}.",
            suffix=".tmp" + path.suffix[:16],
            dir=path.parent,
        )
    except BaseException:
        remove_made(made)
        raise
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes 0600 (and some writers recreate the file): give outputs the usual mode
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)  # atomic on POSIX and Windows when on the same filesystem
    except BaseException:
        tmp.unlink(missing_ok=True)
        remove_made(made)
        raise
    tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def writable_dir(path: str | os.PathLike, files: Iterable[str] = (), option: str = "--out") -> Path:
    """Create ``path`` if needed and prove it is writable, before any real work starts; ``files``,
    the names the command writes in it, are checked too (``check_output``)."""
    path = Path(path)
    check_output(path, folder=True)
    refuse_dangling(path)
    check_outputs(path, files)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as e:
        raise UserError(
            f"cannot write to output folder {str(path)!r} ({e.strerror or e}); "
            f"choose a writable folder with {option}"
        ) from None
    return path


def output_folder(path: str | os.PathLike) -> Path:
    """The folder an output folder path names: a link to a folder is resolved (written through,
    as every --out is), a link to nothing refused. For commands that rename a finished folder into
    place, which cannot rename over a link."""
    path = Path(path)
    refuse_dangling(path)
    return path.resolve() if path.is_symlink() else path


def refuse_dangling(path: Path) -> None:
    """A link to nothing as an output folder: neither followed (its target may be anywhere) nor
    replaced (it is the user's); one line instead of mkdir's "File exists" after the work."""
    if path.is_symlink() and not os.path.exists(path):  # exists() itself raises on a loop
        raise UserError(
            f"the output {path} is a link to {os.readlink(path)}, which does not exist (or is a "
            "loop of links); remove the link or choose another path"
        )


def check_writable(path: str | os.PathLike, option: str = "--out") -> None:
    """The checks of ``writable_dir`` without creating anything: ``path`` is a writable folder, or
    the nearest folder above it that exists is writable (a refused run leaves no empty folder)."""
    path = Path(path)
    check_output(path, folder=True)
    refuse_dangling(path)
    existing = next((p for p in [path, *path.absolute().parents] if p.exists()), Path("/"))
    if not existing.is_dir():
        raise UserError(
            f"cannot write to output folder {str(path)!r} ({existing} is a file, not a folder); "
            f"choose another path for {option}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"cannot write to output folder {str(path)!r} ({existing} is not writable); "
            f"choose a writable folder with {option}"
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
    if path.suffix != ".onnx":  # ".onnx" alone is a hidden file with no suffix
        raise UserError(f"-o {path}: the output file must end in .onnx, as in model.onnx")
    if path.is_dir():
        raise UserError(f"-o {path} is a directory; name the .onnx file to write")
    check_output(path)
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


def output_file(path: str | os.PathLike) -> Path:
    """A file output checked before any work (``check_output``), its folder writable (made when
    the file is written, ``atomic_path``)."""
    path = Path(path)
    check_output(path)
    check_writable(path.parent)
    return path
