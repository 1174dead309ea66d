"""`import-diffusers` and `export-diffusers`: Hugging Face diffusers DDPM folders in and out."""

from __future__ import annotations

import click

from ddpm_deploy.cli.options import friendly_errors


@click.command("import-diffusers")
@click.argument("folder")
@click.option("-o", "--out", required=True, help="ONNX file to write (.onnx).")
@click.option(
    "--checkpoint",
    default=None,
    help="Also write a ddpm-deploy checkpoint (.safetensors) for `sample --backend torch`.",
)
@click.option(
    "--dataset",
    default=None,
    help="The ddpm-deploy dataset the model was trained on, if any (for `evaluate`). "
    "[default: recorded as 'diffusers']",
)
@click.option(
    "--last-class-is-null",
    is_flag=True,
    help="The UNet's last class embedding is its unconditional label (trained with label "
    "dropout to it): classifier-free guidance works. Without it a class-conditional UNet "
    "samples with --guidance 1 only.",
)
@friendly_errors
def import_diffusers(folder, out, checkpoint, dataset, last_class_is_null) -> None:
    """Import a local diffusers DDPM folder (UNet2DModel + DDPMScheduler) as an ONNX model.

    FOLDER is what DDPMPipeline.save_pretrained writes, or the flat layout (config.json,
    scheduler_config.json and diffusion_pytorch_model.safetensors). Parity with diffusers' own
    forward is proven at batch 1, 16 and 100 before anything is written.
    """
    from ddpm_deploy.export.diffusers_import import import_diffusers as run

    run(
        folder,
        out,
        checkpoint=checkpoint,
        dataset=dataset,
        last_class_is_null=last_class_is_null,
        echo=click.echo,
    )


@click.command("export-diffusers")
@click.argument("checkpoint")
@click.argument("out")
@click.option("--weights", default="auto", help="auto (the card's choice), ema or model.")
@friendly_errors
def export_diffusers(checkpoint, out, weights) -> None:
    """Write a diffusers folder (DDPMPipeline) for a ddpm-deploy checkpoint.

    OUT must be new or empty. The project's own UNets travel as a custom component: load with
    DDPMPipeline.from_pretrained(OUT, trust_remote_code=True) where ddpm-deploy is installed.
    """
    from ddpm_deploy.export.diffusers_export import export_diffusers as run

    run(checkpoint, out, weights=weights, echo=click.echo)
