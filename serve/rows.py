"""What the served models compute, without Triton: request rows in, images (or eps) out.

Triton's dynamic batcher hands the Python backend a list of requests; each request holds one or
more rows (one row = one image). ``SampleService.run`` checks every request on its own, so a bad
request gets its own one-line error while the good ones beside it in the batch are served, then
samples all good rows that share sampler settings and guidance in ONE numpy sampler run. Image
(seed, index) gets the noise and random class it gets in `ddpm-deploy sample --seed S`, so a
served image equals the local one byte for byte (tests/serve/test_serve.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from ddpm_deploy.runtime.backends import Denoiser
from ddpm_deploy.runtime.guidance import (
    DEFAULT_GUIDANCE,
    Guided,
    check_guidance,
    guidance_for,
    random_labels_for,
)
from ddpm_deploy.runtime.noise import PerImageNoise
from ddpm_deploy.runtime.sampler_settings import SamplerSettings
from ddpm_deploy.runtime.samplers import sample

from ddpm_deploy.errors import UserError
from ddpm_deploy.images import to_uint8

RANDOM_CLASS = -1  # the `class` input's value for "draw a class from (seed, index)", its default
NO_LABEL = None  # a row's label for an unconditional model (no label at all, no guidance)

# The ddpm_sample model's inputs: name -> (Triton datatype, required). One value per row.
SAMPLE_INPUTS = {
    "seed": ("TYPE_INT64", True),
    "index": ("TYPE_INT64", True),
    "class": ("TYPE_INT64", False),
    "guidance": ("TYPE_FP32", False),
    "sampler": ("TYPE_STRING", False),
    "steps": ("TYPE_INT32", False),
    "spacing": ("TYPE_STRING", False),
    "eta": ("TYPE_FP32", False),
    "variance": ("TYPE_STRING", False),
    "analytic": ("TYPE_INT32", False),  # steps taken by the card's Gaussian statistics
}


@dataclass
class Group:
    """Rows that can share one sampler run: the same settings and guidance."""

    settings: SamplerSettings | None = None
    rows: list[tuple[int, int]] = field(default_factory=list)  # (request, row within it)
    seeds: list[int] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    labels: list[int | None] = field(default_factory=list)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SampleService:
    """``ddpm_sample``: rows of (seed, index[, class, guidance, sampler settings]) -> uint8 images."""

    def __init__(self, denoiser: Denoiser, batch: int = 16):
        self.denoiser = denoiser
        self.k = denoiser.num_classes
        self.T = denoiser.schedule.T
        self.batch = batch  # images per sampler run: a merged group runs in chunks of this size

    def _settings(self, inputs: dict[str, np.ndarray], row: int) -> tuple[SamplerSettings, float]:
        d = SamplerSettings()
        s = SamplerSettings(
            sampler=_text(inputs["sampler"][row][0]) if "sampler" in inputs else d.sampler,
            steps=int(inputs["steps"][row][0]) if "steps" in inputs else d.steps,
            spacing=_text(inputs["spacing"][row][0]) if "spacing" in inputs else d.spacing,
            eta=float(inputs["eta"][row][0]) if "eta" in inputs else d.eta,
            variance=_text(inputs["variance"][row][0]) if "variance" in inputs else d.variance,
            analytic=int(inputs["analytic"][row][0]) if "analytic" in inputs else d.analytic,
        ).for_model(
            self.denoiser.card
        )  # the model's own sampler (learned, distilled), or the defaults
        s.check(1, self.T)
        w = float(inputs["guidance"][row][0]) if "guidance" in inputs else None
        check_guidance(w)
        return s, guidance_for(self.denoiser.card, w)

    def check(
        self, inputs: dict[str, np.ndarray]
    ) -> list[tuple[SamplerSettings, float, int, int, int | None]]:
        """One (settings, guidance, seed, index, label) per row, or UserError for the request.
        The label of an unconditional model's rows is NO_LABEL."""
        missing = [n for n, (_, required) in SAMPLE_INPUTS.items() if required and n not in inputs]
        if missing:
            raise UserError(
                f"missing input(s) {missing}; ddpm_sample needs seed and index per image"
            )
        if "class" in inputs and not self.k:
            raise UserError("this model is unconditional; send no 'class' input")
        rows = []
        for r in range(len(inputs["seed"])):
            seed, index = int(inputs["seed"][r][0]), int(inputs["index"][r][0])
            if seed < 0 or index < 0:
                raise UserError(f"row {r}: seed and index must be >= 0, got {seed}, {index}")
            label = NO_LABEL
            if self.k:
                label = int(inputs["class"][r][0]) if "class" in inputs else RANDOM_CLASS
                if not RANDOM_CLASS <= label <= self.k:
                    raise UserError(
                        f"row {r}: class {label} is out of range; send 0..{self.k - 1}, "
                        f"{self.k} (the null label) or {RANDOM_CLASS} (random)"
                    )
                if label == RANDOM_CLASS:
                    label = int(random_labels_for(self.k, np.array([seed]), np.array([index]))[0])
            try:
                settings, w = self._settings(inputs, r)
            except UserError as e:
                raise UserError(f"row {r}: {e}") from None
            rows.append((settings, w, seed, index, label))
        return rows

    def run(self, requests: list[dict[str, np.ndarray]]) -> list:
        """For each request, either its outputs (uint8 ``image`` as `sample` saves it, float32
        ``sample`` before quantisation) or a UserError (returned, not raised)."""
        results: list = [None] * len(requests)
        groups: dict[tuple, Group] = defaultdict(Group)
        for q, inputs in enumerate(requests):
            try:
                rows = self.check(inputs)
            except UserError as e:
                results[q] = e
                continue
            shape = (len(rows), *self.denoiser.image_shape)
            results[q] = {"image": np.zeros(shape, np.uint8), "sample": np.zeros(shape, np.float32)}
            for r, (settings, w, seed, index, label) in enumerate(rows):
                # a null label or unconditional model needs no guidance: one group for any w
                unguided = label is NO_LABEL or label == self.k
                key = (tuple(settings.sampler_kwargs().values()), None if unguided else w, unguided)
                g = groups[key]
                g.settings = settings
                g.rows.append((q, r))
                g.seeds.append(seed)
                g.indices.append(index)
                g.labels.append(label)
        for (_, w, unguided), g in groups.items():
            for start in range(0, len(g.rows), self.batch):
                part = slice(start, start + self.batch)
                x = self._sample(g.settings, w, unguided, g, part)
                pixels = to_uint8(x)
                for k, (q, r) in enumerate(g.rows[part]):
                    results[q]["image"][r] = pixels[k]
                    results[q]["sample"][r] = x[k]
        return results

    def _sample(
        self, settings: SamplerSettings, w: float, unguided: bool, g: Group, part: slice
    ) -> np.ndarray:
        seeds, indices = np.array(g.seeds[part]), np.array(g.indices[part])
        if unguided:
            # as `sample --class none` does: the denoiser's own null label, or no label at all
            den = Guided(self.denoiser, None, DEFAULT_GUIDANCE)
        else:
            den = Guided(self.denoiser, np.array(g.labels[part], np.int64), w)
        return sample(
            den,
            self.denoiser.schedule,
            len(seeds),
            PerImageNoise.for_images(seeds, indices),
            **settings.sampler_kwargs(),
            shape=self.denoiser.image_shape,
        )


class DenoiserService:
    """``ddpm_denoiser``: rows of (x, t[, y]) -> eps, every request's rows in one backend call."""

    def __init__(self, denoiser: Denoiser):
        self.denoiser = denoiser
        self.k = denoiser.num_classes
        self.T = denoiser.schedule.T
        self.image = denoiser.image_shape  # (C, H, W) from the card

    def check(self, inputs: dict[str, np.ndarray]) -> None:
        for name in ("x", "t"):
            if name not in inputs:
                raise UserError(f"missing input {name!r}; ddpm_denoiser needs x and t per image")
        t = inputs["t"].reshape(-1)
        if t.size and (t.min() < 0 or t.max() >= self.T):
            raise UserError(f"t must be in 0..{self.T - 1}, got {t.min()}..{t.max()}")
        if "y" in inputs:
            if not self.k:
                raise UserError("this model is unconditional; send no 'y' input")
            y = inputs["y"].reshape(-1)
            if y.size and (y.min() < 0 or y.max() > self.k):
                raise UserError(f"y must be in 0..{self.k} ({self.k}: the null label)")
        want = self.image
        if inputs["x"].shape[1:] != want:
            raise UserError(
                f"x must be N x {' x '.join(map(str, want))} for this model (its card's image "
                f"shape), got {' x '.join(map(str, inputs['x'].shape))}"
            )
        if not np.isfinite(inputs["x"]).all():
            raise UserError("x holds NaN or infinite values")

    def run(self, requests: list[dict[str, np.ndarray]]) -> list:
        results: list = [None] * len(requests)
        good = []
        for q, inputs in enumerate(requests):
            try:
                self.check(inputs)
                good.append(q)
            except UserError as e:
                results[q] = e
        if not good:
            return results
        x = np.concatenate([requests[q]["x"] for q in good]).astype(np.float32, copy=False)
        t = np.concatenate([requests[q]["t"].reshape(-1) for q in good]).astype(np.int64)
        y = None
        if self.k:
            # a request without y asks for the null label (unconditional), as the runtime does
            y = np.concatenate(
                [
                    requests[q]["y"].reshape(-1)
                    if "y" in requests[q]
                    else np.full(len(requests[q]["x"]), self.k)
                    for q in good
                ]
            ).astype(np.int64)
        eps = self.denoiser(x, t, y)
        start = 0
        for q in good:
            n = len(requests[q]["x"])
            results[q] = {"eps": eps[start : start + n]}
            start += n
        return results
