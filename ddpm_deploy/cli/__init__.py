"""The ddpm-deploy command line, assembled from one module per command group.

Thin on purpose: each command parses options and calls one library function (docs/ARCHITECTURE.md,
invariant 5; tests/cli/test_cli_thin.py). Heavy imports (torch, onnx) happen inside the commands
that need them, so `ddpm-deploy sample --backend ort` runs where torch is not installed.
"""

from __future__ import annotations

import click

from ddpm_deploy import __version__
from ddpm_deploy.cli import (
    bench,
    diffusers_io,
    distill,
    doctor,
    evaluate,
    export,
    export_sampler,
    learn,
    sample,
    serve,
    train,
    web,
)
from ddpm_deploy.cli.options import apply_bounds, friendly_errors

__all__ = ["friendly_errors", "main"]


@click.group(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ddpm-deploy")
def main() -> None:
    """Train a DDPM, export it to ONNX, and sample it on any CPU or GPU."""


for command in (
    train.train,
    train.train_classifier,
    train.bench_train,
    distill.distill,
    learn.learn_sampler,
    export.export,
    export.quantize,
    export.build_engine,
    web.export_web,
    export_sampler.export_sampler,
    diffusers_io.import_diffusers,
    diffusers_io.export_diffusers,
    sample.sample,
    sample.forward,
    evaluate.evaluate,
    bench.bench,
    serve.serve,
    serve.triton_repo,
    doctor.doctor,
):
    main.add_command(command)
apply_bounds(main)  # every numeric option's upper bound, from ddpm_deploy/bounds.py
