"""Owning every process `ddpm-deploy serve` starts: tritonserver in a session and process group of
its own, and everything below it, gone on any exit (serve/server.py runs it).

Triton's Python backend stubs ignore SIGTERM and SIGINT (Triton tells them when to stop). When
tritonserver dies without that (a crash, an out-of-memory kill), each stub notices its parent is
gone and exits, but that exit can deadlock (seen: a 150 MB stub orphaned to init, still running
minutes later). So serve never relies on it: Triton runs in a session and process group of its
own, serve is a child subreaper (orphaned stubs are re-parented to serve, not to init), the group
and every process found in it or below it is SIGKILLed on any exit, and Triton stays unreaped (a
zombie holds its pid, so the group id cannot be reused) until the group is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37
SHM_PREFIX = "/dev/shm/triton_python_backend_shm_region_"


def _prctl(option: int, arg: int) -> int | None:
    """prctl(2) on Linux; None elsewhere or when it fails."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        value = ctypes.c_int(0)
        arg2 = ctypes.byref(value) if option == PR_GET_CHILD_SUBREAPER else ctypes.c_ulong(arg)
        if libc.prctl(option, arg2, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return value.value if option == PR_GET_CHILD_SUBREAPER else 0


@dataclass(frozen=True)
class ProcInfo:
    ppid: int
    pgid: int
    sid: int
    start: int  # clock ticks after boot: with the pid, names one process even if pids are reused
    state: str


def proc_table() -> dict[int, ProcInfo]:
    """Every process in /proc (Linux); empty elsewhere."""
    table = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = ProcInfo(
            ppid=int(rest[1]),
            pgid=int(rest[2]),
            sid=int(rest[3]),
            start=int(rest[19]),
            state=rest[0],
        )
    return table


def descendants(roots: set[int], table: dict[int, ProcInfo]) -> set[int]:
    """The roots and every process below them, by parent links."""
    found, todo = set(roots), list(roots)
    while todo:
        parent = todo.pop()
        for pid, info in table.items():
            if info.ppid == parent and pid not in found:
                found.add(pid)
                todo.append(pid)
    return found


class TritonGroup:
    """tritonserver, started in its own session and process group, and everything below it."""

    def __init__(self, cmd: list[str], env: dict[str, str]):
        self.serve_pid = os.getpid()
        self.subreaper_was = _prctl(PR_GET_CHILD_SUBREAPER, 0)
        if self.subreaper_was == 0:
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
        try:
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            self._restore_subreaper()
            raise
        self.pid = self.proc.pid  # also the group and session id
        self.known: dict[int, int] = {}  # pid -> start time of every process seen in the group
        self.shm: set[str] = set()  # the Python backend's shared memory regions it mapped
        self.closed = False
        self.refresh()

    def exited(self) -> bool:
        """Whether tritonserver has exited, without reaping it (its pid stays the group's)."""
        if self.proc.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def members(self, table: dict[int, ProcInfo]) -> set[int]:
        """Triton and every process it started that still exists (zombies included)."""
        mine = {
            pid
            for pid, info in table.items()
            if pid != self.serve_pid
            and (info.sid == self.pid or info.pgid == self.pid or self.known.get(pid) == info.start)
        }
        return descendants(mine, table) - {self.serve_pid}

    def refresh(self) -> dict[int, ProcInfo]:
        """Remember every process in the group and the shared memory regions they map."""
        table = proc_table()
        for pid in self.members(table):
            self.known.setdefault(pid, table[pid].start)
            try:
                with open(f"/proc/{pid}/maps") as f:
                    paths = (line.rstrip("\n").rsplit(" ", 1)[-1] for line in f)
                    self.shm.update(p for p in paths if p.startswith(SHM_PREFIX))
            except OSError:  # gone, or a zombie
                pass
        return table

    def signal_triton(self, sig: int) -> None:
        if not self.exited():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float, stop: list | None = None, after: int = 0) -> bool:
        """Wait for tritonserver to exit, up to timeout (or until stop holds more than after)."""
        deadline = time.monotonic() + timeout
        while not self.exited():
            if time.monotonic() > deadline or (stop is not None and len(stop) > after):
                return False
            self.refresh()
            time.sleep(0.1)
        return True

    def close(self, grace: float = 3.0) -> int:
        """Leave nothing running: SIGTERM to a living Triton (it stops its stubs and frees their
        shared memory), then SIGKILL to the group and to every process found in it or below it,
        until none is left; then reap Triton and return its exit code."""
        if self.closed:
            return self.proc.returncode
        self.closed = True
        try:
            if not self.exited():
                self.signal_triton(signal.SIGTERM)
                self.wait(grace)
            deadline = time.monotonic() + 10.0
            while True:
                table = self.refresh()
                alive = {p for p in self.members(table) if table[p].state not in "ZX"}
                if not alive:
                    break
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                for pid in alive:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                self._reap(table)
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            code = self.proc.wait()
            self._reap(proc_table())
            for path in self.shm:  # left behind only when Triton could not free them
                try:
                    os.unlink(path)
                except OSError:
                    pass
            return code
        finally:
            self._restore_subreaper()

    def _restore_subreaper(self) -> None:
        if self.subreaper_was == 0:
            _prctl(PR_SET_CHILD_SUBREAPER, 0)

    def _reap(self, table: dict[int, ProcInfo]) -> None:
        """Reap the group's processes that were re-parented to serve (the subreaper)."""
        for pid in self.members(table):
            if pid != self.pid and table[pid].ppid == self.serve_pid:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
