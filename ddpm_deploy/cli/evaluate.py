"""`evaluate`: sample quality of a model, measured in a classifier's feature space."""

from __future__ import annotations

import json

import click

from ddpm_deploy.cli.options import (
    DATA_ROOT,
    JSON,
    MAX_SEED,
    friendly_errors,
    model_options,
)
from ddpm_deploy.cli.sampling_options import class_options, sampler_options


@click.command()
@model_options
@sampler_options
@click.option("-n", "n", default=10_000, type=int, help="How many images to generate.")
@class_options
@click.option("--batch", default=1000, type=int, help="Images generated per chunk.")
@click.option(
    "--seed",
    default=0,
    type=click.IntRange(0, MAX_SEED),
    help="Image i depends only on (seed, i): a rerun repeats every image.",
)
@click.option(
    "--dataset", default=None, help="Check the model against this dataset. [default: the model's]"
)
@click.option("--classifier", default=None, help="Classifier ONNX file. [default: the shipped one]")
@click.option(
    "--two-sample/--no-two-sample",
    default=True,
    help="The classifier two-sample test (trains small CNNs; needs torch, the `train` extra).",
)
@DATA_ROOT
@JSON
@friendly_errors
def evaluate(as_json, **options) -> None:
    """Measure sample quality: FD in a classifier's feature space, a classifier two-sample test,
    precision and recall, FD in pixel PCA space, class balance; each with its real-data floor.

    --class takes all (image i asks for class i mod K, and the share found is reported), random
    (the default for class-conditional models) or none. Needs the dataset's test split (and 10,000 training images for the real-data floor) under
    --data-root.
    """
    from ddpm_deploy.runtime.evaluate import EvalRequest, summary
    from ddpm_deploy.runtime.evaluate import evaluate as run

    result = run(EvalRequest(**options))
    click.echo(json.dumps(result, indent=2) if as_json else summary(result))
