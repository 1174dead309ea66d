"""docs/QUALITY.md's table of the seed article's UNet (the earlier default, shipped as
fashion_mnist_reference), from the JSON files of quality_gpu.sh (n=10,000) and quality_cpu.sh.

    python benchmarks/quality_table.py docs/quality/gpu docs/quality/cpu

Quality columns come from the n=10,000 rows; the time column from the CPU rows, scaled to 10,000
images where the CPU row generated fewer (time is linear in n at a fixed chunk size).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROWS = [
    ("fashion_ddpm1000", "DDPM-1000, x0 clipped"),
    ("fashion_ddpm1000_noclip", "DDPM-1000, no clipping (the article)"),
    ("fashion_ddim100", "DDIM-100, eta 0"),
    ("fashion_ddim50", "DDIM-50, eta 0"),
    ("fashion_ddim20", "DDIM-20, eta 0"),
    ("fashion_ddim10", "DDIM-10, eta 0"),
]


def command(r: dict) -> str:
    model = "mnist_reference" if r["dataset"] == "mnist" else "fashion_mnist_reference"
    parts = [f"ddpm-deploy evaluate --model {model}", f"--sampler {r['sampler']}"]
    parts.append(f"--steps {r['steps']}")
    if not r["clip"]:
        parts.append("--no-clip")
    parts.append(f"-n {r['n']}")
    return " ".join(parts)


def table(quality_dir: Path, cpu_dir: Path) -> str:
    lines = [
        "| sampler | FD | class deviation | mean confidence | outside [-1, 1] | CPU s per 10k images "
        "| CPU-side FD check | command |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    floor = None
    for name, label in ROWS:
        q_path, c_path = quality_dir / f"{name}.json", cpu_dir / f"{name}.json"
        if not q_path.is_file():
            continue
        q = json.loads(q_path.read_text())
        floor = q["real"]
        cpu = json.loads(c_path.read_text()) if c_path.is_file() else None
        seconds = f"{cpu['seconds'] * 10_000 / cpu['n']:,.0f}" if cpu else "-"
        if cpu and cpu["n"] != 10_000:
            seconds += f" (n={cpu['n']:,})"
        check = f"{cpu['fd']:.3f}" if cpu and cpu["n"] == q["n"] else "-"
        lines.append(
            f"| {label} | {q['fd']:.3f} | {q['max_class_deviation']:.4f} | "
            f"{q['mean_confidence']:.4f} | {q['share_outside_range']:.2%} | {seconds} | {check} "
            f"| `{command(q)}` |"
        )
    if floor is not None:
        lines.append(
            f"| real data: {floor['n']:,} training images | {floor['fd']:.3f} | "
            f"{floor['max_class_deviation']:.4f} | {floor['mean_confidence']:.4f} | 0.00% | - | - | "
            "(every evaluate run) |"
        )
    seeds = sorted(cpu_dir.glob("fashion_ddim10_seed*.json"))
    if seeds and (cpu_dir / "fashion_ddim10.json").is_file():
        runs = [json.loads(p.read_text()) for p in [cpu_dir / "fashion_ddim10.json", *seeds]]
        fds = ", ".join(f"{r['fd']:.1f} (seed {r['seed']})" for r in runs)
        lines += ["", f"Seed-to-seed noise, DDIM-10 at n = 10,000 on the CPU: FD {fds}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("quality_dir", type=Path, help="JSON files of the n=10,000 rows")
    p.add_argument("cpu_dir", type=Path, help="JSON files of the CPU rows")
    args = p.parse_args(argv)
    print(table(args.quality_dir, args.cpu_dir))


if __name__ == "__main__":
    main()
