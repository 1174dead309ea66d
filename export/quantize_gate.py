"""The end-to-end gate of `ddpm-deploy quantize`: the candidate's samples against fp32's.

Per-timestep eps errors are easy to bound and proved nothing: an int8 file within them tripled
FD (docs/QUALITY.md, "int8: the end-to-end gate"). So before a quantized file is written, both
models draw the same n images (the model's default sampler, the same per-image noise and the same
random classes: `evaluate`'s own generation loop), and the judges `evaluate` trusts compare the
candidate's set with fp32's, fp32 playing "real": the classifier two-sample test (raw pixels, so a
speckled background is a tell), precision and recall in the domain classifier's features, FD in
those features and FD in a pixel PCA fitted on the fp32 set.

The bounds sit at what two fp32 runs with *different* noise read at n = 300 on the shipped
Fashion-MNIST model (benchmarks/int8_settings.py measures it): on the same noise, a quantized
model must stay closer to fp32 than another fp32 sample of the same distribution is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ddpm_deploy.errors import UserError

GATE_N = 300  # images per model
MIN_N = 200  # the classifier's 128 features need n > 128 for FD; the two-sample test 100+
# metric -> ("max" or "min", bound). fp32 against fp32 with different noise (seeds 1, 2 against 0,
# n = 300, at the default and at the previous default sampler; docs/quality/int8/floor_*.json)
# reads AUC 0.45-0.53, precision 0.87-0.92, recall 0.89-0.91, FD 33.6-49.3, pixel FD 3.19-3.79.
# On the same noise, a candidate must be closer to fp32 than any such sample (the FDs, precision,
# recall), and the AUC within 0.07 of the highest floor reading (the grainy file read 0.72).
BOUNDS = {
    "two_sample_auc": ("max", 0.60),
    "precision": ("min", 0.85),
    "recall": ("min", 0.85),
    "fd": ("max", 30.0),
    "fd_pixel_pca": ("max", 3.0),
}
LABELS = {
    "two_sample_auc": "two-sample AUC (raw pixels)",
    "precision": "precision (k=3, classifier features)",
    "recall": "recall",
    "fd": "FD, classifier features",
    "fd_pixel_pca": "FD, pixel PCA-64",
}


@dataclass
class GateReport:
    metrics: dict[str, float]
    n: int
    seed: int
    sampler: str
    seconds: dict[str, float] = field(default_factory=dict)  # generation time per model
    bounds: dict[str, tuple[str, float]] = field(default_factory=lambda: dict(BOUNDS))

    def missed_by(self, key: str) -> float:
        """How far past its bound a metric is (0 when within it)."""
        kind, bound = self.bounds[key]
        value = self.metrics[key]
        return max(0.0, value - bound) if kind == "max" else max(0.0, bound - value)

    @property
    def failures(self) -> list[str]:
        return [k for k in self.bounds if self.missed_by(k) > 0]

    @property
    def passed(self) -> bool:
        return not self.failures

    def miss_text(self) -> str:
        return "; ".join(
            f"{k} {self.metrics[k]:.3f} {'>' if self.bounds[k][0] == 'max' else '<'} "
            f"{self.bounds[k][1]} by {self.missed_by(k):.3f}"
            for k in self.failures
        )

    def to_dict(self) -> dict:
        rows = {
            k: {
                "value": self.metrics[k],
                "kind": kind,
                "bound": bound,
                "missed_by": self.missed_by(k),
            }
            for k, (kind, bound) in self.bounds.items()
        }
        return {
            "passed": self.passed,
            "n": self.n,
            "seed": self.seed,
            "sampler": self.sampler,
            "seconds": self.seconds,
            "metrics": rows,
            "two_sample_aucs": self.metrics.get("two_sample_aucs"),
        }

    def __str__(self) -> str:
        lines = [
            f"end-to-end gate: {self.n} images from each model ({self.sampler}, seed {self.seed}, "
            "the same noise and classes), judged against the fp32 set:"
        ]
        for key, (kind, bound) in self.bounds.items():
            sign = "<=" if kind == "max" else ">="
            miss = self.missed_by(key)
            verdict = f"MISSED by {miss:.3f}" if miss > 0 else "ok"
            lines.append(
                f"  {LABELS[key]:<38} {self.metrics[key]:8.3f}  (bound {sign} {bound})  {verdict}"
            )
        lines.append("  gate: " + ("passed" if self.passed else "FAILED"))
        return "\n".join(lines)


def check_n(n: int) -> None:
    if n < MIN_N:
        raise UserError(f"--gate-n {n} is too small: the gate needs at least {MIN_N} images")


def generate_pair(
    fp32, candidate, n: int, seed: int, sampler: dict | None = None
) -> tuple[np.ndarray, np.ndarray, str, dict]:
    """n images from each model file, on the same noise and classes (`evaluate`'s generation).

    ``sampler``: EvalRequest fields (sampler, steps, spacing, guidance); default: the model's own.
    """
    from ddpm_deploy.runtime.backends import load_denoiser
    from ddpm_deploy.runtime.evaluate import EvalRequest, generate
    from ddpm_deploy.runtime.guidance import guidance_for

    req = EvalRequest(n=n, seed=seed, batch=n, progress=False, **(sampler or {}))
    out, seconds = [], {}
    for name, path in (("fp32", fp32), ("candidate", candidate)):
        denoiser = load_denoiser("ort", path)
        x, seconds[name] = generate(denoiser, req)
        out.append(x)
    s = req.for_model(denoiser.card)
    text = f"{s.sampler}-{s.steps} {s.spacing}, guidance {guidance_for(denoiser.card, s.guidance)}"
    return out[0], out[1], text, seconds


def compare(candidate: np.ndarray, reference: np.ndarray, dataset: str) -> dict[str, float]:
    """The judges of `evaluate`, with ``reference`` (model-space samples) as the real set."""
    from ddpm_deploy.runtime.classifier import Classifier, as_viewed, shipped_classifier
    from ddpm_deploy.runtime.frechet import frechet_distance, gaussian_stats
    from ddpm_deploy.runtime.judges import pixel_fd, pixel_pca
    from ddpm_deploy.runtime.precision_recall import precision_recall
    from ddpm_deploy.runtime.real_images import PixelFeatures
    from ddpm_deploy.runtime.two_sample import two_sample_test

    from ddpm_deploy.card import CLASSES
    from ddpm_deploy.images import to_uint8

    cand_u8, ref_u8 = to_uint8(candidate), to_uint8(reference)
    if dataset in CLASSES:  # an IDX dataset: its shipped domain classifier's features
        classifier = Classifier(shipped_classifier(dataset))
        cand_f, _ = classifier(as_viewed(candidate))
        ref_f, _ = classifier(as_viewed(reference))
    else:  # a folder model: pixel-PCA features fitted on the fp32 set, as `evaluate` does
        features = PixelFeatures(ref_u8)
        cand_f, ref_f = features(cand_u8), features(ref_u8)
    pr = precision_recall(ref_f, cand_f)
    two = two_sample_test(cand_u8, ref_u8)
    return {
        "two_sample_auc": two["auc"],
        "two_sample_aucs": two["aucs"],
        "precision": pr["precision"],
        "recall": pr["recall"],
        "fd": frechet_distance(*gaussian_stats(cand_f), *gaussian_stats(ref_f)),
        "fd_pixel_pca": pixel_fd(cand_u8, ref_u8, pixel_pca(ref_u8)),
    }


def gate(
    fp32, candidate, dataset: str, n: int = GATE_N, seed: int = 0, sampler: dict | None = None
) -> GateReport:
    """Sample both models on the same noise and judge the candidate against fp32."""
    check_n(n)
    t0 = time.perf_counter()
    ref, cand, text, seconds = generate_pair(fp32, candidate, n, seed, sampler)
    metrics = compare(cand, ref, dataset)
    seconds["judges"] = time.perf_counter() - t0 - sum(seconds.values())
    return GateReport(metrics, n, seed, text, {k: round(v, 2) for k, v in seconds.items()})
