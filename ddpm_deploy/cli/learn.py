"""`learn-sampler`: a model's sampler learned for fewer network calls, the network unchanged."""

from __future__ import annotations

import json

import click

from ddpm_deploy.cli.options import DATA_ROOT, JSON, SEED, finite_float, friendly_errors


@click.command("learn-sampler")
@click.argument("model")
@click.option(
    "-o",
    "--out",
    required=True,
    help="ONNX file to write: MODEL with the learned sampler in its card.",
)
@DATA_ROOT
@click.option("--calls", default=4, type=click.IntRange(1, 50), help="Network calls per image.")
@click.option(
    "--analytic",
    default=None,
    type=click.IntRange(0, 50),
    help="Steps taken by the data's Gaussian statistics before the first call. [default: the best of 0..calls+2 against the teacher]",
)
@click.option(
    "--rank",
    default=64,
    type=click.IntRange(1, 4096),
    help="Principal directions per class in the Gaussian statistics.",
)
@click.option(
    "--teacher",
    default="ddim:100:linspace",
    help="The sampler whose images the learned one is fitted to, SAMPLER:STEPS[:SPACING] (e.g. dpm++2m:8:edm).",
)
@click.option(
    "--images",
    default=128,
    type=click.IntRange(8, 4096),
    help="Starting noises fitted (and as many held out).",
)
@click.option(
    "--evals",
    default=300,
    type=click.IntRange(0, 100_000),
    help="Loss evaluations of the optimizer (each samples --images).",
)
@SEED
@click.option(
    "--guidance",
    default=1.0,
    type=finite_float(0, 100),
    help="Classifier-free guidance the sampler runs at.",
)
@click.option(
    "--learn/--no-learn",
    default=False,
    help="Also fit the grid and DPM-Solver++(2M) corrections to the teacher (on the shipped "
    "models this measured worse than the training-free grid: docs/QUALITY.md). [default: the "
    "statistics and the number of analytic steps only]",
)
@JSON
@friendly_errors
def learn_sampler(model, out, data_root, as_json, **options) -> None:
    """Learn MODEL's sampler for --calls network calls per image; the network stays as it is.

    MODEL is a shipped name or an .onnx file. The data's class-conditional Gaussian statistics
    (from --data-root) take the first, high-noise steps; how many is chosen against a teacher
    sampler's images from the same noise (--teacher), and with --learn the timesteps and
    DPM-Solver++(2M) corrections are fitted to them too. OUT is MODEL's file with the new sampler
    (its default from now on; any --sampler/--steps still applies) and the statistics in its
    card: the graph is byte-identical. Needs the `export` extra (onnx, scipy).
    """
    from ddpm_deploy.export.learn_sampler import LearnConfig, summary
    from ddpm_deploy.export.learn_sampler import learn_sampler as run

    report = run(model, out, data_root, LearnConfig(**options))
    click.echo(json.dumps(report, indent=2) if as_json else summary(report, out))
