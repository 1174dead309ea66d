"""docs/QUALITY.md's tables for the shipped residual UNets, from quality_resunet.sh's JSON files.

    python benchmarks/resunet_tables.py docs/quality/resunet

Rows whose JSON file is missing are left out, so the script runs on a partial measurement.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load(folder: Path, name: str) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _max_share(r: dict) -> str:
    counts = r["class_counts"]
    top = max(counts, key=counts.get)
    return f"{counts[top] / sum(counts.values()):.1%} ({top})"


def _command(r: dict) -> str:
    model = Path(r["model"]).stem
    parts = [f"ddpm-deploy evaluate --model {model}"]
    parts += [f"--sampler {r['sampler']}", f"--steps {r['steps']}"]
    kind = _kind(r)
    if kind == "balanced":
        parts += ["--class all", f"--guidance {r['guidance']:g}"]
    elif kind == "random":
        parts += [f"--guidance {r['guidance']:g}"]  # random classes: the default
    else:
        parts.append("--class none")
    parts.append(f"-n {r['n']}")
    return "`" + " ".join(parts) + "`"


HEADLINE = ("fashion", "fashion_null10k", "mnist", "mnist_rand2", "mnist_rand1", "mnist_null2k",
            "mnist_null10k")  # fmt: skip


def _kind(r: dict) -> str:
    """none, random or balanced (rows written before evaluate recorded "labels" carry the flags)."""
    if "labels" in r:
        return r["labels"]
    return (
        "random" if r.get("random_class") else "balanced" if r.get("class_conditional") else "none"
    )


def _labels(r: dict) -> str:
    kind = _kind(r)
    if kind == "none":
        return "null label"
    return f"{'random' if kind == 'random' else 'balanced'} classes, w = {r['guidance']:g}"


def headline(folder: Path) -> list[str]:
    lines = [
        "| model | classes | sampler | n | FD | real-data floor | class deviation | largest class | "
        "mean confidence | CPU s | command |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for name in HEADLINE:
        r = _load(folder, name)
        if r:
            lines.append(
                f"| {r['dataset']} | {_labels(r)} | {r['sampler']}-{r['steps']} | {r['n']:,} | {r['fd']:.2f} | "
                f"{r['real']['fd']:.2f} | {r['max_class_deviation']:.4f} | {_max_share(r)} | "
                f"{r['mean_confidence']:.4f} | {r['seconds']:,.0f} | {_command(r)} |"
            )
    return lines


def conditional(folder: Path) -> list[str]:
    lines = [
        "| model | guidance | n | asked class found | weakest class | classifier on real test "
        "images | FD | command |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for name in ("fashion_g2", "mnist_cond"):
        r = _load(folder, name)
        if r:
            per = r["per_class_accuracy"]
            weakest = min(per, key=per.get)
            lines.append(
                f"| {r['dataset']} | {r['guidance']} | {r['n']:,} | {r['class_accuracy']:.2%} | "
                f"{weakest} {per[weakest]:.1%} | {r['classifier']['test_accuracy_here']:.2%} | "
                f"{r['fd']:.2f} | {_command(r)} |"
            )
    return lines


def guidance(folder: Path) -> list[str]:
    lines = [
        "| model | guidance w | n | FD | asked class found | mean confidence | CPU s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for prefix in ("fashion", "mnist"):
        for w in ("0", "1", "2", "3", "5"):
            r = _load(folder, f"{prefix}_g{w}")
            if r:
                lines.append(
                    f"| {r['dataset']} | {r['guidance']} | {r['n']:,} | {r['fd']:.2f} | "
                    f"{r['class_accuracy']:.2%} | {r['mean_confidence']:.4f} | {r['seconds']:,.0f} |"
                )
    return lines


def _sampler_rows(folder: Path, names: list[str], calls_per_step: int) -> list[str]:
    lines = [
        "| model | sampler | steps | network calls | n | FD | class deviation | CPU s per 1,000 images |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [r for r in (_load(folder, n) for n in names) if r]
    rows.sort(key=lambda r: ("reference" in r["model"], r["sampler"], r["variance"], r["steps"]))
    for r in rows:
        extra = [r["variance"]] if r["sampler"] == "ddpm" else []
        extra += [r["spacing"]] if r.get("spacing", "linspace") != "linspace" else []
        label = r["sampler"] + (f" ({', '.join(extra)})" if extra else "")
        calls = r["steps"] * (calls_per_step if "reference" not in r["model"] else 1)
        lines.append(
            f"| {Path(r['model']).stem} | {label} | {r['steps']} | {calls} | {r['n']:,} | "
            f"{r['fd']:.2f} | {r['max_class_deviation']:.4f} | {r['seconds'] * 1000 / r['n']:,.0f} |"
        )
    return lines


def samplers(folder: Path) -> list[str]:
    """Random classes at guidance 1: one network call per image and step."""
    names = sorted(p.stem for p in folder.glob("s_*.json")) + [
        "reference_dpm20",
        "reference_ddim50",
    ]
    return _sampler_rows(folder, names, 1)


def samplers_default_guidance(folder: Path) -> list[str]:
    """Random classes at the default guidance 2: two rows per image and step, in one call."""
    names = sorted(p.stem for p in folder.glob("g2_*.json")) + ["fashion_rand2"]
    return _sampler_rows(folder, names, 2)


def ema_raw(folder: Path) -> list[str]:
    lines = ["| weights | n | FD | class deviation |", "| --- | ---: | ---: | ---: |"]
    for name, label in (("fashion_ema1k", "EMA (shipped)"), ("fashion_raw1k", "raw")):
        r = _load(folder, name)
        if r:
            lines.append(
                f"| {label} | {r['n']:,} | {r['fd']:.2f} | {r['max_class_deviation']:.4f} |"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="OUT_DIR of benchmarks/quality_resunet.sh")
    args = p.parse_args(argv)
    for title, table in (
        ("What sample draws without --class (random classes), and the null label", headline),
        ("Class-conditional, default guidance", conditional),
        ("Guidance sweep", guidance),
        ("Samplers at the default guidance (random classes, w = 2)", samplers_default_guidance),
        ("Samplers: quality against network calls (random classes, w = 1)", samplers),
        ("EMA or raw weights (null label)", ema_raw),
    ):
        print(f"### {title}\n")
        print("\n".join(table(args.folder)) + "\n")


if __name__ == "__main__":
    main()
