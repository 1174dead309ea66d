"""A run's outputs published together: staged in a hidden folder inside the output folder and
moved in only when every one is written (run.json last), never through a link; what the command
wrote on an earlier run under another name removed; a folder the run made removed again when
nothing was published (a full disk, Ctrl-C)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ddpm_deploy.files import missing_folders, remove_made, under_link, writable_dir


def remove_own_file(path: Path) -> None:
    """Remove a file the command itself writes at ``path``: a regular file or a link (unlinked,
    never followed). A folder or anything else is not the command's and stays."""
    with contextlib.suppress(FileNotFoundError):
        mode = os.lstat(path).st_mode
        if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            path.unlink()


def _real_folders(out: Path, name: str) -> None:
    """The sub-folders of ``name`` inside ``out`` made real: a link in their place (a user's
    ``ort`` -> elsewhere) is unlinked, never written through, so nothing lands outside ``out``."""
    folder = out
    for part in Path(name).parent.parts:
        folder = folder / part
        if folder.is_symlink():
            folder.unlink()
        folder.mkdir(exist_ok=True)


def publish(
    out: Path,
    names: list[str],
    write: Callable[[Path], None],
    stale: Iterable[str] = (),
    option: str = "--out",
) -> None:
    """Write a run's outputs together or not at all: ``write(folder)`` fills a hidden temporary
    folder inside ``out``; only if it succeeds is every file moved into place, the last name
    (run.json) last, so a run.json always describes the files beside it. ``stale`` are names the
    command writes on other runs (samples.npz without --save npz): a previous run's file of such
    a name is removed, so the folder holds this run's outputs only. ``out`` is made here if it is
    missing, and removed again if the run fails (a full disk, Ctrl-C) before anything is in it."""
    import shutil

    made = missing_folders(out)
    writable_dir(out, [*names, *stale], option)
    staging = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=".ddpm-deploy-run-", dir=out))
        write(staging)
        (out / names[-1]).unlink(missing_ok=True)  # the old record goes first: it would mislead
        for name in names:
            _real_folders(out, name)
        for name in set(stale) - set(names):
            if not under_link(out, name):  # never remove anything through a link
                remove_own_file(out / name)
        for name in names:
            os.replace(staging / name, out / name)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        remove_made(made)
        raise
    shutil.rmtree(staging, ignore_errors=True)
