"""Class labels and classifier-free guidance (Ho & Salimans 2022) on top of any denoiser backend.

Guided noise: eps = eps_null + w (eps_cond - eps_null). Both halves come from ONE denoiser call on
a doubled batch (x, x), (t, t), (y, null), so every backend (ort, torch, trt) runs it the same way
and a GPU sees one large batch instead of two small ones. w = 0 is the unconditional model, w = 1
the plain conditional one; both need only the single, undoubled call.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from ddpm_deploy.runtime.philox import classes

from ddpm_deploy.bounds import MAX_GUIDANCE, MAX_IMAGES
from ddpm_deploy.card import class_names, image_shape, num_classes
from ddpm_deploy.errors import UserError

ALL = "all"
RANDOM = "random"  # each image's class drawn uniformly from its own stream (seed, i)
NONE = "none"  # the model's null label: its unconditional branch


@dataclass
class ClassChoice:
    """The class-and-guidance options of every command that samples (`sample`, `evaluate`; the CLI
    group in cli/options.py): ``class_`` a class name or index, "all", "random", "none" (the null
    label), or None for the model's default (`default_choice`); ``guidance`` None for the model's
    own (`guidance_for`)."""

    class_: str | None = None
    guidance: float | None = None


def default_choice(card: dict) -> str | None:
    """What `sample` draws without --class: for a class-conditional model a random class per image
    (p(y) p(x | y) is p(x) on these balanced datasets, and measures far better than the null label;
    docs/QUALITY.md), for an unconditional model plain unconditional sampling."""
    return RANDOM if num_classes(card) else None


# The default --guidance, chosen by measurement on the shipped models (docs/QUALITY.md).
DEFAULT_GUIDANCE = 1.0


def parse_class(card: dict, spec: str | None) -> int | str | None:
    """``--class`` as a label index, ALL, RANDOM, or None (unconditional: the null label); one line
    for every bad value. Without --class, `default_choice`."""
    if spec is None:
        return default_choice(card)
    if spec.lower() == NONE:
        if not has_null_label(card):
            raise UserError(f"--class none: {NO_NULL}; pass a class")
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
    # "t-shirt" finds "T-shirt/top", "ankle_boot" finds "Ankle boot" and "smileys_emotion" itself
    lowered = {name.lower().replace("_", " "): i for i, name in enumerate(names)}
    key = spec.lower().replace("_", " ")
    matches = [i for name, i in lowered.items() if key == name or key in name.split("/")]
    if len(matches) != 1:
        raise UserError(
            f"unknown class {spec!r}; choose a name from {names} or an index 0..{k - 1}"
        )
    return matches[0]


def random_labels(k: int, seed: int, start: int, count: int) -> np.ndarray:
    """Image i's class, uniform over k, from its own draw of the shared generator keyed by (seed,
    i) (runtime/philox.py ``classes``): the same at any -n or chunk size, in the sampler graph and
    the page, and apart from the noise draws (runtime/noise.py)."""
    return random_labels_for(k, np.full(count, seed), np.arange(start, start + count))


def random_labels_for(k: int, seeds: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``random_labels`` for any (seed, index) pairs, one per row."""
    if len(seeds) != len(indices):
        raise ValueError("one seed per index")
    return classes(np.asarray(seeds, np.uint64), np.asarray(indices, np.uint64), k)


def labels_for(card: dict, choice: int | str | None, n: int, seed: int = 0) -> np.ndarray | None:
    """One label per image: None (unconditional), n of one class, n per class (ALL, by class), or
    one random class per image (RANDOM: with balanced classes, sampling p(y) then p(x | y) is
    sampling p(x))."""
    if choice is None:
        return None
    if choice == ALL:
        k = num_classes(card)
        if n * k > MAX_IMAGES:  # checked before the labels are made: 10^6 x 10^4 would not fit
            raise UserError(
                f"--class all makes -n {n:,} images of each of {k} classes, {n * k:,} in all; "
                f"at most {MAX_IMAGES:,} (every image is kept in memory): lower -n"
            )
        return np.repeat(np.arange(k, dtype=np.int64), n)
    if choice == RANDOM:
        return random_labels(num_classes(card), seed, 0, n)
    return np.full(n, choice, dtype=np.int64)


def has_null_label(card: dict) -> bool:
    """False for a class-conditional model imported from diffusers without a null label
    (`import-diffusers` without --last-class-is-null): it has no unconditional branch."""
    return card["arch"].get("null_label", True) is not False


NO_NULL = "this model has no null label (imported from diffusers without --last-class-is-null)"


def guidance_for(card: dict, w: float | None) -> float:
    """--guidance resolved for a model: None means the model's own (a distilled model bakes its
    guidance in and runs one conditional call per step) or DEFAULT_GUIDANCE. An unconditional
    model has no guidance to set: another w than 1 is refused rather than ignored."""
    check_guidance(w)
    if not num_classes(card) and w is not None and w != 1.0:
        raise UserError(
            f"--guidance {w:g}: this {card['dataset']} model is unconditional (guidance needs "
            "classes); drop --guidance"
        )
    graph = card.get("sampler_graph")
    if graph is not None:
        runs = float(graph.get("guidance", 1.0))
        if w is not None and w != runs:
            raise UserError(
                f"--guidance {w}: this file holds its whole sampler, written at guidance {runs} "
                "(`export-sampler --guidance`); drop --guidance"
            )
        return runs
    own = card.get("sampler")
    if not own or not card.get("distilled"):
        # a learned sampler's guidance is its default; the network is unchanged, any w works
        own_w = (own or {}).get("guidance")
        w = (DEFAULT_GUIDANCE if own_w is None else float(own_w)) if w is None else w
        if w != 1.0 and not has_null_label(card):
            raise UserError(f"--guidance {w}: {NO_NULL}, so only --guidance 1 works")
        return w
    runs = own.get("guidance")
    runs = 1.0 if runs is None else float(runs)
    if w is not None and w != runs:
        baked = (card.get("distilled") or {}).get("guidance")
        raise UserError(
            f"--guidance {w}: this model was distilled with guidance {baked} baked in and runs "
            f"at guidance {runs} (one network call per step); drop --guidance"
        )
    return runs


def check_guidance(w: float | None) -> None:
    if w is None:
        return  # the model's own, resolved by guidance_for
    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not 0 <= w <= MAX_GUIDANCE:
        raise UserError(
            f"--guidance must be a finite number in [0, {MAX_GUIDANCE:g}] (0: unconditional), got {w!r}"
        )


class Guided:
    """A sampler-facing denoiser ``eps = f(x, t)`` with labels fixed per image and guidance w
    (classifier-free guidance at every step, on a doubled batch in one call)."""

    def __init__(self, denoiser, labels: np.ndarray | None, guidance: float):
        check_guidance(guidance)
        self.denoiser, self.labels, self.w = denoiser, labels, float(guidance)
        self.null = np.full(0 if labels is None else len(labels), num_classes(denoiser.card))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the wrapped model's images, from its card."""
        return image_shape(self.denoiser.card)

    def gaussian_x0(self, x: np.ndarray, t: int) -> np.ndarray:
        """The analytic data prediction at t (runtime/gaussian.py): each image's class statistics
        (those of all images for unconditional rows: no labels, or guidance 0)."""
        stats = self.denoiser.gaussian
        if stats is None:
            raise UserError(
                f"{self.denoiser.path} carries no Gaussian statistics for analytic steps"
            )
        k = num_classes(self.denoiser.card)
        groups = self.labels if self.labels is not None and self.w != 0.0 else np.full(len(x), k)
        return stats.x0(x, float(self.denoiser.schedule.alpha_bars[t]), groups)

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        if self.labels is None:
            return self.denoiser(x, t)  # unconditional: a conditional model gets its null label
        if len(x) != len(self.labels):
            raise ValueError(f"{len(x)} images for {len(self.labels)} labels")
        if self.w == 1.0:
            return self.denoiser(x, t, self.labels)
        return self._guided(x, t)

    def _guided(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        if self.w == 0.0:
            return self.denoiser(x, t)
        n = len(x)
        eps = self.denoiser(
            np.concatenate([x, x]),
            np.concatenate([t, t]),
            np.concatenate([self.labels, self.null]).astype(np.int64),
        )
        cond, uncond = eps[:n], eps[n:]
        return uncond + np.float32(self.w) * (cond - uncond)
