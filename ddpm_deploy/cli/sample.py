"""`sample` and `forward`: pictures of the reverse and the forward process."""

from __future__ import annotations

import click

from ddpm_deploy.cli.options import (
    DATA_ROOT,
    MAX_SEED,
    friendly_errors,
    model_options,
)
from ddpm_deploy.cli.sampling_options import class_options, sampler_options


@click.command()
@model_options
@sampler_options
@class_options
@click.option("-n", "n", default=16, type=int, help="How many images (per class with --class all).")
@click.option(
    "--seed",
    default=0,
    type=click.IntRange(0, MAX_SEED),
    help="Image i depends only on (seed, i): the same seed draws the same images.",
)
@click.option("--out", default=".", help="Folder for samples.png, sampling.gif and run.json.")
@click.option("--frames", default=100, type=int, help="GIF frames spread over the steps.")
@click.option("--scale", default=1, type=int, help="Enlarge every pixel of the outputs N x N.")
@click.option(
    "--batch",
    default=100,
    type=int,
    help="Images per chunk (one denoiser call per step; twice the rows with guidance).",
)
@click.option(
    "--save",
    default=None,
    type=click.Choice(["npz"]),
    help="Also write every sample to samples.npz (uint8 images, labels). [default: pictures only]",
)
@click.option("--save-float", is_flag=True, help="With --save npz: also the raw float32 samples.")
@friendly_errors
def sample(**options) -> None:
    """Generate images: samples.png, sampling.gif and run.json (and samples.npz with --save).

    The pictures show the first 64 images (10 per class with --class all); image i depends only
    on (--seed, i), whatever -n or --batch.
    """
    from ddpm_deploy.runtime.pipeline import SampleRequest, run_sampling

    record = run_sampling(SampleRequest(**options))
    click.echo(
        f"{record['n']} samples ({record['sampler']}, {record['network_calls']} network calls per image, {record['backend']} on "
        f"{record['device']}, {record['seconds']:.1f} s) in {record['out']}: "
        + ", ".join(record["outputs"] + ["run.json"])
    )


@click.command()
@click.option(
    "--dataset",
    default="fashion_mnist",
    type=click.Choice(["fashion_mnist", "fashion", "mnist"]),
    help="The IDX dataset to picture (fashion: fashion_mnist).",
)
@DATA_ROOT
@click.option("-n", "n", default=8, type=click.IntRange(1, 64), help="How many images.")
@click.option(
    "--seed", default=0, type=click.IntRange(0, MAX_SEED), help="Picks the images and the noise."
)
@click.option("--out", default="forward.png", help="PNG to write.")
@click.option("--scale", default=1, type=click.IntRange(1, 16), help="Enlarge every pixel N x N.")
@friendly_errors
def forward(dataset, data_root, n, seed, out, scale) -> None:
    """Picture real images noised to 25-100% of T.

    Row 1 holds real images; rows 2-5 the same images at 25, 50, 75 and 100% of T.
    """
    from ddpm_deploy.forward import forward_picture

    click.echo(f"wrote {forward_picture(dataset, data_root, n, seed, out, scale=scale)}")
