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
from collections.abc import Callable

import numpy as np
import onnxruntime as ort

from ddpm_deploy.onnx_model import session_options


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


def _level(name: str) -> Callable[[ort.SessionOptions], None]:
    def set_level(opts: ort.SessionOptions) -> None:
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, name)

    return set_level


def _entry(key: str, value: str) -> Callable[[ort.SessionOptions], None]:
    return lambda opts: opts.add_session_config_entry(key, value)


def _attr(name: str, value) -> Callable[[ort.SessionOptions], None]:
    return lambda opts: setattr(opts, name, value)


# One lever each, against the runtime's own session (ddpm_deploy/onnx_model.py session_options:
# ORT_ENABLE_ALL, ORT's default threads): what each alone changes per call.
OPTIONS: dict[str, Callable[[ort.SessionOptions], None] | None] = {
    "runtime default (ENABLE_ALL)": None,
    "ENABLE_EXTENDED (no NCHWc layout)": _level("ORT_ENABLE_EXTENDED"),
    "ENABLE_BASIC": _level("ORT_ENABLE_BASIC"),
    "1 intra-op thread": _attr("intra_op_num_threads", 1),
    "no thread spinning": _entry("session.intra_op.allow_spinning", "0"),
    "no CPU memory arena": _attr("enable_cpu_mem_arena", False),
    "no memory pattern": _attr("enable_mem_pattern", False),
    "I/O binding, output preallocated": None,  # the default session, run through IOBinding
}
IO_BINDING = "I/O binding, output preallocated"


def _session(model: str, lever) -> ort.InferenceSession:
    opts = session_options()
    if lever is not None:
        lever(opts)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def _bound_runner(session: ort.InferenceSession, feed: dict) -> Callable[[], None]:
    """session.run through an IOBinding whose inputs and output stay bound between calls."""
    binding = session.io_binding()
    for name, value in feed.items():
        binding.bind_cpu_input(name, value)
    out = session.run(None, feed)[0]
    value = ort.OrtValue.ortvalue_from_numpy(np.empty_like(out))
    binding.bind_ortvalue_output(session.get_outputs()[0].name, value)
    return lambda: session.run_with_iobinding(binding)


def compare_options(model: str, batch: int, runs: int, rounds: int = 3) -> dict[str, float]:
    """Median ms per call of each lever alone, the levers alternating round by round."""
    runners = {}
    for name, lever in OPTIONS.items():
        session = _session(model, lever)
        feed = feeds(session, batch)
        run = (
            _bound_runner(session, feed)
            if name == IO_BINDING
            else (lambda s=session, f=feed: s.run(None, f))
        )
        run()  # warm-up
        runners[name] = run
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            for _ in range(runs):
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * float(np.median(v)) for name, v in times.items()}


def loop_levers(model: str, batch: int, rounds: int = 3, names=None) -> dict[str, float]:
    """Seconds of one 8-call sampling run (runtime/samplers.py, DPM-Solver++(2M) on the EDM grid,
    the feeds' labels) per lever: the numpy step math between calls shares the CPU with ORT's
    threads, which a per-call timing does not see. Levers alternate round by round."""
    from ddpm_deploy.runtime.samplers import sample

    from ddpm_deploy.schedule import Schedule

    names = names or [n for n in OPTIONS if n != IO_BINDING]
    fns = {}
    for name in names:
        session = _session(model, OPTIONS[name])
        feed = feeds(session, batch)

        def eps(x, t, s=session, f=feed):
            return s.run(None, {**f, "x": x, "t": t.astype(np.int64)})[0]

        fns[name] = eps
    shape = feeds(session, 1)["x"].shape[1:]
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, eps in fns.items():
            t0 = time.perf_counter()
            sample(eps, Schedule(), batch, np.random.default_rng(0), sampler="dpm++2m", steps=8,
                   spacing="edm", shape=shape)  # fmt: skip
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(v)) for name, v in times.items()}


def startup(model: str, rounds: int = 3) -> dict[str, float]:
    """Seconds to open a session: optimising the graph at load, or loading a graph optimised
    once and saved (optimized_model_filepath), with the optimiser off."""
    saved = os.path.join(tempfile.mkdtemp(), "optimized.onnx")
    opts = session_options()
    opts.optimized_model_filepath = saved
    ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    ways = {"optimise at load": (model, True), "load the saved optimised graph": (saved, False)}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, (path, optimize) in ways.items():
            t0 = time.perf_counter()
            ort.InferenceSession(
                path, session_options(optimize=optimize), providers=["CPUExecutionProvider"]
            )
            seconds[name].append(time.perf_counter() - t0)
    return {name: float(np.median(v)) for name, v in seconds.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="ddpm_deploy/models/fashion_mnist_reference.onnx")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--runs", type=int, default=12)
    p.add_argument(
        "--compare-options", action="store_true", help="Time each session lever alone instead."
    )
    args = p.parse_args(argv)
    if args.compare_options:
        for name, ms in compare_options(args.model, args.batch, args.runs).items():
            print(f"{name:<36} {ms:8.2f} ms per call at batch {args.batch} (median)")
        for name, sec in loop_levers(args.model, args.batch).items():
            print(f"{name:<36} {sec:8.3f} s per 8-call sampling run of {args.batch} (median)")
        for name, sec in startup(args.model).items():
            print(f"{name:<36} {sec:8.3f} s to open the session (median)")
        return
    ms = profile(args.model, args.batch, args.runs)
    total = sum(ms.values())
    for op, v in ms.items():
        print(f"{op:<24} {v:8.2f} ms  {v / total:6.1%}")
    print(f"{'kernel total':<24} {total:8.2f} ms per call at batch {args.batch}")


if __name__ == "__main__":
    main()
