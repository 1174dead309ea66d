"""`export-web`: a static folder that samples a model in the browser with ONNX Runtime Web."""

from __future__ import annotations

import click

from ddpm_deploy.cli.options import friendly_errors


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
@friendly_errors
def export_web(model, out, force, node_modules, webgpu) -> None:
    """Write a static web page that samples MODEL in the visitor's browser.

    index.html, the model, its card as JSON, the samplers in JavaScript and ONNX Runtime Web's
    files: serve the folder with any static server (its serve.py adds the headers for threads).
    """
    from ddpm_deploy.export.web import export_web as write

    record = write(model, out, force=force, node_modules=node_modules, webgpu=webgpu)
    click.echo(
        f"wrote {record['out']} ({record['bytes'] / 1e6:.1f} MB); serve it with "
        f"`python {out}/serve.py` and open http://127.0.0.1:8000/"
    )
