"""Whole-process `ddpm-deploy sample -n 400` at three sampler settings, alternating in one run
(docs/BENCHMARKS.md, "Analytic steps"): the model's own sampler (its card's spec: analytic steps
and 4 or 5 network calls on the shipped models), the previous 8-call default, and the 40-call one
before it (20 steps at guidance 2, which doubles every call). Wall time includes process start, imports, the PNG and the
GIF, as a user sees it; rounds alternate the settings so a busy machine slows all alike.

    python benchmarks/sampler_speed.py --model fashion_mnist --rounds 3 [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SETTINGS = {
    "own (the model's sampler)": [],
    "8 calls (dpm++2m edm)": [
        "--sampler",
        "dpm++2m",
        "--steps",
        "8",
        "--spacing",
        "edm",
        "--analytic",
        "0",
    ],
    "40 calls (20 steps, guidance 2)": [
        "--sampler",
        "dpm++2m",
        "--steps",
        "20",
        "--spacing",
        "linspace",
        "--analytic",
        "0",
        "--guidance",
        "2",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion_mnist")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-n", type=int, default=400)
    parser.add_argument("--json", dest="out", default=None)
    args = parser.parse_args()
    cli = shutil.which("ddpm-deploy") or sys.exit("ddpm-deploy is not on PATH")
    seconds: dict[str, list[float]] = {name: [] for name in SETTINGS}
    calls: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, flags in SETTINGS.items():
                cmd = [
                    cli,
                    "sample",
                    "--model",
                    args.model,
                    "-n",
                    str(args.n),
                    "--batch",
                    "100",
                    "--out",
                    tmp,
                    *flags,
                ]
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                seconds[name].append(time.perf_counter() - t0)
                record = json.load(open(f"{tmp}/run.json"))
                calls[name] = record["network_calls"] * (
                    2 if record.get("guidance") not in (None, 0, 1) else 1
                )
                print(f"round {r + 1} {name}: {seconds[name][-1]:.2f} s", file=sys.stderr)
    own = statistics.median(seconds["own (the model's sampler)"])
    rows = []
    for name, s in seconds.items():
        med = statistics.median(s)
        rows.append(
            {
                "setting": name,
                "calls_per_image": calls[name],
                "seconds": s,
                "median_s": med,
                "images_per_s": args.n / med,
                "own_speedup": med / own,
            }
        )
        print(f"| {name} | {calls[name]} | {med:.2f} | {args.n / med:.1f} | {med / own:.2f}x |")
    if args.out:
        info = {
            "model": args.model,
            "n": args.n,
            "rounds": args.rounds,
            "machine": platform.machine(),
            "processor": platform.processor(),
            "rows": rows,
        }
        with open(args.out, "w") as f:
            json.dump(info, f, indent=2)


if __name__ == "__main__":
    main()
