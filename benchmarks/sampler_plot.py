"""docs/samplers.png: FD against sampling steps per sampler, from quality_resunet.sh's s_* and g2_* rows.

python benchmarks/sampler_plot.py docs/quality/resunet docs/samplers.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLORS = {"ddim": "C0", "ddpm (posterior)": "C1", "dpm++2m": "C2", "ddpm (beta)": "C3"}


def main(argv: list[str] | None = None) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    panels = {
        "random classes, guidance 1": sorted(args.folder.glob("s_*.json")),
        "random classes, guidance 2 (default)": sorted(
            set(args.folder.glob("g2_*.json")) - set(args.folder.glob("*_1k.json"))
        )
        + [args.folder / "fashion_rand2.json"],
    }
    panels = {k: [json.loads(f.read_text()) for f in v if f.is_file()] for k, v in panels.items()}
    if not any(panels.values()):
        raise SystemExit(f"no s_*.json in {args.folder}; run benchmarks/quality_resunet.sh first")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110, sharey=True)

    def label(r: dict) -> str:
        return f"ddpm ({r['variance']})" if r["sampler"] == "ddpm" else r["sampler"]

    for ax, (title, runs) in zip(axes, panels.items(), strict=True):
        runs = [r for r in runs if "reference" not in r["model"] and r.get("spacing") == "linspace"]
        for name in sorted({label(r) for r in runs}):
            rows = sorted((r["steps"], r["fd"]) for r in runs if label(r) == name)
            ax.plot(*zip(*rows, strict=True), marker="o", label=name, color=COLORS.get(name))
        ns = {r["n"] for r in runs}
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([5, 10, 20, 50, 100, 1000]))
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_ylim(
            0,
            1.08
            * max(r["fd"] for rs in panels.values() for r in rs if "reference" not in r["model"]),
        )
        ax.set_xlabel("sampling steps per image")
        ax.set_ylabel(f"FD (n = {', '.join(f'{n:,}' for n in sorted(ns))})")
        ax.set_title(f"Fashion-MNIST, {title}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
