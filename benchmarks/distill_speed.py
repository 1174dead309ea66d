"""Images/s of plain `ddpm-deploy sample -n 400` (ONNX Runtime, fp32): the distilled default against
the previous default (the teacher, DPM-Solver++(2M) 20 steps at guidance 2: 40 network calls per
image), alternating, in one run, so a busy machine slows both alike.

    python benchmarks/distill_speed.py [--rounds 3] [--n 400] [--json OUT.json]

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
    "distilled default (fashion_mnist)": [],
    "previous default (fashion_mnist_teacher, dpm++2m 20, w=2)": [
        "--model", "fashion_mnist_teacher", "--sampler", "dpm++2m", "--steps", "20", "--guidance", "2",
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
    a = p.parse_args()
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
    new, old = (result[k]["images_per_s"] for k in SETTINGS)
    result["speedup"] = new / old
    print(f"speed-up: {new / old:.1f}x (sampling)")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
