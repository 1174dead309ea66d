"""`export`, `quantize` and `build-engine`: checkpoint to ONNX, ONNX to INT8, ONNX to TensorRT."""

from __future__ import annotations

import json

import click

from ddpm_deploy.cli.options import (
    DATA_ROOT,
    JSON,
    MAX_SEED,
    engine_options,
    friendly_errors,
    typed_options,
)
from ddpm_deploy.errors import UserError


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

    unused = sorted(typed_options(engine))  # the engine's options, given without an engine
    if unused and not fp16:
        raise UserError(f"--{unused[0].replace('_', '-')} shapes the engine --fp16 builds; add --fp16 or drop it")  # fmt: skip
    engine = EngineOptions(**engine) if fp16 else None
    export_model(checkpoint, out, verify=verify, weights=weights, engine=engine, echo=click.echo)


@click.command()
@click.argument("model")
@click.option("-o", "--out", required=True, help="ONNX file to write, e.g. model.int8.onnx.")
@DATA_ROOT
@click.option(
    "--setting",
    default=None,
    help="What is quantized and how it is calibrated "
    "(export/quantize_settings.py). [default: the best measured, docs/QUALITY.md]",
)
@click.option("--calibration-batches", default=16, type=int, help="Calibration batches.")
@click.option("--calibration-batch", default=32, type=int, help="Images per calibration batch.")
@click.option(
    "--seed",
    default=0,
    type=click.IntRange(0, MAX_SEED),
    help="Seed of the calibration and the gate's images.",
)
@click.option("--gate-n", default=300, type=int, help="Images per model in the end-to-end gate.")
@click.option("--force", is_flag=True, help="Write the file even if it fails the gate.")
@JSON
@friendly_errors
def quantize(
    model, out, setting, calibration_batches, calibration_batch, as_json, **options
) -> None:
    """Quantize an exported ONNX model to INT8 (QDQ); written only if it passes an end-to-end gate.

    The int8 and the fp32 model sample --gate-n images on the same noise and classes; the
    two-sample test, precision/recall and FD (as `evaluate` computes them) judge the int8 set
    against the fp32 set. Past any bound nothing is written, unless --force.
    """
    from ddpm_deploy.export.quantize import DEFAULT_SETTING, quantize_int8
    from ddpm_deploy.shipped import resolve_model

    setting = setting or DEFAULT_SETTING
    batches, batch = calibration_batches, calibration_batch
    r = quantize_int8(
        resolve_model(model), out, setting=setting, batches=batches, batch=batch, **options
    )
    click.echo(json.dumps(r.to_dict(), indent=2) if as_json else f"{r.error}\n{r.gate}")
    if not r.written:
        raise UserError(
            f"the int8 model failed the end-to-end gate ({r.gate.miss_text()}); "
            f"nothing was written (--force writes it anyway)"
        )
    click.echo(f"wrote {out}" + (" (forced past the gate)" if not r.gate.passed else ""), err=True)


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
