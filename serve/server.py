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

import ipaddress
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ddpm_deploy.hardware.triton_dist import libpython_dir, stub_path, triton_dist
from ddpm_deploy.runtime.backends import ModelChoice
from ddpm_deploy.serve.processes import TritonGroup

from ddpm_deploy.errors import UserError
from ddpm_deploy.files import check_output, check_writable, refuse_dangling

SERVED_BACKENDS = ("ort", "openvino", "trt", "torch")  # what the Python backend can run


@dataclass
class ServeOptions(ModelChoice):
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
        if self.backend not in SERVED_BACKENDS:
            raise UserError(
                f"serve runs --backend {' or '.join(SERVED_BACKENDS)} inside Triton, not {self.backend}"
            )
        self.check_choice()
        check_host(self.host)
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
        if self.log:
            check_log(self.log)


def check_host(host: str) -> None:
    """Triton binds its HTTP and metrics servers with inet_addr: an IPv4 address only. A name
    binds 255.255.255.255 (never ready), and a malformed one broke the readiness URL."""
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise UserError(
            f"--host {host!r} is not an IPv4 address; Triton binds one: 127.0.0.1 serves this "
            "machine, 0.0.0.0 every interface"
        ) from None


def check_log(log: str) -> None:
    """--log like every output, before any work (Triton opens it, following a link, and waits
    for a reader on a FIFO for ever), creating nothing: a missing folder is made when serve
    starts Triton, which does not make it."""
    try:
        check_output(log)
        refuse_dangling(Path(log))  # a link to nothing, or a loop, which resolve() raises on
        check_output(Path(log).resolve())  # what a link names is what Triton writes
        check_writable(Path(log).resolve().parent, "--log")
    except UserError as e:
        raise UserError(f"--log: {e}") from None
    if Path(log).exists() and not os.access(log, os.W_OK):
        raise UserError(f"--log {log} is not writable; choose another path")


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
    from ddpm_deploy.runtime.backends import model_path
    from ddpm_deploy.serve.repository import write_serve_repository

    opts.validate()
    dist = triton_dist()
    env = server_env(dist)  # checks libpython before anything starts
    card = opts.open().card  # one line, if bad
    if "sampler_graph" in card:
        raise UserError(
            f"{opts.model} holds its whole sampler; serve runs the numpy loop around a denoiser: "
            "serve this file with `ddpm-deploy triton-repo` (the ONNX Runtime backend), or pass "
            "the model it came from"
        )
    model, options = model_path(opts.backend, opts.model), opts.backend_kwargs()
    with tempfile.TemporaryDirectory(prefix="ddpm-deploy-serve-") as tmp:
        workspace = Path(tmp)
        repo = workspace / "models"
        write_serve_repository(
            repo,
            card,
            str(Path(model).resolve()),
            opts.backend,
            options,
            opts.max_images,
            opts.queue_delay_us,
            opts.batch,
        )
        backends = prepare_backends(dist, workspace)
        log = Path(opts.log).resolve() if opts.log else workspace / "triton.log"
        log.parent.mkdir(parents=True, exist_ok=True)  # checked writable (check_log)
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
