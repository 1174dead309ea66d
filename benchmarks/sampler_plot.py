"""docs/samplers.png: FD against network calls per sampler, from quality_resunet.sh's s_*.json.

python benchmarks/sampler_plot.py docs/quality/resunet docs/samplers.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    runs = [json.loads(f.read_text()) for f in sorted(args.folder.glob("s_*.json"))]
    if not runs:
        raise SystemExit(f"no s_*.json in {args.folder}; run benchmarks/quality_resunet.sh first")
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)

    def label(r: dict) -> str:
        return f"ddpm ({r['variance']})" if r["sampler"] == "ddpm" else r["sampler"]

    for name in sorted({label(r) for r in runs}):
        rows = sorted((r["steps"], r["fd"]) for r in runs if label(r) == name)
        ax.plot(*zip(*rows, strict=True), marker="o", label=name)
    ns = {r["n"] for r in runs}
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_ylim(bottom=0)
    ax.set_xlabel("network calls per image")
    ax.set_ylabel(f"FD (n = {', '.join(f'{n:,}' for n in sorted(ns))})")
    ax.set_title(f"{runs[0]['dataset']}: quality against sampling cost")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
