"""How much of an image set sits at each low grey level: the background haze and speckle that
docs/QUALITY.md ("Fewer calls") weighs against the two-sample test. Counts, per setting, the
share of uint8 pixels at exactly 0, at 1-4 (what the floored test zeroes) and at 5-30, for n
images of a model (random classes, seed 0, guidance 1), beside the dataset's test images.

    python benchmarks/background_levels.py --model mnist --data-root ../shared/datasets \\
        "8 calls=--steps 8 --analytic 0" "4 calls=--steps 7 --analytic 3" "5 calls=--steps 8 --analytic 3"

Each SETTING is NAME=FLAGS with `sample`'s sampler flags (--sampler, --steps, --spacing,
--analytic); --analytic needs a model whose card carries the statistics (learn-sampler's output).
"""

from __future__ import annotations

import argparse
import shlex

import numpy as np
from ddpm_deploy.runtime.backends import open_denoiser
from ddpm_deploy.runtime.generate import generate_chunks
from ddpm_deploy.runtime.guidance import RANDOM, labels_for
from ddpm_deploy.runtime.sampler_settings import SamplerSettings

from ddpm_deploy.datasets import load_split
from ddpm_deploy.images import to_uint8


def levels(u8: np.ndarray) -> str:
    shares = (np.mean(u8 == 0), np.mean((u8 >= 1) & (u8 <= 4)), np.mean((u8 >= 5) & (u8 <= 30)))
    return " | ".join(f"{100 * s:.1f}%" for s in shares)


def settings(flags: str) -> SamplerSettings:
    parser = argparse.ArgumentParser(prog="SETTING")
    parser.add_argument("--sampler", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--spacing", default=None)
    parser.add_argument("--analytic", type=int, default=None)
    return SamplerSettings(**vars(parser.parse_args(shlex.split(flags))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("setting", nargs="+", help="NAME=FLAGS")
    args = parser.parse_args()
    den = open_denoiser("ort", args.model)
    real = load_split(den.card["dataset"], args.data_root, train=False).images[: args.n]
    print("| images | exactly 0 | 1-4 | 5-30 |\n| --- | ---: | ---: | ---: |")
    print(f"| real test images | {levels(real)} |")
    labels = labels_for(den.card, RANDOM, args.n, 0)
    for setting in args.setting:
        name, _, flags = setting.partition("=")
        s = settings(flags).for_model(den.card)
        chunks = generate_chunks(den, s, args.n, seed=0, labels=labels, guidance=1.0, batch=args.n,
                                 desc=name, progress=False)  # fmt: skip
        x = np.concatenate([c for _, c in chunks])
        print(f"| {name} | {levels(to_uint8(x))} |")


if __name__ == "__main__":
    main()
