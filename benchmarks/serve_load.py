"""docs/SERVING.md's load table: `ddpm-deploy serve` under 1, 4, 16 and 64 concurrent clients,
each asking ddpm_sample for 16 images with the default sampler, against one local `ddpm-deploy
sample` process making as many images at several --batch sizes.

    python benchmarks/serve_load.py OUT.json [--clients 1,4,16,64] [--images 16]

Starts its own server on free ports (`serve --max-images 64`), runs the clients, stops it, then
times the local runs (run.json's sampling seconds: model loading excluded, which favours the
local process). Run it alone on the machine: the server and the clients share its cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ddpm_deploy.serve.load import free_ports, run_load

CLI = str(Path(sys.executable).parent / "ddpm-deploy")


def local_images_per_s(n: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([CLI, "sample", "-n", str(n), "--batch", str(batch), "--frames", "2",
                        "--out", out], check=True, capture_output=True)  # fmt: skip
        return n / json.loads((Path(out) / "run.json").read_text())["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--clients", default="1,4,16,64")
    ap.add_argument("--images", type=int, default=16, help="images per request")
    ap.add_argument("--min-images", type=int, default=128, help="at least this many per level")
    ap.add_argument("--local-batches", default="16,64,256")
    ap.add_argument("--server-batch", type=int, default=16, help="serve --batch")
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]

    http, grpc, metrics = free_ports(3)
    server = subprocess.Popen([CLI, "serve", "--http-port", str(http), "--grpc-port", str(grpc),
                               "--metrics-port", str(metrics), "--max-images", "64",
                               "--batch", str(args.server_batch)],
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    print(server.stderr.readline().strip(), file=sys.stderr)
    url, metrics_url = f"127.0.0.1:{http}", f"127.0.0.1:{metrics}"
    rows, start = [], 0
    try:
        run_load(
            url, metrics_url, clients=1, images=2, requests_per_client=1, start=10**6
        )  # warm-up
        for c in clients:
            per_client = max(1, -(-args.min_images // (c * args.images)))
            r = run_load(url, metrics_url, c, args.images, per_client, start=start)
            start += c * per_client * args.images
            rows.append(r.as_dict())
            print(f"{c:>3} clients: {r.images_per_s:6.1f} img/s, p50 {r.latency_p50_s:.2f} s, "
                  f"p99 {r.latency_p99_s:.2f} s, mean executed batch {r.mean_executed_batch:.1f}, "
                  f"errors {r.errors}", file=sys.stderr)  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
    n_local = max(int(b) for b in args.local_batches.split(","))
    local = {}
    for b in args.local_batches.split(","):
        local[b] = local_images_per_s(n_local, int(b))
        print(f"local sample --batch {b}: {local[b]:.1f} img/s", file=sys.stderr)
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "images_per_request": args.images,
        "server_batch": args.server_batch,
        "served": rows,
        "local_images_per_s": local,
        "local_n": n_local,
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
