"""The option groups of the commands that sample (`sample`, `evaluate`): the sampler and the
class-and-guidance groups, one request part each (runtime/sampler_settings.py SamplerSettings,
runtime/guidance.py ClassChoice)."""

from __future__ import annotations

import click

from ddpm_deploy.cli.options import apply_group, finite_float


def class_options(fn):
    """The class-and-guidance options of every command that samples (runtime/guidance.py
    ClassChoice): `sample` and `evaluate` (which takes all, random or none)."""
    from ddpm_deploy.runtime.guidance import DEFAULT_GUIDANCE

    return apply_group(
        fn,
        [
            click.option(
                "--class",
                "class_",
                default=None,
                help="Class-conditional models: a class name (e.g. sneaker) or index, 'all' for "
                "every class alike, 'random' for a uniformly random class per image, or 'none' for "
                "the null label. [default: random for class-conditional models, else unconditional]",
            ),
            click.option(
                "--guidance",
                default=None,
                type=finite_float(),
                help="Classifier-free guidance weight w: 0 unconditional, 1 conditional (one call "
                f"per step). [default: a distilled model's own, else {DEFAULT_GUIDANCE}]",
            ),
        ],
    )


def sampler_options(fn):
    """The sampler options of `sample` and `evaluate`, with the defaults of runtime/samplers.py."""
    from ddpm_deploy.runtime.sampler_settings import SamplerSettings
    from ddpm_deploy.runtime.samplers import (
        DEFAULT_SAMPLER,
        DEFAULT_SPACING,
        DEFAULT_STEPS,
        SAMPLERS,
    )
    from ddpm_deploy.runtime.timesteps import SPACINGS

    d = SamplerSettings()
    return apply_group(
        fn,
        [
            click.option(
                "--sampler",
                default=d.sampler,
                help=f"One of {', '.join(SAMPLERS)}. [default: the model's own sampler (learned or "
                f"distilled), else {DEFAULT_SAMPLER}]",
            ),
            click.option(
                "--steps",
                default=d.steps,
                type=int,
                help=f"Sampler steps per image (1..T): network calls plus --analytic steps. [default: the model's own, else {DEFAULT_STEPS}]",
            ),
            click.option(
                "--analytic",
                default=d.analytic,
                type=click.IntRange(0, None),
                help="The first steps taken by the data's Gaussian statistics in the model card instead of the network (`learn-sampler` adds them). [default: the model's own, else 0]",
            ),
            click.option(
                "--spacing",
                default=d.spacing,
                help=f"Timesteps: one of {', '.join(SPACINGS)}. [default: {DEFAULT_SPACING}; a distilled model's own]",
            ),
            click.option(
                "--eta",
                default=d.eta,
                type=finite_float(),
                help="DDIM noise: 0 deterministic, 1 DDPM-like.",
            ),
            click.option(
                "--variance",
                default=d.variance,
                help="DDPM sigma^2: beta (the article's) or posterior.",
            ),
            click.option(
                "--clip/--no-clip",
                default=d.clip,
                help="Clip the predicted x0 to [-1, 1] in each step.",
            ),
        ],
    )


# --guidance of the commands that write a sampler graph (export-sampler, export-web): a number
# fixed in the graph, where `sample`'s is a choice at every run (class_options)
GRAPH_GUIDANCE = click.option(
    "--guidance",
    default=None,
    type=finite_float(),
    help="Classifier-free guidance weight, fixed in the sampler graph (w other than 0 and 1 "
    "doubles the batch of every call). [default: the model's own, else 1]",
)
