"""PyTorch sampling on a CUDA GPU: eager vs the same step captured as a CUDA graph.

    python benchmarks/gpu_sampling.py --checkpoint models/fashion_mnist_reference/best.safetensors

Runs DDIM steps (eta = 0, x0 clipped, as `ddpm-deploy sample`) at batch 1, 16, 256 and 1024; prints
per-step latency and images/s for both, the GPU's float32 matrix-product FLOP/s and its
device-to-device copy bandwidth, as a table and as JSON (--json). Needs torch with CUDA and the
`train` extra; `--device cpu` runs the eager half only (a smoke test). UNVERIFIED until it has run
on a GPU: see docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch
from ddpm_deploy.runtime.timesteps import ddim_timesteps
from ddpm_deploy.train.checkpoint import load_model

from ddpm_deploy.card import card_schedule


def ddim_coefficients(schedule, steps: int) -> tuple[list[int], torch.Tensor]:
    """Per step: sqrt(ab_t), sqrt(1 - ab_t), sqrt(ab_prev), sqrt(1 - ab_prev) (eta = 0)."""
    ts = ddim_timesteps(schedule.T, steps).tolist()
    ab = schedule.alpha_bars
    rows = []
    for i, t in enumerate(ts):
        prev = ab[ts[i + 1]] if i + 1 < len(ts) else 1.0
        rows.append([ab[t] ** 0.5, (1 - ab[t]) ** 0.5, prev**0.5, (1 - prev) ** 0.5])
    return ts, torch.tensor(rows, dtype=torch.float32)


def ddim_step(model, x, t, c):
    eps = model(x, t)
    x0 = ((x - c[1] * eps) / c[0]).clamp(-1.0, 1.0)
    eps = (x - c[0] * x0) / c[1]
    return c[2] * x0 + c[3] * eps


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_eager(model, batch, ts, coefs, device, rounds) -> float:
    x = torch.randn(batch, 1, 28, 28, device=device)
    t = torch.empty(batch, dtype=torch.int64, device=device)
    coefs = coefs.to(device)
    best = float("inf")
    for _ in range(rounds + 1):  # the first round warms up
        _sync(device)
        t0 = time.perf_counter()
        for i, step_t in enumerate(ts):
            t.fill_(step_t)
            x = ddim_step(model, x, t, coefs[i])
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / len(ts))
    return best


def time_graph(model, batch, ts, coefs, device, rounds) -> float:
    static_x = torch.randn(batch, 1, 28, 28, device=device)
    static_t = torch.full((batch,), ts[0], dtype=torch.int64, device=device)
    static_c = coefs[0].to(device).clone()
    coefs = coefs.to(device)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the graph, as the CUDA-graph docs require
        for _ in range(3):
            ddim_step(model, static_x, static_t, static_c)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = ddim_step(model, static_x, static_t, static_c)
    best = float("inf")
    for _ in range(rounds + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i, step_t in enumerate(ts):
            static_t.fill_(step_t)
            static_c.copy_(coefs[i])
            graph.replay()
            static_x.copy_(static_out)
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / len(ts))
    return best


@contextlib.contextmanager
def true_fp32():
    """Plain float32 convolutions and matmuls (both default to TF32 on Ampere and later), restoring
    the caller's settings afterwards."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def matmul_flops(device, n: int = 8192, repeats: int = 5) -> float:
    """Best-of FLOP/s of a true fp32 n x n matmul (the caller's TF32 settings are left alone)."""
    with true_fp32():
        return _matmul_flops(device, n, repeats)


def _matmul_flops(device, n: int, repeats: int) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def copy_bandwidth(device, mib: int = 1024, repeats: int = 5) -> float:
    src = torch.empty(mib << 18, dtype=torch.float32, device=device)  # mib MiB
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * 4 / best  # bytes read + written per second


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="models/fashion_mnist_reference/best.safetensors")
    p.add_argument("--batch", default="1,16,256,1024")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU visible to torch; pass --device cpu for the eager smoke test")
    model, card = load_model(args.checkpoint)
    model = model.to(device).eval()
    ts, coefs = ddim_coefficients(card_schedule(card), args.steps)
    rows = []
    with torch.inference_mode(), true_fp32():  # the sampling rows are labelled fp32: make them so
        for batch in (int(b) for b in args.batch.split(",")):
            row = {
                "batch": batch,
                "eager_ms": 1e3 * time_eager(model, batch, ts, coefs, device, args.rounds),
            }
            if device.type == "cuda":
                row["graph_ms"] = 1e3 * time_graph(model, batch, ts, coefs, device, args.rounds)
            for mode in ("eager", "graph"):
                if f"{mode}_ms" in row:
                    row[f"{mode}_img_s_ddpm1000"] = batch / (row[f"{mode}_ms"] / 1e3 * 1000)
            rows.append(row)
        result = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "steps": args.steps,
            "rows": rows,
            "matmul_fp32_tflops": matmul_flops(device, n=8192 if device.type == "cuda" else 512)
            / 1e12,
            "copy_gb_s": copy_bandwidth(device, mib=1024 if device.type == "cuda" else 16) / 1e9,
        }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['device']}, torch {result['torch']}, DDIM steps of the reference UNet")
        print(
            f"{'batch':>6} {'eager ms/step':>14} {'graph ms/step':>14} {'eager img/s':>12} {'graph img/s':>12}  (img/s for DDPM-1000)"
        )
        for r in rows:
            print(
                f"{r['batch']:>6} {r['eager_ms']:>14.3f} {r.get('graph_ms', float('nan')):>14.3f} "
                f"{r['eager_img_s_ddpm1000']:>12.1f} {r.get('graph_img_s_ddpm1000', float('nan')):>12.1f}"
            )
        print(
            f"matmul fp32 {result['matmul_fp32_tflops']:.1f} TFLOP/s, copy {result['copy_gb_s']:.0f} GB/s"
        )
    return result


if __name__ == "__main__":
    main()
