"""`export-web`: a static folder that samples a model in the browser with ONNX Runtime Web."""

from __future__ import annotations

import click

from ddpm_deploy.cli.options import friendly_errors
from ddpm_deploy.cli.sampling_options import GRAPH_GUIDANCE, sampler_options


@click.command("export-web")
@click.option("--model", default="fashion_mnist", help="A shipped model name or an exported .onnx.")
@click.option("-o", "--out", required=True, help="Folder to write: new or empty (see --force).")
@click.option("--force", is_flag=True, help="Write over a non-empty folder (other files stay).")
@click.option(
    "--node-modules",
    default=None,
    help="A node_modules holding onnxruntime-web 1.30.0. [default: this checkout's "
    "web/node_modules (npm ci --prefix web), then ./web/node_modules, ./node_modules]",
)
@click.option("--webgpu", is_flag=True, help="Also ship the WebGPU build (27 MB) for ?ep=webgpu.")
@sampler_options
@GRAPH_GUIDANCE
@friendly_errors
def export_web(model, out, force, node_modules, webgpu, guidance, **sampler) -> None:
    """Write a static web page that samples MODEL in the visitor's browser.

    index.html, the model's whole sampler as one ONNX graph (built here with the sampler options,
    or MODEL itself when it comes from `export-sampler`), its card as JSON and ONNX Runtime Web's
    files: serve the folder with any static server (its serve.py adds the headers for threads).
    Seed s draws the images `ddpm-deploy sample --seed s` draws.
    """
    from ddpm_deploy.export.web import export_web as write
    from ddpm_deploy.runtime.sampler_settings import SamplerSettings

    settings = SamplerSettings(**sampler)
    settings.check(1)
    options = {"force": force, "node_modules": node_modules, "webgpu": webgpu}
    record = write(model, out, **options, settings=settings, guidance=guidance)
    click.echo(
        f"wrote {record['out']} ({record['bytes'] / 1e6:.1f} MB); serve it with "
        f"`python {out}/serve.py` and open http://127.0.0.1:8000/"
    )
