"""Class labels and classifier-free guidance (Ho & Salimans 2022) on top of any denoiser backend.

Guided noise: eps = eps_null + w (eps_cond - eps_null). Both halves come from ONE denoiser call on
a doubled batch (x, x), (t, t), (y, null), so every backend (ort, torch, trt) runs it the same way
and a GPU sees one large batch instead of two small ones. w = 0 is the unconditional model, w = 1
the plain conditional one; both need only the single, undoubled call.
"""

from __future__ import annotations

import numpy as np

from ddpm_deploy.card import class_names, num_classes
from ddpm_deploy.errors import UserError

ALL = "all"
RANDOM = "random"  # each image's class drawn uniformly from its own stream (seed, i)
NONE = "none"  # the model's null label: its unconditional branch


def default_choice(card: dict) -> str | None:
    """What `sample` draws without --class: for a class-conditional model a random class per image
    (p(y) p(x | y) is p(x) on these balanced datasets, and measures far better than the null label;
    docs/QUALITY.md), for an unconditional model plain unconditional sampling."""
    return RANDOM if num_classes(card) else None


# The default --guidance, chosen by measurement on the shipped models (docs/QUALITY.md).
DEFAULT_GUIDANCE = 2.0


def parse_class(card: dict, spec: str | None) -> int | str | None:
    """``--class`` as a label index, ALL, RANDOM, or None (unconditional: the null label); one line
    for every bad value. Without --class, `default_choice`."""
    if spec is None:
        return default_choice(card)
    if spec.lower() == NONE:
        return None
    k = num_classes(card)
    if k == 0:
        raise UserError(
            f"--class {spec}: this {card['dataset']} model is unconditional; drop --class or pass a "
            "class-conditional model (trained with `train --cond`)"
        )
    if spec.lower() in (ALL, RANDOM):
        return spec.lower()
    names = class_names(card)
    if spec.lstrip("-").isdigit():
        index = int(spec)
        if not 0 <= index < k:
            raise UserError(f"--class {spec} is out of range; this model has classes 0..{k - 1}")
        return index
    lowered = {name.lower(): i for i, name in enumerate(names)}
    # "t-shirt" finds "T-shirt/top" and "ankle_boot" finds "Ankle boot"
    key = spec.lower().replace("_", " ")
    matches = [i for name, i in lowered.items() if key == name or key in name.split("/")]
    if len(matches) != 1:
        raise UserError(
            f"unknown class {spec!r}; choose a name from {names} or an index 0..{k - 1}"
        )
    return matches[0]


def random_labels(k: int, seed: int, start: int, count: int) -> np.ndarray:
    """Image i's class, uniform over k, from a stream of its own keyed by (seed, i): the same at
    any -n or chunk size, and independent of the noise streams (runtime/noise.py)."""
    return random_labels_for(k, np.full(count, seed), np.arange(start, start + count))


def random_labels_for(k: int, seeds: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``random_labels`` for any (seed, index) pairs, one per row."""
    return np.array(
        [np.random.default_rng([int(s), int(i), 0xC1A55]).integers(k) for s, i in zip(seeds, indices, strict=True)],
        dtype=np.int64,
    )  # fmt: skip


def labels_for(card: dict, choice: int | str | None, n: int, seed: int = 0) -> np.ndarray | None:
    """One label per image: None (unconditional), n of one class, n per class (ALL, by class), or
    one random class per image (RANDOM: with balanced classes, sampling p(y) then p(x | y) is
    sampling p(x))."""
    if choice is None:
        return None
    if choice == ALL:
        return np.repeat(np.arange(num_classes(card), dtype=np.int64), n)
    if choice == RANDOM:
        return random_labels(num_classes(card), seed, 0, n)
    return np.full(n, choice, dtype=np.int64)


def check_guidance(w: float) -> None:
    if not np.isfinite(w) or w < 0:
        raise UserError(f"--guidance must be a finite number >= 0 (0: unconditional), got {w}")


class Guided:
    """A sampler-facing denoiser ``eps = f(x, t)`` with labels fixed per image and guidance w."""

    def __init__(self, denoiser, labels: np.ndarray | None, guidance: float):
        check_guidance(guidance)
        self.denoiser, self.labels, self.w = denoiser, labels, float(guidance)
        self.null = np.full(0 if labels is None else len(labels), num_classes(denoiser.card))

    @property
    def calls_per_step(self) -> int:
        """Rows the backend computes per image and step: 2 when guidance doubles the batch."""
        return 2 if self.labels is not None and self.w not in (0.0, 1.0) else 1

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        if self.labels is None:
            return self.denoiser(x, t)  # unconditional: a conditional model gets its null label
        if len(x) != len(self.labels):
            raise ValueError(f"{len(x)} images for {len(self.labels)} labels")
        if self.w == 0.0:
            return self.denoiser(x, t)
        if self.w == 1.0:
            return self.denoiser(x, t, self.labels)
        n = len(x)
        eps = self.denoiser(
            np.concatenate([x, x]),
            np.concatenate([t, t]),
            np.concatenate([self.labels, self.null]).astype(np.int64),
        )
        cond, uncond = eps[:n], eps[n:]
        return uncond + np.float32(self.w) * (cond - uncond)
