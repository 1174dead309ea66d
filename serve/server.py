"""`ddpm-deploy serve`: a real Triton Inference Server process hosting the runtime.

The `tritonserver` binary, its Python backend and the backend stubs come from the nvidia-pytriton
wheel (the `serve` extra); this module lays them out, writes the model repository and runs
`tritonserver` itself. PyTriton's own proxy is not used: it fails every request of a dynamic batch
when one of them is bad, and answers with a whole traceback (docs/SERVING.md), where Triton's
Python backend lets each request have its own one-line error.

Trap: the stub loads libpython by name. Without the running interpreter's own LIBDIR first on
LD_LIBRARY_PATH it can pick up another build of the same Python version and fail deep inside
threading ('_thread.RLock' object has no attribute '_recursion_count').
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ddpm_deploy.errors import UserError


@dataclass
class ServeOptions:
    model: str = "fashion_mnist"
    backend: str = "ort"
    precision: str = "fp32"
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_images: int = 64  # per request, and per executed batch (Triton's max_batch_size)
    queue_delay_us: int = 5000
    # images per sampler run inside the server: a dynamic batch of up to max_images runs in chunks
    # of this size. 16 was the fastest measured on the 2-core CPU (docs/SERVING.md); GPUs want more.
    batch: int = 16
    exit_timeout_s: int = 30
    startup_timeout_s: float = 180.0
    log: str | None = None  # Triton's log file; default: inside the temporary workspace

    def validate(self) -> None:
        for name in ("http_port", "grpc_port", "metrics_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise UserError(f"--{name.replace('_', '-')} must be 1..65535, got {port}")
        if len({self.http_port, self.grpc_port, self.metrics_port}) < 3:
            raise UserError("--http-port, --grpc-port and --metrics-port must differ")
        if not 1 <= self.max_images <= 4096:
            raise UserError(f"--max-images must be 1..4096, got {self.max_images}")
        if not 1 <= self.batch <= 4096:
            raise UserError(f"--batch must be 1..4096, got {self.batch}")
        if not 0 <= self.queue_delay_us <= 10_000_000:
            raise UserError(f"--queue-delay-us must be 0..10000000, got {self.queue_delay_us}")


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
        )  # fmt: skip
    return libdir


def stub_path(dist: Path) -> Path:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise UserError(f"nvidia-pytriton has no Python backend stub for Python {version}")
    return stub


def server_env(dist: Path) -> dict[str, str]:
    env = dict(os.environ)
    libs = dist.parent.parent / "nvidia_pytriton.libs"  # the wheel's bundled shared libraries
    paths = [libpython_dir(), str(libs), env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in paths if p)
    # the stub's embedded interpreter finds its prefix (and so this venv's packages) from PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONNOUSERSITE"] = "1"
    return env


def prepare_backends(dist: Path, workspace: Path) -> Path:
    """Triton expects the stub beside the Python backend: lay out a backends folder with it."""
    backends = workspace / "backends"
    python = backends / "python"
    python.mkdir(parents=True)
    for item in (dist / "backends" / "python").iterdir():
        if item.is_file():
            (python / item.name).symlink_to(item)
    shutil.copy(stub_path(dist), python / "triton_python_backend_stub")
    return backends


def command(dist: Path, repo: Path, backends: Path, opts: ServeOptions, log: Path) -> list[str]:
    return [
        str(dist / "bin" / "tritonserver"),
        f"--model-repository={repo}",
        f"--backend-directory={backends}",
        f"--cache-directory={backends.parent / 'caches'}",
        f"--http-address={opts.host}",
        f"--http-port={opts.http_port}",
        f"--grpc-address={opts.host}",
        f"--grpc-port={opts.grpc_port}",
        "--allow-metrics=true",
        f"--metrics-address={opts.host}",
        f"--metrics-port={opts.metrics_port}",
        "--allow-gpu-metrics=false",
        "--strict-readiness=true",
        "--disable-auto-complete-config",
        f"--exit-timeout-secs={opts.exit_timeout_s}",
        f"--log-file={log}",
    ]


def is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _last_error(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    noise = ("CudaDriverHelper",)  # logged on every CPU-only start
    errors = [
        ln
        for ln in lines
        if (ln.startswith("E") or "error" in ln.lower()) and not any(n in ln for n in noise)
    ]
    return (errors or lines or ["no log"])[-1].strip()[:400]


def serve(opts: ServeOptions, on_ready=print) -> int:
    """Start Triton, wait until both models are loaded, serve until SIGINT/SIGTERM, drain, exit."""
    from ddpm_deploy.runtime.backends import backend_options, model_path, open_denoiser
    from ddpm_deploy.serve.repository import write_serve_repository

    opts.validate()
    dist = triton_dist()
    env = server_env(dist)  # checks libpython before anything starts
    card = open_denoiser(opts.backend, opts.model, opts.precision).card  # one line, if bad
    model, options = (
        model_path(opts.backend, opts.model),
        backend_options(opts.backend, opts.precision),
    )
    with tempfile.TemporaryDirectory(prefix="ddpm-deploy-serve-") as tmp:
        workspace = Path(tmp)
        repo = workspace / "models"
        write_serve_repository(repo, card, str(Path(model).resolve()), opts.backend, options,
                               opts.max_images, opts.queue_delay_us, opts.batch)  # fmt: skip
        backends = prepare_backends(dist, workspace)
        log = Path(opts.log).resolve() if opts.log else workspace / "triton.log"
        stop: list[int] = []
        handlers = {sig: signal.signal(sig, lambda s, f: stop.append(s)) for sig in STOP_SIGNALS}
        group = None
        try:
            group = TritonGroup(command(dist, repo, backends, opts, log), env)
            return _run(group, opts, log, stop, on_ready)
        finally:
            if group is not None:
                group.close()  # whatever happened: nothing serve started is left running
            for sig, handler in handlers.items():
                signal.signal(sig, handler)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _run(group: TritonGroup, opts: ServeOptions, log: Path, stop: list[int], on_ready) -> int:
    url = f"{opts.host}:{opts.http_port}"
    deadline = time.monotonic() + opts.startup_timeout_s
    while not is_ready(url):
        if group.exited():
            code = group.close()
            raise UserError(f"Triton exited while starting (code {code}): {_last_error(log)}")
        if stop:
            return 0
        if time.monotonic() > deadline:
            raise UserError(
                f"Triton was not ready after {opts.startup_timeout_s:.0f} s: {_last_error(log)}"
            )
        group.refresh()
        time.sleep(0.2)
    on_ready(
        f"serving {opts.model} ({opts.backend}) on Triton: http://{url} grpc {opts.host}:"
        f"{opts.grpc_port} metrics http://{opts.host}:{opts.metrics_port}/metrics; "
        "Ctrl-C stops (in-flight requests finish first)"
    )
    ticks = 0
    while not group.exited() and not stop:
        time.sleep(0.2)
        ticks += 1
        if ticks % 5 == 0:
            group.refresh()
    if group.exited():  # a crash or a kill: its stubs are SIGKILLed before serve says so
        code = group.close()
        raise UserError(f"Triton stopped unexpectedly (code {code}): {_last_error(log)}")
    group.signal_triton(signal.SIGTERM)  # Triton stops accepting, finishes in-flight requests
    # Triton gives up on idle connections after --exit-timeout; a second Ctrl-C stops at once
    if not group.wait(opts.exit_timeout_s + 30, stop=stop, after=len(stop)):
        group.close(grace=0)
        raise UserError(f"Triton was stopped before it drained: {_last_error(log)}")
    code = group.close()
    if code != 0 and not drained(log):
        raise UserError(f"Triton did not stop cleanly (code {code}): {_last_error(log)}")
    return 0


def drained(log: Path) -> bool:
    """Whether Triton's shutdown found no inference in flight at the end. Triton also waits for
    idle keep-alive client connections until --exit-timeout and then exits 1 ("Exit timeout
    expired") although every request was answered; that is still a clean drain."""
    text = log.read_text(errors="replace") if log.exists() else ""
    counts = re.findall(r"Found (\d+) model versions that have in-flight inferences", text)
    return bool(counts) and counts[-1] == "0"


# --- Owning every process serve starts -------------------------------------------------------------
# Triton's Python backend stubs ignore SIGTERM and SIGINT (Triton tells them when to stop). When
# tritonserver dies without that (a crash, an out-of-memory kill), each stub notices its parent is
# gone and exits, but that exit can deadlock (seen: a 150 MB stub orphaned to init, still running
# minutes later). So serve never relies on it: Triton runs in a session and process group of its
# own, serve is a child subreaper (orphaned stubs are re-parented to serve, not to init), the group
# and every process found in it or below it is SIGKILLed on any exit, and Triton stays unreaped (a
# zombie holds its pid, so the group id cannot be reused) until the group is gone.

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
            ppid=int(rest[1]), pgid=int(rest[2]), sid=int(rest[3]), start=int(rest[19]),
            state=rest[0],
        )  # fmt: skip
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
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
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
