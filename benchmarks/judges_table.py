"""Print docs/QUALITY.md's judges table from benchmarks/judges.sh's JSON files.

python benchmarks/judges_table.py docs/quality/judges [ROW ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def cell(r: dict, key: str) -> str:
    t = r.get(key)
    return "-" if t is None else f"{t['auc']:.3f} ± {t['auc_std']:.3f}"


def fd_text(r: dict) -> str:
    """FD in the classifier's features, or '-' for a folder model (it has no domain classifier)."""
    return "-" if r.get("fd") is None else f"{r['fd']:.2f}"


def main(folder: str, rows: list[str]) -> None:
    files = (
        [Path(folder) / f"{row}.json" for row in rows]
        if rows
        else sorted(p for p in Path(folder).glob("*.json") if not p.name.startswith("."))
    )
    print(
        "| row | setting | calls/image | n | two-sample AUC | AUC, floor <= 4 | precision | recall | FD pixel PCA | FD classifier | asked class | images/s |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    floors: dict[int, dict] = {}
    for f in files:
        if not f.is_file():
            continue
        r = json.loads(f.read_text())
        doubled = r.get("guidance") not in (None, 0.0, 1.0)
        calls = r.get("network_calls", r["steps"]) * (2 if doubled else 1)
        spacing = r.get("spacing") or "own timesteps"
        analytic = f" ({r['analytic']} analytic)" if r.get("analytic") else ""
        learned = ", learned" if r.get("mix") else ""
        setting = f"{Path(r['model']).stem} {r['sampler']}-{r['steps']}{analytic} {spacing}{learned}, w={r['guidance']}"  # fmt: skip
        print(
            f"| {f.stem} | {setting} | {calls} | {r['n']} | {cell(r, 'two_sample')} | "
            f"{cell(r, 'two_sample_floor')} | {r['precision']:.3f} | {r['recall']:.3f} | "
            f"{r['fd_pixel_pca']:.2f} | {fd_text(r)} | {r.get('class_accuracy', 0):.1%} | "
            f"{r['images_per_second']:.1f} |"
        )
        floors.setdefault(r["n"], r["real"])
    for n, real in sorted(floors.items()):  # every judge's real-vs-real floor at that n
        print(
            f"| real | test split vs training images | - | {n} | "
            f"{cell(real, 'two_sample')} | {cell(real, 'two_sample_floor')} | "
            f"{real['precision']:.3f} | {real['recall']:.3f} | {real['fd_pixel_pca']:.2f} | {fd_text(real)} | - | - |"
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
