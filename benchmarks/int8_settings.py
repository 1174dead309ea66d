"""docs/QUALITY.md's int8 table: every `quantize --setting` on one model, its quality and speed.

    python benchmarks/int8_settings.py DATA_ROOT OUT_DIR [--model fashion_mnist] [--n 300]
    python benchmarks/int8_settings.py --table OUT_DIR      # print the table again

For each setting in export/quantize_settings.py: quantize (forced past the gate, so that every
file can be timed), the gate's judges at the model's default sampler (n images per model, the same
noise and classes as fp32) and again at the previous default (DPM-Solver++(2M) 20 steps, linspace,
guidance 2, where the first int8 file was grainy), and `bench`'s per-call time at batch 100 on
ONNX Runtime and OpenVINO, fp32 and int8 alternating in one run. Also the floor the bounds stand
on: fp32 against fp32 with different noise (seeds 1 and 2 against seed 0, both samplers).
One JSON per row in OUT_DIR; a row already there is not run again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ddpm_deploy.export.quantize import quantize_int8
from ddpm_deploy.export.quantize_gate import BOUNDS, compare
from ddpm_deploy.export.quantize_settings import SETTINGS
from ddpm_deploy.runtime.backends import load_denoiser
from ddpm_deploy.runtime.bench import bench
from ddpm_deploy.runtime.evaluate import EvalRequest, generate

from ddpm_deploy.shipped import resolve_model

PREVIOUS = {"sampler": "dpm++2m", "steps": 20, "spacing": "linspace", "guidance": 2.0}
BATCH = 100
KEYS = list(BOUNDS)


def samples(model, n: int, seed: int, sampler: dict | None = None):
    x, seconds = generate(load_denoiser("ort", model),
                          EvalRequest(n=n, seed=seed, batch=n, progress=False, **(sampler or {})))  # fmt: skip
    return x


def speed(fp32: Path, out: Path, calls: int) -> dict:
    """Images/s at the default sampler (``calls`` network calls per image, guidance 1: one call
    per step at the batch), from `bench`'s median step time at batch 100: fp32 and every int8
    file on ONNX Runtime and OpenVINO, all alternating round by round in one run."""
    dens = {"ort": load_denoiser("ort", fp32), "openvino": load_denoiser("openvino", fp32)}
    for name in SETTINGS:
        int8 = out / f"{name}.int8.onnx"
        if int8.exists():
            for backend in ("ort", "openvino"):
                dens[f"{backend}:{name}"] = load_denoiser(backend, int8)
    rows, _ = bench(dens, [BATCH], steps=8, rounds=3, progress=False)
    return {r.backend: round(BATCH / (calls * r.step_ms_median / 1000), 2) for r in rows}


def floors(fp32: Path, n: int, dataset: str, out: Path) -> None:
    for name, sampler in (("default", None), ("previous", PREVIOUS)):
        ref = samples(fp32, n, 0, sampler)
        for seed in (1, 2):
            path = out / f"floor_{name}_seed{seed}.json"
            if not path.exists():
                metrics = compare(samples(fp32, n, seed, sampler), ref, dataset)
                path.write_text(json.dumps({"row": f"fp32 seed {seed} vs seed 0", "sampler": name,
                                            "metrics": metrics}, indent=2))  # fmt: skip
            print(path.read_text(), flush=True)


def one_setting(name: str, fp32: Path, data_root, n: int, dataset: str, out: Path, prev) -> None:
    path = out / f"{name}.json"
    if path.exists():
        return
    int8 = out / f"{name}.int8.onnx"
    r = quantize_int8(fp32, int8, data_root, setting=name, gate_n=n, force=True)
    row = {"setting": name, **r.to_dict()}
    row["previous_sampler"] = compare(samples(int8, n, 0, PREVIOUS), prev, dataset)
    path.write_text(json.dumps(row, indent=2))
    print(name, r.gate.passed, json.dumps(r.gate.metrics), flush=True)


def passes(values: dict) -> bool:
    """Within today's BOUNDS (a row's JSON keeps the bounds of its day)."""
    return all(
        values[k] <= bound if kind == "max" else values[k] >= bound
        for k, (kind, bound) in BOUNDS.items()
    )


def table(out: Path) -> str:
    head = ("| setting | gate | AUC | precision | recall | FD | FD pixel | AUC, guidance 2 / 20 "
            "steps | ort fp32 | ort int8 | openvino fp32 | openvino int8 |")  # fmt: skip
    lines = [head, "| --- | --- |" + " ---: |" * 10]
    speed_file = out / "speed.json"
    s = json.loads(speed_file.read_text()) if speed_file.exists() else {}
    for f in sorted(out.glob("floor_*.json")):
        r = json.loads(f.read_text())
        m = r["metrics"]
        cells = [f"{m[k]:.3f}" for k in KEYS]
        lines.append(f"| floor: {r['row']}, {r['sampler']} sampler | - | " + " | ".join(cells)
                     + " | | | | | |")  # fmt: skip
    for name in SETTINGS:
        f = out / f"{name}.json"
        if not f.exists():
            continue
        r = json.loads(f.read_text())
        m = r["gate"]["metrics"]
        cells = [f"{m[k]['value']:.3f}" for k in KEYS]
        speeds = [f"{s.get(b, float('nan')):.1f}" for b in ("ort", f"ort:{name}", "openvino",
                                                             f"openvino:{name}")]  # fmt: skip
        verdict = "pass" if passes({k: m[k]["value"] for k in KEYS}) else "FAIL"
        prev = f"{r['previous_sampler']['two_sample_auc']:.3f}"
        lines.append(f"| {name} | {verdict} | " + " | ".join([*cells, prev, *speeds]) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("paths", nargs="+")
    p.add_argument("--model", default="fashion_mnist")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--table", action="store_true")
    p.add_argument("--only", default=None, help="comma-separated settings")
    a = p.parse_args()
    if a.table:
        print(table(Path(a.paths[0])))
        return
    data_root, out = a.paths
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = resolve_model(a.model)
    dataset = load_denoiser("ort", fp32).card["dataset"]
    floors(fp32, a.n, dataset, out)
    prev = samples(fp32, a.n, 0, PREVIOUS)
    for name in a.only.split(",") if a.only else SETTINGS:
        one_setting(name, fp32, data_root, a.n, dataset, out, prev)
    if not (out / "speed.json").exists():
        calls = EvalRequest().for_model(load_denoiser("ort", fp32).card).steps
        (out / "speed.json").write_text(json.dumps(speed(fp32, out, calls), indent=2))
    print(table(out))


if __name__ == "__main__":
    sys.exit(main())
