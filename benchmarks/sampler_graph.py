"""The sampler graph (`export-sampler`) against the numpy loop on the same model, in one run on an
idle CPU (docs/BENCHMARKS.md, "The whole sampler in one file"): images/s at batch 1, 16 and 100 on
ONNX Runtime and OpenVINO (fp32), rounds alternating so a busy machine slows every row alike;
session start-up; file sizes; peak memory of examples/sample_onnx.py against `ddpm-deploy sample`
for 16 images, each in a process of its own.

    python benchmarks/sampler_graph.py [--model fashion_mnist] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def loop_runner(backend: str, model: str, batch: int):
    """`sample`'s numpy loop (generate_chunks) for one chunk of ``batch`` images."""
    from ddpm_deploy.runtime.backends import open_denoiser
    from ddpm_deploy.runtime.generate import generate_chunks
    from ddpm_deploy.runtime.guidance import guidance_for, random_labels
    from ddpm_deploy.runtime.sampler_settings import SamplerSettings

    den = open_denoiser(backend, model)
    settings = SamplerSettings().for_model(den.card)
    w = guidance_for(den.card, None)
    labels = random_labels(10, 0, 0, batch)

    def run() -> None:
        chunks = generate_chunks(
            den,
            settings,
            batch,
            seed=0,
            labels=labels,
            guidance=w,
            batch=batch,
            desc="",
            progress=False,
        )
        for _ in chunks:
            pass

    return run


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def speed(model: str, sampler: str, batches: list[int], rounds: int) -> list[dict]:
    rows = []
    for batch in batches:
        runners = {}
        for backend in ("ort", "openvino"):
            runners[f"numpy loop, {backend}"] = loop_runner(backend, model, batch)
            runners[f"sampler graph, {backend}"] = loop_runner(backend, sampler, batch)
        for run in runners.values():
            run()  # warm up: the first runs allocate and pick kernels
        seconds = {name: [] for name in runners}
        for _ in range(rounds):
            for name, run in runners.items():
                seconds[name].append(timed(run))
        for name, times in seconds.items():
            best = min(times)
            rows.append({"where": name, "batch": batch, "seconds": best, "runs": times,
                         "images_per_s": batch / best})  # fmt: skip
    return rows


def startup(model: str, sampler: str, repeats: int = 3) -> list[dict]:
    """Seconds to open each file ready to run (ONNX Runtime session; OpenVINO read + compile)."""
    import onnxruntime as ort
    import openvino as ov

    def ort_open(path):
        return lambda: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def ov_open(path):
        core = ov.Core()
        return lambda: core.compile_model(
            core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        )

    rows = []
    for label, path in (("model", model), ("sampler graph", sampler)):
        for where, opener in (("ort", ort_open), ("openvino", ov_open)):
            best = min(timed(opener(path)) for _ in range(repeats))
            rows.append({"file": label, "where": where, "seconds": best})
    return rows


def peak_memory(sampler: Path, work: Path) -> list[dict]:
    """Peak RSS (MB) of 16 images in a fresh process: the example, and `ddpm-deploy sample`."""
    example = REPO / "examples" / "sample_onnx.py"
    commands = {
        "examples/sample_onnx.py (onnxruntime, numpy, Pillow)": [sys.executable, str(example), str(sampler), "0"],
        "ddpm-deploy sample -n 16": [sys.executable, "-m", "ddpm_deploy", "sample", "--out", str(work / "cli")],
    }  # fmt: skip
    rows = []
    for name, cmd in commands.items():
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M %e", *cmd], cwd=work, capture_output=True, text=True
        )
        if proc.returncode:
            raise SystemExit(f"{name} failed: {proc.stderr[-500:]}")
        kb, wall = proc.stderr.strip().splitlines()[-1].split()
        rows.append({"process": name, "peak_rss_mb": int(kb) / 1024, "wall_s": float(wall)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion_mnist")
    parser.add_argument("--batches", default="1,16,100")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from ddpm_deploy.export.sampler_export import export_sampler
    from ddpm_deploy.runtime.sampler_settings import SamplerSettings

    from ddpm_deploy.shipped import resolve_model

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sampler = work / "sampler.onnx"
        record = export_sampler(args.model, sampler, SamplerSettings(), None)
        model = resolve_model(args.model)
        rows = speed(
            str(model), str(sampler), [int(b) for b in args.batches.split(",")], args.rounds
        )
        starts = startup(model, sampler)
        memory = peak_memory(sampler, work)
    plan = record["plan"]
    print(f"# {args.model}: {plan['sampler']}, {len(plan['timesteps'])} steps ({len(plan['timesteps']) - plan['analytic']} "
          f"network calls), guidance {plan['guidance']}, random classes; {cpu_name()}, {os.cpu_count()} CPUs, "
          f"load average {load:.2f} at start; best of {args.rounds} alternating rounds; {time.strftime('%Y-%m-%d')}")  # fmt: skip
    print("\n| where | batch | seconds | images/s |\n| --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['where']} | {r['batch']} | {r['seconds']:.3f} | {r['images_per_s']:.1f} |")
    print("\n| file | opened by | seconds |\n| --- | --- | ---: |")
    for r in starts:
        print(f"| {r['file']} | {r['where']} | {r['seconds']:.3f} |")
    print(f"\nfiles: model {record['model_bytes'] / 1e6:.2f} MB, sampler graph {record['bytes'] / 1e6:.2f} MB "
          f"({record['bytes'] / record['model_bytes']:.2f}x), {record['nodes']} nodes")  # fmt: skip
    print("\n| process (16 images) | peak RSS MB | wall s |\n| --- | ---: | ---: |")
    for r in memory:
        print(f"| {r['process']} | {r['peak_rss_mb']:.0f} | {r['wall_s']:.2f} |")
    print(
        json.dumps(
            {"rows": rows, "startup": starts, "memory": memory, "record": record}, default=float
        )
    )


if __name__ == "__main__":
    main()
