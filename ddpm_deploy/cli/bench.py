"""`bench`: per-step latency and throughput of the sampling loop per backend and batch size."""

from __future__ import annotations

import json

import click

from ddpm_deploy.cli.options import JSON, friendly_errors, model_options


@click.command()
@click.option("--model", default="fashion_mnist", help="ONNX model (ort), or a shipped model name.")
@click.option("--checkpoint", default=None, help="Training checkpoint for the torch backend.")
@click.option(
    "--backend",
    "backends",
    default="ort",
    help="Comma-separated: ort, torch, trt, openvino, triton, with a precision after a colon: "
    "openvino:bf16, ort:int8, openvino:int8 (int8 runs --int8-model).",
)
@click.option(
    "--int8-model", default=None, help="QDQ int8 ONNX file (`ddpm-deploy quantize`) for NAME:int8."
)
@click.option("--batch", "batches", default="1,16,100", help="Comma-separated batch sizes.")
@click.option("--steps", default=50, type=int, help="Timed sampling steps per round.")
@click.option("--rounds", default=3, type=int, help="Rounds; backends alternate within each.")
@model_options(leave_out=("model", "backend", "precision"))
@JSON
@friendly_errors
def bench(
    model, checkpoint, backends, int8_model, batches, steps, rounds, as_json, **given
) -> None:
    """Time the sampling loop per backend and batch size (--precision is part of --backend)."""
    from ddpm_deploy.runtime.bench import rows_as_dicts, table
    from ddpm_deploy.runtime.bench_specs import bench_specs

    rows, info = bench_specs(
        model,
        backends,
        batches,
        checkpoint=checkpoint,
        int8_model=int8_model,
        steps=steps,
        rounds=rounds,
        warn=lambda line: click.echo(line, err=True),
        **given,
    )
    if as_json:
        click.echo(json.dumps({"rows": rows_as_dicts(rows), **info}, indent=2))
    else:
        click.echo(table(rows, info))
