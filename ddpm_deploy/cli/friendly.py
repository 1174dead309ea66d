"""The one-line error wrapper every command runs in: a refusal, a missing optional dependency or
what the machine refused (a full disk, a read-only folder) is one `Error:` line and exit code 1,
never a traceback; SIGTERM ends through the finally blocks that remove what was being written."""

from __future__ import annotations

import errno
import functools
import os
import re
import signal
import threading

import click

from ddpm_deploy.errors import UserError


def friendly_errors(fn):
    """Turn a UserError, or a missing optional dependency, into one line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main_thread else None
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            raise click.ClickException(str(e)) from None
        except ModuleNotFoundError as e:
            extra = (
                "export" if e.name in ("onnx", "onnxscript", "onnxconverter_common") else "train"
            )
            raise click.ClickException(
                f"this command needs the {e.name!r} package; install it with "
                f"`pip install 'ddpm-deploy[{extra}]'`"
            ) from None
        except Exception as e:
            # safetensors reports the disk in its own error type
            os_error = e if isinstance(e, OSError) else _os_error_inside(e)
            if os_error is None or os_error.errno not in MACHINE_REFUSALS:
                raise
            # the finally blocks have removed what was being written (ddpm_deploy/files.py)
            where = os_error.filename2 or os_error.filename  # a copy names its destination second
            raise click.ClickException(
                f"{os_error.strerror}{f' ({where})' if where else ''}: "
                f"{MACHINE_REFUSALS[os_error.errno]}"
            ) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


_SPACE = "free some space or write elsewhere; nothing half-written was left"
_ACCESS = "check that path's permissions, or choose another path"
# what the machine, not the input, refused while a command ran: one line, never a traceback (a
# permission may be a read's as well as a write's: that advice says nothing of outputs)
MACHINE_REFUSALS = {
    errno.ENOSPC: _SPACE,
    errno.EDQUOT: _SPACE,
    errno.EFBIG: _SPACE,
    errno.EROFS: "a read-only file system: write elsewhere; nothing half-written was left",
    errno.EACCES: _ACCESS,
    errno.EPERM: _ACCESS,
    errno.ENOTDIR: "a part of that path is a file, not a folder: choose another path",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def _os_error_inside(e: Exception) -> OSError | None:
    """The OS error a writer wrapped in its own type: safetensors' SafetensorError says "I/O
    error: File too large (os error 27)" (or "Os { code: 28, ... }" in other versions)."""
    found = re.search(r"\(os error (\d+)\)|Os \{ code: (\d+)", str(e))
    if type(e).__name__ != "SafetensorError" or found is None:
        return None
    code = int(found.group(1) or found.group(2))
    return OSError(code, os.strerror(code))


def _exit_on_sigterm(signum, frame) -> None:
    # SIGTERM would end the process where it stands; as SystemExit every finally block runs, so a
    # staging folder or a temporary file being written goes with it (ddpm_deploy/files.py)
    raise SystemExit(128 + signum)
