"""`export`, `quantize` and `build-engine`: checkpoint to ONNX, ONNX to INT8, ONNX to TensorRT."""

from __future__ import annotations

import click

from ddpm_deploy.cli.options import DATA_ROOT, engine_options, friendly_errors


@click.command()
@click.argument("checkpoint")
@click.option("-o", "--out", default="model.onnx", help="ONNX file to write.")
@click.option(
    "--verify/--no-verify", default=True, help="Prove parity with PyTorch at batch 1, 16, 100."
)
@click.option("--weights", default="auto", help="auto (the card's choice), ema or model.")
@click.option("--fp16", is_flag=True, help="Also build a TensorRT FP16 engine (needs TensorRT).")
@engine_options
@friendly_errors
def export(checkpoint, out, verify, weights, fp16, **engine) -> None:
    """Export a checkpoint to a self-describing ONNX file.

    CHECKPOINT is a .safetensors file or a training folder (its best.safetensors).
    """
    from ddpm_deploy.export.run import EngineOptions, export_model

    engine = EngineOptions(**engine) if fp16 else None
    export_model(checkpoint, out, verify=verify, weights=weights, engine=engine, echo=click.echo)


@click.command()
@click.argument("model")
@click.option(
    "--int8", "int8", is_flag=True, required=True, help="Post-training static INT8 (QDQ)."
)
@click.option("-o", "--out", required=True, help="ONNX file to write, e.g. model.int8.onnx.")
@DATA_ROOT
@click.option("--calibration-batches", default=16, type=int, help="Calibration batches.")
@click.option("--calibration-batch", default=32, type=int, help="Images per calibration batch.")
@click.option("--seed", default=0, type=int, help="Seed of the calibration images, t and noise.")
@friendly_errors
def quantize(model, int8, out, data_root, calibration_batches, calibration_batch, seed) -> None:
    """Quantize an exported ONNX model to INT8 (QDQ), checked against fp32 before it is written.

    Calibrates on x_t from the forward process over training images under --data-root; prints the
    per-timestep error of int8 against fp32 and writes nothing if it exceeds the bounds. Passing
    them does not prove quality (docs/BENCHMARKS.md): check the file with `evaluate`.
    """
    from ddpm_deploy.export.quantize import quantize_int8
    from ddpm_deploy.runtime.models import resolve_model

    err = quantize_int8(
        resolve_model(model), out, data_root, calibration_batches, calibration_batch, seed
    )
    click.echo(str(err))
    click.echo(f"wrote {out}")
    click.echo(
        "These bounds are necessary, not sufficient: on the shipped fashion_mnist model an int8 file "
        "within them tripled FD (docs/BENCHMARKS.md). Measure it before use: "
        f"ddpm-deploy evaluate --model {out}",
        err=True,
    )


@click.command("build-engine")
@click.argument("model")
@click.option(
    "--fp16", is_flag=True, help="Build from a mixed-precision copy of MODEL (fp16 weights)."
)
@engine_options
@friendly_errors
def build_engine(model, fp16, **engine) -> None:
    """Build (or reuse) a TensorRT engine for this GPU."""
    from ddpm_deploy.export.run import EngineOptions, engine_for

    engine_for(model, fp16, EngineOptions(**engine), echo=click.echo)
