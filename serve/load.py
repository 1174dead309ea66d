"""Load against a running `ddpm-deploy serve`: concurrent clients asking ddpm_sample for images.

Used by benchmarks/serve_load.py (docs/SERVING.md) and, at small sizes, by
tests/serve/test_serve.py. Every client is a thread with its own HTTP connection; client c's request
r asks for images ``[k, k + images)`` of seed 0 with k distinct across the run, so no two requests
repeat an image. The batches Triton executed come from its statistics extension (per batch size) and
its Prometheus metrics (inferences / executions).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass

import numpy as np
from ddpm_deploy.serve.repository import SAMPLE_MODEL


def free_ports(k: int) -> list[int]:
    """k TCP ports free on 127.0.0.1 right now (bound together so they differ, then released)."""
    socks = [socket.socket() for _ in range(k)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class LoadResult:
    clients: int
    images_per_request: int
    requests: int
    images: int
    seconds: float
    images_per_s: float
    latency_p50_s: float
    latency_p99_s: float
    errors: int
    executed_batches: dict[int, int]  # batch size -> executions, from Triton's statistics
    mean_executed_batch: float  # from the Prometheus metrics: inferences / executions

    def as_dict(self) -> dict:
        return asdict(self)


def sample_inputs(http, start: int, count: int, seed: int = 0, **extra) -> list:
    """ddpm_sample's inputs for images start..start+count-1 of ``seed`` (``extra``: optional
    inputs such as class=..., guidance=..., steps=..., one value for every row)."""
    types = {"class": ("INT64", np.int64), "guidance": ("FP32", np.float32),
             "steps": ("INT32", np.int32), "eta": ("FP32", np.float32)}  # fmt: skip
    columns = {"seed": np.full(count, seed, np.int64), "index": np.arange(start, start + count, dtype=np.int64)}  # fmt: skip
    inputs = []
    for name, values in columns.items():
        item = http.InferInput(name, [count, 1], "INT64")
        item.set_data_from_numpy(values.reshape(-1, 1))
        inputs.append(item)
    for name, value in extra.items():
        if name in types:
            triton, dtype = types[name]
            values = np.full((count, 1), value, dtype)
        else:  # sampler, spacing, variance: strings
            triton, values = "BYTES", np.full((count, 1), str(value).encode(), object)
        item = http.InferInput(name, [count, 1], triton)
        item.set_data_from_numpy(values)
        inputs.append(item)
    return inputs


def model_stats(url: str, model: str = SAMPLE_MODEL) -> dict[int, int]:
    with urllib.request.urlopen(f"http://{url}/v2/models/{model}/stats", timeout=10) as r:
        stats = json.load(r)["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}  # fmt: skip


def metric(metrics_url: str, name: str, model: str = SAMPLE_MODEL) -> float:
    """One counter of Triton's Prometheus endpoint for one model (summed over versions)."""
    with urllib.request.urlopen(f"http://{metrics_url}/metrics", timeout=10) as r:
        text = r.read().decode()
    pattern = re.compile(rf'^{name}{{[^}}]*model="{model}"[^}}]*}} ([0-9.e+]+)$', re.M)
    return sum(float(v) for v in pattern.findall(text))


def run_load(url: str, metrics_url: str, clients: int, images: int, requests_per_client: int,
             start: int = 0, **extra) -> LoadResult:  # fmt: skip
    import tritonclient.http as http

    before = model_stats(url)
    count0, exec0 = (
        metric(metrics_url, "nv_inference_count"),
        metric(metrics_url, "nv_inference_exec_count"),
    )
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(c: int) -> None:
        conn = http.InferenceServerClient(url, connection_timeout=600, network_timeout=600)
        barrier.wait()
        for r in range(requests_per_client):
            first = start + (c * requests_per_client + r) * images
            t0 = time.perf_counter()
            try:
                conn.infer(SAMPLE_MODEL, sample_inputs(http, first, images, **extra))
                with lock:
                    latencies.append(time.perf_counter() - t0)
            except Exception as e:  # counted and reported, never hidden
                with lock:
                    errors.append(str(e).splitlines()[0])
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    after = model_stats(url)
    executed = {b: n - before.get(b, 0) for b, n in sorted(after.items()) if n > before.get(b, 0)}
    inferences = metric(metrics_url, "nv_inference_count") - count0
    executions = metric(metrics_url, "nv_inference_exec_count") - exec0
    done = len(latencies) * images
    return LoadResult(
        clients=clients, images_per_request=images, requests=clients * requests_per_client,
        images=done, seconds=round(seconds, 3), images_per_s=done / seconds,
        latency_p50_s=float(np.percentile(latencies, 50)) if latencies else float("nan"),
        latency_p99_s=float(np.percentile(latencies, 99)) if latencies else float("nan"),
        errors=len(errors), executed_batches=executed,
        mean_executed_batch=inferences / executions if executions else 0.0,
    )  # fmt: skip
