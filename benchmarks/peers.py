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
    """The unet of the folder `export-diffusers` writes (once), loaded the way a diffusers user would."""
    from ddpm_deploy.export.diffusers_export import export_diffusers
    from diffusers import DiffusionPipeline

    if not folder.exists():
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
    for precision in ("fp32", "bf16"):  # bf16: AVX-512 BF16 or AMX, where the CPU has them
        name = f"OpenVINO {precision}"
        try:
            ov_den = load_denoiser("openvino", onnx_path, precision=precision)
            calls[name] = lambda x, t, d=ov_den: d(x, np.full(len(x), t), labels(len(x)))
        except Exception as e:  # noqa: BLE001 - a missing install or CPU feature is reported
            skipped[name] = str(e).splitlines()[0]
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


def sampling(checkpoint: Path, folder: Path, batch: int, rounds: int, bf16: bool) -> dict:
    """Images/s of one 8-call sampling run per contender (after a warm-up run each), alternating."""
    import torch
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.runtime.guidance import Guided
    from ddpm_deploy.runtime.samplers import sample
    from diffusers import DPMSolverMultistepScheduler

    den = load_denoiser("ort", folder / "model.onnx")
    unet, scheduler = diffusers_unet(checkpoint, folder / "diffusers")
    dpm = DPMSolverMultistepScheduler.from_config(
        scheduler.config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True
    )
    compiled = torch.compile(unet)
    shape = den.image_shape

    def ours(denoiser) -> Callable[[], None]:
        def run() -> None:
            guided = Guided(denoiser, None, 0.0)
            rng = np.random.default_rng(0)
            sample(
                guided, denoiser.schedule, batch, rng, sampler="dpm++2m", steps=STEPS, spacing="edm"
            )

        return run

    def theirs(model) -> Callable[[], None]:
        def run() -> None:
            dpm.set_timesteps(STEPS)
            x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(0))
            with torch.inference_mode():
                for t in dpm.timesteps:
                    x = dpm.step(model(x, t, return_dict=False)[0], t, x).prev_sample

        return run

    runs = {"ddpm-deploy (ONNX Runtime, numpy loop)": ours(den)}
    if bf16:
        ov = load_denoiser("openvino", folder / "model.onnx", precision="bf16")
        runs["ddpm-deploy (OpenVINO bf16, numpy loop)"] = ours(ov)
    runs["diffusers torch eager"] = theirs(unet)
    runs["diffusers torch.compile"] = theirs(compiled)
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


def diffusers_process(folder: str, n: int, compiled: bool, out: str) -> None:
    """What a diffusers user runs, in a process of its own: load the folder, (compile,) sample n
    images with the 8-call DPM-Solver++(2M) loop 100 at a time, save a PNG of the first 64."""
    import torch
    from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler
    from PIL import Image

    pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    unet = torch.compile(pipe.unet.eval()) if compiled else pipe.unet.eval()
    dpm = DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True
    )
    shape = (pipe.unet.config.in_channels, *([pipe.unet.config.sample_size] * 2))
    images = []
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for start in range(0, n, 100):
            dpm.set_timesteps(STEPS)
            x = torch.randn((min(100, n - start), *shape), generator=gen)
            for t in dpm.timesteps:
                x = dpm.step(unet(x, t, return_dict=False)[0], t, x).prev_sample
            images.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy())
    cols = min(8, n)
    grid = np.concatenate(images)[: cols * min(8, n // cols), 0]
    rows = grid.reshape(-1, cols, *grid.shape[1:]).transpose(0, 2, 1, 3)
    rows = rows.reshape(rows.shape[0] * shape[1], -1)
    Image.fromarray(rows).save(Path(out) / "samples.png")


def whole_process(checkpoint: Path, folder: Path, n: int, rounds: int) -> dict:
    """Seconds of whole processes, start-up included, alternating: `ddpm-deploy sample -n` on the
    same 8-call budget (the null label) against diffusers' loop on torch.compile and eager."""
    import subprocess
    import sys

    diffusers_folder = folder / "diffusers"
    diffusers_unet(checkpoint, diffusers_folder)  # written by contenders() already
    out = folder / "out"
    out.mkdir()
    ours = [sys.executable, "-m", "ddpm_deploy", "sample", "--model", str(folder / "model.onnx"),
            "-n", str(n), "--sampler", "dpm++2m", "--steps", str(STEPS), "--spacing", "edm",
            "--analytic", "0", "--guidance", "0", "--out", str(out)]  # fmt: skip
    theirs = [sys.executable, __file__, "--diffusers-process", str(diffusers_folder), "-n", str(n),
              "--out", str(out)]  # fmt: skip
    commands = {"ddpm-deploy sample (ONNX Runtime)": ours, "diffusers torch.compile": [*theirs, "--compile"],
                "diffusers torch eager": theirs}  # fmt: skip
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, cmd in commands.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            seconds[name].append(time.perf_counter() - t0)
    return {name: {"seconds": s, "images_per_s": n / float(np.median(s))} for name, s in seconds.items()}  # fmt: skip


def machine() -> str:
    """The CPU's model name, core count and the BF16/AMX flags that OpenVINO's bf16 uses."""
    import os

    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), platform.machine())  # fmt: skip
    flags = sorted({f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f" {f}" in text})
    return f"{name}, {os.cpu_count()} CPUs, {' '.join(flags) or 'no BF16/AMX'}"


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
    if "whole_process" in result:
        lines += ["", f"| whole process, -n {result['whole_process_n']} | seconds (median) | images/s |", "| --- | ---: | ---: |"]  # fmt: skip
        lines += [f"| {name} | {np.median(r['seconds']):.1f} | {r['images_per_s']:.1f} |" for name, r in result["whole_process"].items()]  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(ROOT / "models/fashion_mnist/model.safetensors"))
    p.add_argument("--batches", type=int, nargs="+", default=[16, 100])
    p.add_argument("--calls", type=int, default=12)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sampling-batch", type=int, default=100)
    p.add_argument("--json", default=None)
    p.add_argument(
        "--whole-process", type=int, default=0, help="Also time whole processes of -n N."
    )
    # the diffusers side of --whole-process, run as a child process
    p.add_argument("--diffusers-process", default=None, help=argparse.SUPPRESS)
    p.add_argument("-n", type=int, default=400, help=argparse.SUPPRESS)
    p.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=".", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.diffusers_process:
        diffusers_process(args.diffusers_process, args.n, args.compile, args.out)
        return
    from ddpm_deploy.runtime.bench import matmul_flops
    from ddpm_deploy.runtime.flops import count_flops

    from ddpm_deploy.onnx_model import read_card

    skipped: dict[str, str] = {}
    ckpt = Path(args.checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        calls = contenders(Path(args.checkpoint), folder, skipped)
        shape = read_card(folder / "model.onnx")["image"]["shape"]
        result = {
            "machine": machine(),
            "matmul_flops": matmul_flops(),
            "flops_per_image": count_flops(folder / "model.onnx")["total"],
            "per_call": per_call(calls, args.batches, args.calls, args.rounds, shape),
            "sampling_batch": args.sampling_batch,
            "skipped": skipped,
        }
        if "diffusers" not in skipped:
            bf16 = "OpenVINO bf16" in calls
            result["sampling"] = sampling(ckpt, folder, args.sampling_batch, args.rounds, bf16)
        if args.whole_process and "diffusers" not in skipped:
            result["whole_process_n"] = args.whole_process
            result["whole_process"] = whole_process(ckpt, folder, args.whole_process, args.rounds)
    print(table(result) if "sampling" in result else json.dumps(result, indent=2))
    if skipped:
        print("skipped:", skipped)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
