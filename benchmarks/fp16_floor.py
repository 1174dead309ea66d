"""How far ONNX Runtime's own optimisation levels move the numpy sampling loop on a model's fp16
copy (export/fp16.py): the floor under `export-sampler --precision fp16`'s check, which compares the
fp16 sampler graph with that loop (export/sampler_export.py GATE). Same seed, 8 images, random
classes, the model's own sampler or --steps; ORT_ENABLE_ALL against ORT_ENABLE_BASIC.

    python benchmarks/fp16_floor.py [mnist:2 emoji fashion_mnist mnist]
"""

from __future__ import annotations

import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from ddpm_deploy.export.fp16 import to_fp16
from ddpm_deploy.runtime.backends import open_denoiser
from ddpm_deploy.runtime.guidance import Guided, random_labels
from ddpm_deploy.runtime.noise import PerImageNoise
from ddpm_deploy.runtime.sampler_settings import SamplerSettings
from ddpm_deploy.runtime.samplers import sample

from ddpm_deploy.card import num_classes
from ddpm_deploy.images import to_uint8
from ddpm_deploy.shipped import resolve_model

LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
LEVELS["basic"] = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


def loop(half: Path, level: str, steps: int | None, n: int = 8) -> np.ndarray:
    den = open_denoiser("ort", half)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = LEVELS[level]
    den.session = ort.InferenceSession(str(half), opts, providers=["CPUExecutionProvider"])
    settings = SamplerSettings(steps=steps).for_model(den.card)
    k = num_classes(den.card)
    labels = random_labels(k, 0, 0, n) if k else None
    guided = Guided(den, labels, 1.0)
    kwargs = settings.sampler_kwargs()
    return sample(guided, den.schedule, n, PerImageNoise(0, 0, n), **kwargs, shape=den.image_shape)


def main(cases: list[str]) -> None:
    print(f"# {platform.processor() or platform.machine()}, onnxruntime {ort.__version__}")
    print("| model | steps | x0 max | x0 mean | pixels equal | max levels |")
    print("|---|---|---|---|---|---|")
    for case in cases:
        name, _, steps = case.partition(":")
        with tempfile.TemporaryDirectory() as tmp:
            half = to_fp16(resolve_model(name), Path(tmp) / "half.onnx")
            a, b = (loop(half, level, int(steps) if steps else None) for level in LEVELS)
        d = np.abs(a - b)
        levels = np.abs(to_uint8(a).astype(np.int16) - to_uint8(b))
        print(
            f"| {name} | {steps or 'own'} | {d.max():.1e} | {d.mean():.1e} | "
            f"{(levels == 0).mean():.2%} | {levels.max()} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:] or ["mnist:2", "emoji", "fashion_mnist", "mnist"])
