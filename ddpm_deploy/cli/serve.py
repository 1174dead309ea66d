"""`serve` and `triton-repo`: the runtime behind Triton Inference Server."""

from __future__ import annotations

import sys

import click

from ddpm_deploy.cli.options import friendly_errors, model_options


@click.command()
@model_options
@click.option(
    "--host",
    default="127.0.0.1",
    help="IPv4 address to bind (Triton binds IPv4 only); 0.0.0.0 serves other machines too.",
)
@click.option("--http-port", default=8000, type=int, help="Triton's HTTP/REST port.")
@click.option("--grpc-port", default=8001, type=int, help="Triton's gRPC port.")
@click.option("--metrics-port", default=8002, type=int, help="Prometheus metrics at /metrics.")
@click.option(
    "--max-images",
    default=64,
    type=int,
    help="Most images per request, and per batch Triton executes.",
)
@click.option(
    "--queue-delay-us",
    default=5000,
    type=int,
    help="How long Triton's dynamic batcher waits to fill a batch.",
)
@click.option(
    "--batch",
    default=16,
    type=int,
    help="Images per sampler run in the server: ddpm_sample runs a dynamic batch in chunks of "
    "this size (16 measured fastest on a 2-core CPU; GPUs want more).",
)
@click.option(
    "--exit-timeout",
    "exit_timeout_s",
    default=30,
    type=int,
    help="Seconds in-flight requests get to finish on Ctrl-C or SIGTERM.",
)
@click.option(
    "--log", default=None, help="Write Triton's log to this file. [default: a temporary file]"
)
@friendly_errors
def serve(**options) -> None:
    """Serve the model on Triton Inference Server: ddpm_sample (images) and ddpm_denoiser (eps).

    Needs the serve extra (nvidia-pytriton bundles the tritonserver binary). docs/SERVING.md
    describes the requests; `sample --backend triton --url HOST:PORT` is a client.
    """
    from ddpm_deploy.serve.server import ServeOptions
    from ddpm_deploy.serve.server import serve as run

    sys.exit(run(ServeOptions(**options), on_ready=lambda line: click.echo(line, err=True)))


@click.command("triton-repo")
@click.argument("model")
@click.option("-o", "--out", required=True, help="New folder for the model repository.")
@click.option(
    "--engine", default=None, help="Also a tensorrt_plan model from this TensorRT engine."
)
@click.option("--max-batch", default=64, type=int, help="Triton's max_batch_size.")
@click.option("--queue-delay-us", default=5000, type=int, help="Dynamic batcher's max queue delay.")
@click.option("--instances", default=1, type=int, help="Model instances (instance_group count).")
@click.option("--kind", type=click.Choice(["gpu", "cpu"]), default="gpu", help="Instance kind.")
@click.option(
    "--trt-accelerator/--no-trt-accelerator",
    default=False,
    help="ONNX Runtime's TensorRT execution accelerator (fp16).",
)
@friendly_errors
def triton_repo(**options) -> None:
    """Write a Triton model repository for the full Triton container (unverified here).

    MODEL, a denoiser, becomes ddpm_denoiser (the client runs the sampling loop); a sampler file
    (export-sampler) becomes ddpm_sampler, the whole sampler: rows of seed, index (and y) to x0
    and image. docs/SERVING.md describes both.
    """
    from ddpm_deploy.serve.repository import TritonRepoOptions
    from ddpm_deploy.serve.repository import triton_repo as run

    for path in run(TritonRepoOptions(**options)):
        click.echo(path)
