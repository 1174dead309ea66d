"""docs/BENCHMARKS.md's precision tables, from the OUT_DIR of benchmarks/precision_cpu.sh.

python benchmarks/precision_table.py docs/precision
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROWS = {  # bench backend -> evaluate row
    "ort": "ort_fp32",
    "ort:int8": "ort_int8",
    "openvino": "openvino_fp32",
    "openvino:bf16": "openvino_bf16",
    "openvino:int8": "openvino_int8",
    "torch": None,
}
STEPS = 20  # the default sampler's steps; guidance 2 doubles each call's batch


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    args = p.parse_args(argv)
    bench = json.loads((args.folder / "bench.json").read_text())
    ms = {(r["backend"], r["batch"]): r["step_ms_median"] for r in bench["rows"]}
    batches = sorted({b for _, b in ms})
    evals = {}
    for name in [*ROWS.values(), "ort_fp32_seed1"]:
        path = args.folder / f"{name}.json" if name else None
        if path and path.is_file():
            evals[name] = json.loads(path.read_text())
    fp32 = evals.get("ort_fp32", {}).get("fd")
    noise = (
        abs(evals["ort_fp32_seed1"]["fd"] - fp32) if fp32 and "ort_fp32_seed1" in evals else None
    )

    print(
        "#### Speed: ms per denoiser call (median), and against ONNX Runtime fp32 and PyTorch eager\n"
    )
    print("| backend | " + " | ".join(f"batch {b}" for b in batches) + " |")
    print("| --- |" + " ---: |" * len(batches))
    for backend in ROWS:
        cells = []
        for b in batches:
            if (backend, b) not in ms:
                cells.append("")
                continue
            v = ms[(backend, b)]
            cells.append(
                f"{v:.2f} ({ms[('ort', b)] / v:.2f}x ort, {ms[('torch', b)] / v:.2f}x torch)"
            )
        print(f"| {backend} | " + " | ".join(cells) + " |")

    print(
        "\n#### Quality and images/s at the default sampler (DPM-Solver++(2M) 20 steps, random classes, guidance 2)\n"
    )
    print("| backend | precision | images/s, 16 at a time | images/s, 100 at a time | FD (n = 2,000) | FD vs fp32 | asked class found | within 10% of fp32 |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for backend, row in ROWS.items():
        r = evals.get(row) if row else None
        speed = [
            f"{b / (STEPS * ms[(backend, 2 * b)] / 1e3):.1f}" if (backend, 2 * b) in ms else ""
            for b in (16, 100)
        ]
        name, _, precision = backend.partition(":")
        if r is None:
            quality = ["", "", "", "not measured" if row is None else "row missing"]
        else:
            delta = r["fd"] / fp32 - 1
            quality = [f"{r['fd']:.2f}", f"{delta:+.1%}", f"{r['class_accuracy']:.2%}", "yes" if delta <= 0.10 else "no"]  # fmt: skip
        print(f"| {name} | {precision or 'fp32'} | " + " | ".join(speed + quality) + " |")
    if noise is not None:
        print(f"\nSeed-to-seed noise of FD at this n: |FD(seed 0) - FD(seed 1)| = {noise:.2f} (ONNX Runtime fp32).")  # fmt: skip
    print(f"\nMachine: {bench.get('machine', 'see bench.json')}; peak RSS of the bench process {bench['peak_rss_mb']:.0f} MB.")  # fmt: skip


if __name__ == "__main__":
    main()
