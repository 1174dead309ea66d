"""Images/s of plain `ddpm-deploy sample -n 400` (ONNX Runtime, fp32): today's default (DPM-Solver++(2M),
8 steps on the EDM schedule, guidance 1: 8 network calls per image) against the previous default
(20 steps, linspace, guidance 2: 40 calls) and, with --student, a distilled model's own sampler;
alternating, in one run, so a busy machine slows them alike.

    python benchmarks/distill_speed.py [--rounds 3] [--n 400] [--student FILE.onnx] [--json OUT.json]

Reports, per setting, the sampling seconds that `sample` writes to run.json and the wall time of the
whole command (start-up, loading, PNG and GIF included).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {
    "default (dpm++2m 8 edm, w=1: 8 calls)": [],
    "previous default (dpm++2m 20 linspace, w=2: 40 calls)": [
        "--sampler", "dpm++2m", "--steps", "20", "--spacing", "linspace", "--guidance", "2",
    ],
}  # fmt: skip


def run(args: list[str], n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "ddpm_deploy", "sample", "-n", str(n), "--out", out, *args]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        return json.loads((Path(out) / "run.json").read_text())["seconds"], wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--json", default=None)
    p.add_argument("--student", default=None, help="a distilled ONNX file, run at its own sampler")
    a = p.parse_args()
    if a.student:
        SETTINGS[f"distilled student ({a.student})"] = ["--model", a.student]
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in SETTINGS}
    for r in range(a.rounds):
        for name, args in SETTINGS.items():
            times[name].append(run(args, a.n))
            print(f"round {r + 1}: {name}: {times[name][-1][0]:.2f} s sampling", file=sys.stderr)
    result = {
        "n": a.n,
        "rounds": a.rounds,
        "machine": f"{platform.machine()} {platform.processor()}",
    }
    for name, ts in times.items():
        sampling = statistics.median(t for t, _ in ts)
        wall = statistics.median(w for _, w in ts)
        result[name] = {"sampling_s": sampling, "wall_s": wall, "images_per_s": a.n / sampling,
                        "images_per_s_wall": a.n / wall}  # fmt: skip
        print(f"{name}: {a.n / sampling:.1f} images/s sampling ({sampling:.2f} s), "
              f"{a.n / wall:.1f} images/s wall ({wall:.2f} s), median of {a.rounds}")  # fmt: skip
    names = list(SETTINGS)
    old = result[names[1]]["images_per_s"]
    for name in names[:1] + names[2:]:
        result[name]["speedup"] = result[name]["images_per_s"] / old
        print(f"{name}: {result[name]['speedup']:.1f}x the previous default (sampling)")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
