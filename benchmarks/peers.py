"""Per call and per image against what a user would pick instead, in one alternating run: the same
network through ddpm-deploy's ONNX Runtime session, OpenVINO, and the diffusers folder that
`export-diffusers` writes on PyTorch eager and on torch.compile.

    python benchmarks/peers.py [--checkpoint models/fashion_mnist/model.safetensors]
        [--batches 16 100] [--calls 12] [--rounds 3] [--sampling-batch 100] [--json OUT.json]

Per call: milliseconds p50/p90 over ``--calls`` calls per round, the contenders alternating round by
round (a busy machine slows them alike), and the achieved FLOP/s against the same run's numpy
matmul peak. torch.compile's compile time (its first calls) is reported apart. Sampling: the same
8-call budget (DPM-Solver++(2M) on Karras/EDM sigmas, the null label) through diffusers'
DPMSolverMultistepScheduler on torch, and through ddpm-deploy's numpy loop on ONNX Runtime.
Skips a contender with a reason when its library is missing. Numbers: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEPS = 8


def diffusers_unet(checkpoint: Path, folder: Path):
    """The unet of the folder `export-diffusers` writes, loaded the way a diffusers user would."""
    from ddpm_deploy.export.diffusers_export import export_diffusers
    from diffusers import DiffusionPipeline

    export_diffusers(checkpoint, folder, echo=lambda *_: None)
    pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    return pipe.unet.eval(), pipe.scheduler


def onnx_file(checkpoint: Path, folder: Path) -> Path:
    from ddpm_deploy.export.onnx_export import export_onnx

    path = folder / "model.onnx"
    export_onnx(checkpoint, path, verify=False)
    return path


def contenders(checkpoint: Path, folder: Path, skipped: dict) -> dict[str, Callable]:
    """name -> call(x: float32 [N, C, H, W], t: int) -> eps, every one on the null label."""
    import torch
    from ddpm_deploy.runtime.backends import load_denoiser

    onnx_path = onnx_file(checkpoint, folder)
    ort_den = load_denoiser("ort", onnx_path)
    null = ort_den.num_classes or None

    def labels(n: int) -> np.ndarray | None:
        return None if null is None else np.full(n, null, np.int64)

    calls = {
        "ddpm-deploy ONNX Runtime": lambda x, t: ort_den(x, np.full(len(x), t), labels(len(x)))
    }
    try:
        ov_den = load_denoiser("openvino", onnx_path)
        calls["OpenVINO fp32"] = lambda x, t: ov_den(x, np.full(len(x), t), labels(len(x)))
    except Exception as e:  # noqa: BLE001 - a missing or broken install is reported, not fatal
        skipped["OpenVINO fp32"] = str(e).splitlines()[0]
    try:
        unet, _ = diffusers_unet(checkpoint, folder / "diffusers")
    except Exception as e:  # noqa: BLE001
        skipped["diffusers"] = str(e).splitlines()[0]
        return calls
    compiled = torch.compile(unet)

    def torch_call(model):
        def call(x, t):
            with torch.inference_mode():
                return model(torch.from_numpy(x), t, return_dict=False)[0].numpy()

        return call

    calls["diffusers torch eager"] = torch_call(unet)
    calls["diffusers torch.compile"] = torch_call(compiled)
    return calls


def per_call(calls: dict, batches: list[int], n_calls: int, rounds: int, shape) -> dict:
    """ms per call, p50 and p90, per contender and batch; the first call of each is its warm-up
    (for torch.compile: the compile, reported as ``first_call_s``)."""
    rng = np.random.default_rng(0)
    out: dict = {name: {} for name in calls}
    for batch in batches:
        x = rng.standard_normal((batch, *shape), dtype=np.float32)
        for name, call in calls.items():
            t0 = time.perf_counter()
            call(x, 500)
            out[name][batch] = {"first_call_s": round(time.perf_counter() - t0, 2), "ms": []}
        for _ in range(rounds):
            for name, call in calls.items():
                for _ in range(n_calls):
                    t0 = time.perf_counter()
                    call(x, 500)
                    out[name][batch]["ms"].append(1e3 * (time.perf_counter() - t0))
        for name in calls:
            ms = out[name][batch].pop("ms")
            out[name][batch].update(
                p50=float(np.percentile(ms, 50)), p90=float(np.percentile(ms, 90))
            )
    return out


def sampling(checkpoint: Path, folder: Path, batch: int, rounds: int) -> dict:
    """Images/s of one 8-call sampling run per contender (after a warm-up run each), alternating."""
    import torch
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.runtime.guidance import Guided
    from ddpm_deploy.runtime.samplers import sample
    from diffusers import DPMSolverMultistepScheduler

    den = load_denoiser("ort", folder / "model.onnx")
    unet, scheduler = diffusers_unet(checkpoint, folder / "diffusers-sampling")
    dpm = DPMSolverMultistepScheduler.from_config(
        scheduler.config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True
    )
    compiled = torch.compile(unet)
    shape = den.image_shape

    def ours() -> None:
        sample(
            Guided(den, None, 0.0),
            den.schedule,
            batch,
            np.random.default_rng(0),
            sampler="dpm++2m",
            steps=STEPS,
            spacing="edm",
        )

    def theirs(model) -> Callable[[], None]:
        def run() -> None:
            dpm.set_timesteps(STEPS)
            x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(0))
            with torch.inference_mode():
                for t in dpm.timesteps:
                    x = dpm.step(model(x, t, return_dict=False)[0], t, x).prev_sample

        return run

    runs = {
        "ddpm-deploy (ONNX Runtime, numpy loop)": ours,
        "diffusers torch eager": theirs(unet),
        "diffusers torch.compile": theirs(compiled),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up (and the compile)
    for _ in range(rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - t0)
    return {
        name: {"images_per_s": batch / float(np.median(s)), "seconds": s}
        for name, s in seconds.items()
    }


def table(result: dict) -> str:
    peak = result["matmul_flops"]
    lines = [
        "| contender | batch | ms per call p50 | p90 | images/s per call | % of matmul peak | first call s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, per_batch in result["per_call"].items():
        for batch, r in per_batch.items():
            achieved = result["flops_per_image"] * int(batch) / (r["p50"] / 1e3)
            lines.append(
                f"| {name} | {batch} | {r['p50']:.1f} | {r['p90']:.1f} | {int(batch) / r['p50'] * 1e3:.0f} | {100 * achieved / peak:.0f}% | {r['first_call_s']} |"
            )
    lines += [
        "",
        f"| 8-call sampling (batch {result['sampling_batch']}) | images/s |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {r['images_per_s']:.1f} |" for name, r in result["sampling"].items()]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(ROOT / "models/fashion_mnist/model.safetensors"))
    p.add_argument("--batches", type=int, nargs="+", default=[16, 100])
    p.add_argument("--calls", type=int, default=12)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sampling-batch", type=int, default=100)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    from ddpm_deploy.runtime.bench import matmul_flops
    from ddpm_deploy.runtime.flops import count_flops

    from ddpm_deploy.onnx_model import read_card

    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        calls = contenders(Path(args.checkpoint), folder, skipped)
        shape = read_card(folder / "model.onnx")["image"]["shape"]
        result = {
            "machine": f"{platform.processor() or platform.machine()}, {platform.node()}",
            "matmul_flops": matmul_flops(),
            "flops_per_image": count_flops(folder / "model.onnx")["total"],
            "per_call": per_call(calls, args.batches, args.calls, args.rounds, shape),
            "sampling_batch": args.sampling_batch,
            "skipped": skipped,
        }
        if "diffusers" not in skipped:
            result["sampling"] = sampling(
                Path(args.checkpoint), folder, args.sampling_batch, args.rounds
            )
    print(table(result) if "sampling" in result else json.dumps(result, indent=2))
    if skipped:
        print("skipped:", skipped)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
