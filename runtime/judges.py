"""The judges `evaluate` reports beside its classifier FD, each with its real-vs-real floor.

- Classifier two-sample test (runtime/two_sample.py): can a fresh CNN tell samples from training
  images? Raw, and with background pixels <= 4/255 set to 0 in both sets.
- Precision and recall (runtime/precision_recall.py) in the domain classifier's features:
  fidelity and diversity as separate numbers.
- Frechet distance in a 64-component pixel PCA fitted on training images: a judge that owes
  nothing to any classifier.

Every floor compares real test images with as many real training images as there are samples,
so a perfect generator would read the floor, not 0 (docs/QUALITY.md, "Which number decides what").
"""

from __future__ import annotations

import numpy as np
from ddpm_deploy.runtime.frechet import frechet_distance, gaussian_stats
from ddpm_deploy.runtime.precision_recall import precision_recall
from ddpm_deploy.runtime.two_sample import FLOOR, NEEDS_TORCH, two_sample_test

PCA_COMPONENTS = 64


def pixel_pca(real_u8: np.ndarray, k: int = PCA_COMPONENTS) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top-k principal axes of 8-bit images, flattened and scaled to [0, 1]."""
    flat = real_u8.reshape(len(real_u8), -1).astype(np.float64) / 255.0
    mean = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    return mean, vt[:k]


def pixel_fd(a_u8: np.ndarray, b_u8: np.ndarray, basis: tuple[np.ndarray, np.ndarray]) -> float:
    mean, axes = basis

    def project(x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1).astype(np.float64) / 255.0 - mean) @ axes.T

    return frechet_distance(*gaussian_stats(project(a_u8)), *gaussian_stats(project(b_u8)))


def torch_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except ValueError:  # sys.modules["torch"] = None, as the torch-free test sets it
        return False


def judge(
    fake_u8: np.ndarray,
    fake_feats: np.ndarray,
    train_u8: np.ndarray,
    train_feats: np.ndarray,
    test_u8: np.ndarray,
    test_feats: np.ndarray,
    *,
    two_sample: bool = True,
) -> dict:
    """Every judge on the samples, and the same judge on real test images (the floor).

    Images are uint8 [N, C, H, W]; features are the domain classifier's, row for row.
    """
    n = min(len(fake_u8), len(train_u8), len(test_u8))
    train_u8, train_feats = train_u8[:n], train_feats[:n]
    test_n_u8, test_n_feats = test_u8[:n], test_feats[:n]
    basis = pixel_pca(train_u8)
    report = {
        "n_real": n,
        "fd_pixel_pca": pixel_fd(fake_u8, test_u8, basis),
        **precision_recall(train_feats, fake_feats),
        "real": {
            "fd_pixel_pca": pixel_fd(train_u8, test_u8, basis),
            **precision_recall(train_feats, test_n_feats),
        },
    }
    if two_sample and not torch_available():
        report["two_sample_skipped"] = NEEDS_TORCH
    elif two_sample:
        for key, floor in (("two_sample", 0), ("two_sample_floor", FLOOR)):
            report[key] = two_sample_test(fake_u8, train_u8, floor=floor)
            report["real"][key] = two_sample_test(test_n_u8, train_u8, floor=floor)
    return report


def judge_lines(r: dict) -> list[str]:
    """The summary lines of `evaluate` for ``judge``'s report."""
    real = r["real"]
    lines = [
        f"  precision           {r['precision']:.4f}   (real: {real['precision']:.4f}; k={r['k']} "
        f"neighbours in {r.get('features', 'classifier')} features, {r['n_real']} training images)",
        f"  recall              {r['recall']:.4f}   (real: {real['recall']:.4f})",
        f"  FD pixel PCA-{PCA_COMPONENTS}     {r['fd_pixel_pca']:.3f}   (real: "
        f"{real['fd_pixel_pca']:.3f}; test split vs as many training images)",
    ]
    if "two_sample_skipped" in r:
        lines.append(f"  two-sample test     skipped: {r['two_sample_skipped']}")
    for key, label in (("two_sample", "two-sample AUC"), ("two_sample_floor", "  ... floor <= 4")):
        if key in r:
            t, f = r[key], real[key]
            seeds = ", ".join(f"{a:.3f}" for a in t["aucs"])
            lines.append(
                f"  {label:<19} {t['auc']:.4f} ± {t['auc_std']:.4f}   (real: {f['auc']:.4f}; "
                f"seeds {seeds}; 0.5 = indistinguishable)"
            )
    return lines
