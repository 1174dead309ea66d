"""The one chunked generation loop: n images in chunks of ``batch`` images per sampler run, image i's
noise and class depending only on (seed, i), whatever the chunking (docs/ARCHITECTURE.md,
invariant 4). `sample` and `evaluate` (and so quantize's gate) generate through it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from ddpm_deploy.runtime.backends import Denoiser
from ddpm_deploy.runtime.guidance import Guided
from ddpm_deploy.runtime.noise import PerImageNoise
from ddpm_deploy.runtime.sampler_settings import SamplerSettings, steps_run
from ddpm_deploy.runtime.samplers import sample
from tqdm.auto import tqdm

# on_step(start, step_index, t, x): x, after the step, is the chunk of images start .. start+len(x)-1
ChunkStep = Callable[[int, int, int, np.ndarray], None]


def generate_chunks(
    denoiser: Denoiser,
    settings: SamplerSettings,
    n: int,
    *,
    seed: int,
    labels: np.ndarray | None,
    guidance: float,
    batch: int,
    desc: str,
    progress: bool = True,
    on_step: ChunkStep | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(start, x) for each chunk: its first image's index and its samples, in model space.

    ``settings`` are resolved for the model (``for_model``); ``labels`` holds one class per image,
    or None for an unconditional run. The progress bar counts sampler steps and ends its line
    before an error is raised, so the error reads as a line of its own."""
    steps = steps_run(settings.steps, denoiser.schedule.T)
    starts = range(0, n, batch)
    bar = tqdm(total=len(starts) * steps, desc=desc, unit="step", disable=not progress)
    try:
        for start in starts:
            size = min(batch, n - start)

            def step(i: int, t: int, x: np.ndarray, start: int = start) -> None:
                bar.update()
                if on_step is not None:
                    on_step(start, i, t, x)

            chunk_labels = None if labels is None else labels[start : start + size]
            if denoiser.whole_sampler:  # one run of the file's own graph: no steps to watch
                x = denoiser.sample_whole(seed, start, size, chunk_labels)
                bar.update(steps - 1)
                step(steps - 1, 0, x)
                yield start, x
                continue
            yield (
                start,
                sample(
                    Guided(denoiser, chunk_labels, guidance),
                    denoiser.schedule,
                    size,
                    PerImageNoise(seed, start, size),
                    **settings.sampler_kwargs(),
                    shape=denoiser.image_shape,
                    callback=step,
                ),
            )
    finally:
        bar.close()
