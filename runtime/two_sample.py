"""A classifier two-sample test (Lopez-Paz & Oquab 2017): can a small CNN tell samples from data?

A discriminator is trained afresh on half of two equally large sets of 8-bit images (label 1:
generated, 0: real) and scored on the other half: held-out AUC 0.5 means indistinguishable, 1.0
means every image gives itself away. One discriminator is noisy, so several seeds are averaged
and their spread reported. With ``floor`` > 0, pixels at or below it are set to 0 in both sets
first: a generator's background haze of 1-3 levels is then no longer a tell, and what remains is
the items themselves (docs/QUALITY.md).

Needs torch (the `train` extra); the rest of `evaluate` does not.
"""

from __future__ import annotations

import numpy as np

from ddpm_deploy.errors import UserError

SEEDS = (0, 1, 2)
FLOOR = 4  # pixels <= 4/255 count as background (docs/QUALITY.md)
STEPS = 300  # discriminator updates of 128 images: the same training at every n
NEEDS_TORCH = (
    "the two-sample test needs torch: pip install 'ddpm-deploy[train]' (or --no-two-sample)"
)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney statistic with tied scores sharing their rank."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # average rank over every run of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2.0  # ranks a+1 .. b
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if not n_pos or not n_neg:
        raise ValueError("AUC needs both classes")
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _discriminator(channels: int):
    """A small CNN (about 15k weights): strided convs keep it a few seconds' work on a CPU."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, stride=2, padding=1),
        nn.SiLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.SiLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.SiLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 1),
    )


def _inputs(images: np.ndarray):
    """Each pixel linearly and on a log scale: the log channel makes the darkest levels (1-4 of
    255, a generator's background haze) as visible to the discriminator as the bright ones."""
    import torch

    x = images.astype(np.float32)
    both = np.concatenate([x / 255.0, np.log1p(x) / np.log(256.0)], axis=1)
    return torch.from_numpy(both)


def _one_seed(fake: np.ndarray, real: np.ndarray, seed: int, steps: int) -> tuple[float, float]:
    """Train on half of each set, return (held-out AUC, held-out accuracy at threshold 0.5)."""
    import torch

    rng = np.random.default_rng(seed)
    n = min(len(fake), len(real))
    fake, real = fake[rng.permutation(len(fake))[:n]], real[rng.permutation(len(real))[:n]]
    half = n // 2
    x = np.concatenate([fake[:half], real[:half], fake[half:], real[half:]])
    y = np.concatenate([np.ones(half), np.zeros(half), np.ones(n - half), np.zeros(n - half)])
    x = _inputs(x)
    y = torch.from_numpy(y.astype(np.float32))
    train_x, train_y, test_x, test_y = x[: 2 * half], y[: 2 * half], x[2 * half :], y[2 * half :]

    torch.manual_seed(seed)
    net = _discriminator(x.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(train_x), (128,), generator=gen)
        logits = net(train_x[idx]).squeeze(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        scores = torch.cat(
            [net(test_x[b : b + 1000]).squeeze(1) for b in range(0, len(test_x), 1000)]
        )
    scores = scores.numpy()
    return auc(scores, test_y.numpy()), float(np.mean((scores > 0) == (test_y.numpy() > 0.5)))


def two_sample_test(
    fake: np.ndarray,
    real: np.ndarray,
    *,
    floor: int = 0,
    seeds: tuple[int, ...] = SEEDS,
    steps: int = STEPS,
) -> dict:
    """Held-out AUC and accuracy of fresh discriminators, averaged over ``seeds``.

    ``fake`` and ``real``: uint8 images [N, C, H, W] (or [N, H, W]); the smaller N is used from both.
    """
    try:
        import torch
    except ImportError:
        raise UserError(NEEDS_TORCH) from None
    fake, real = _as_nchw(fake), _as_nchw(real)
    if fake.shape[1:] != real.shape[1:]:
        raise UserError(f"image shapes differ: samples {fake.shape[1:]}, data {real.shape[1:]}")
    if min(len(fake), len(real)) < 100:
        raise UserError(
            f"the two-sample test needs at least 100 images per set, got {min(len(fake), len(real))}"
        )
    if floor:
        fake, real = np.where(fake <= floor, 0, fake), np.where(real <= floor, 0, real)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small runs 3x faster on one thread than on two here
    try:
        runs = [_one_seed(fake, real, s, steps) for s in seeds]
    finally:
        torch.set_num_threads(threads)
    aucs, accs = np.array([r[0] for r in runs]), np.array([r[1] for r in runs])
    return {
        "auc": float(aucs.mean()),
        "auc_std": float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0,
        "aucs": [round(float(a), 4) for a in aucs],
        "accuracy": float(accs.mean()),
        "floor": int(floor),
        "n": int(min(len(fake), len(real))),
        "seeds": list(seeds),
        "steps": steps,
    }


def _as_nchw(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"the two-sample test takes 8-bit images, got {images.dtype}")
    return images[:, None] if images.ndim == 3 else images
