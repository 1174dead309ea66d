"""Where ONNX Runtime spends a denoiser call: kernel time per op type, from ORT's own profiler.

python benchmarks/ort_profile.py --model ddpm_deploy/models/fashion_mnist_reference.onnx --batch 100
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time

import numpy as np
import onnxruntime as ort


def feeds(session: ort.InferenceSession, batch: int) -> dict[str, np.ndarray]:
    """x, t = 500, and for a class-conditional model y: half class 0, half the null label (as a
    guided call's doubled batch is)."""
    feed = {
        "x": np.random.default_rng(0).standard_normal((batch, 1, 28, 28), dtype=np.float32),
        "t": np.full(batch, 500, dtype=np.int64),
    }
    if "y" in [i.name for i in session.get_inputs()]:
        null = int(
            json.loads(session.get_modelmeta().custom_metadata_map["ddpm_deploy.card"])["arch"][
                "num_classes"
            ]
        )
        feed["y"] = np.where(np.arange(batch) < batch // 2, 0, null).astype(np.int64)
    return feed


def profile(model: str, batch: int, runs: int) -> dict[str, float]:
    """Milliseconds of kernel time per call, by op type (after ORT's graph optimisations)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    feed = feeds(session, batch)
    session.run(None, feed)  # warm-up (profiled too: one more run in the average)
    for _ in range(runs):
        session.run(None, feed)
    with open(session.end_profiling()) as f:
        events = json.load(f)
    micros: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            micros[e["args"]["op_name"]] += e["dur"]
    return {op: us / (runs + 1) / 1e3 for op, us in micros.most_common()}


OPTIONS = {
    "ENABLE_ALL": (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, 0),
    "ENABLE_EXTENDED": (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, 0),
    "ENABLE_BASIC": (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, 0),
    "ENABLE_ALL, 1 thread": (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, 1),
}


def compare_options(model: str, batch: int, runs: int, rounds: int = 3) -> dict[str, float]:
    """Median ms per call of each session setting, the settings alternating round by round."""
    sessions = {}
    for name, (level, threads) in OPTIONS.items():
        opts = ort.SessionOptions()
        opts.graph_optimization_level = level
        opts.intra_op_num_threads = threads
        sessions[name] = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        feed = feeds(sessions[name], batch)
        sessions[name].run(None, feed)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            for _ in range(runs):
                t0 = time.perf_counter()
                session.run(None, feed)
                times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * float(np.median(v)) for name, v in times.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="ddpm_deploy/models/fashion_mnist_reference.onnx")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--runs", type=int, default=12)
    p.add_argument("--compare-options", action="store_true", help="Time session settings instead.")
    args = p.parse_args(argv)
    if args.compare_options:
        for name, ms in compare_options(args.model, args.batch, args.runs).items():
            print(f"{name:<24} {ms:8.2f} ms per call at batch {args.batch} (median)")
        return
    ms = profile(args.model, args.batch, args.runs)
    total = sum(ms.values())
    for op, v in ms.items():
        print(f"{op:<24} {v:8.2f} ms  {v / total:6.1%}")
    print(f"{'kernel total':<24} {total:8.2f} ms per call at batch {args.batch}")


if __name__ == "__main__":
    main()
