"""docs/QUALITY.md's table "Training-free solvers at 5, 8, 10 calls", from solvers.sh's JSON files.

    python benchmarks/solvers_table.py docs/quality/solvers

One row per JSON file, grouped by network calls per image. Columns an `evaluate` of that version
did not report (the two-sample test, precision and recall came later) print as "-"; missing rows
are left out, so the script runs on a partial measurement.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SAMPLERS = {"dpm++2m": "DPM-Solver++(2M)", "dpm++3m": "DPM-Solver++(3M)", "ipndm": "iPNDM"}
SAMPLER_ORDER = list(SAMPLERS)
SPACING_ORDER = ["linspace", "logsnr", "edm", "trailing"]


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _auc(r: dict, key: str) -> str:
    t = r.get(key)
    if not isinstance(t, dict) or "auc" not in t:
        return "-"
    return f"{t['auc']:.3f} ± {t.get('auc_std', 0.0):.3f}"


def load(folder: Path) -> list[dict]:
    files = [p for p in sorted(folder.glob("*.json")) if not p.name.startswith(".")]
    rows = [json.loads(p.read_text()) for p in files]
    return sorted(
        rows,
        key=lambda r: (
            r["steps"],
            SAMPLER_ORDER.index(r["sampler"]) if r["sampler"] in SAMPLERS else 99,
            SPACING_ORDER.index(r["spacing"]) if r["spacing"] in SPACING_ORDER else 99,
        ),
    )


def table(rows: list[dict]) -> str:
    head = (
        "| calls | sampler | spacing | FD | two-sample AUC | AUC, floor <= 4 | precision | recall "
        "| FD pixel PCA | asked class found | images/s |"
    )
    lines = [head, "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r['steps']} | {SAMPLERS.get(r['sampler'], r['sampler'])} | {r['spacing']} "
            f"| {r['fd']:.2f} | {_auc(r, 'two_sample')} | {_auc(r, 'two_sample_floor')} "
            f"| {_num(r.get('precision'), '.3f')} | {_num(r.get('recall'), '.3f')} "
            f"| {_num(r.get('fd_pixel_pca'), '.2f')} | {_num(r.get('class_accuracy'), '.1%')} "
            f"| {_num(r.get('images_per_second'), '.1f')} |"
        )
    if rows:
        r = rows[0]
        real = r.get("real", {})
        lines.append("")
        lines.append(
            f"n = {r['n']}, seed {r['seed']}, guidance {r['guidance']}, {r.get('labels')} classes; "
            f"real-data floors: FD {real.get('fd', float('nan')):.2f}"
            + (f", FD pixel PCA {real['fd_pixel_pca']:.2f}" if "fd_pixel_pca" in real else "")
            + (f", two-sample AUC {real['two_sample']['auc']:.3f}" if "two_sample" in real else "")
            + (f", precision {real['precision']:.3f}" if "precision" in real else "")
            + (f", recall {real['recall']:.3f}" if "recall" in real else "")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path("docs/quality/solvers"))
    print(table(load(parser.parse_args().folder)))


if __name__ == "__main__":
    main()
