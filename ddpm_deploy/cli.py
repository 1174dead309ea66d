"""The ddpm-deploy command line. Thin on purpose: each command parses options and calls one library
function (DESIGN.md, invariant 5). Heavy imports (torch, onnx) happen inside the commands that need them,
so `ddpm-deploy sample --backend ort` runs where torch is not installed."""

from __future__ import annotations

import functools
import sys

import click

from ddpm_deploy import __version__
from ddpm_deploy.errors import UserError


def friendly_errors(fn):
    """Turn a UserError, or a missing optional dependency, into one line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            raise click.ClickException(str(e)) from None
        except ModuleNotFoundError as e:
            extra = "export" if e.name in ("onnx", "onnxscript") else "train"
            raise click.ClickException(
                f"this command needs the {e.name!r} package; install it with "
                f"`pip install 'ddpm-deploy[{extra}]'`"
            ) from None

    return wrapper


@click.group(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ddpm-deploy")
def main() -> None:
    """Train a DDPM, export it to ONNX, and sample it on any CPU or GPU."""


DATASET = click.option(
    "--dataset", default="fashion_mnist", help="fashion_mnist (alias fashion) or mnist."
)
DATA_ROOT = click.option(
    "--data-root",
    envvar="DDPM_DEPLOY_DATA",
    show_envvar=True,
    default=None,
    help="Folder with the IDX files (torchvision layout or plain). [default: ./data]",
)


@main.command()
@DATASET
@DATA_ROOT
@click.option(
    "--out", default="runs/fashion_mnist", help="Folder for checkpoints, loss.csv, loss.png."
)
@click.option("--epochs", default=20, type=int)
@click.option("--batch-size", default=128, type=int)
@click.option("--lr", default=1e-3, type=float, help="Adam learning rate.")
@click.option("--seed", default=0, type=int, help="Fixes every random number of the run.")
@click.option(
    "--ema", default=None, type=float, help="EMA decay of the weights (e.g. 0.999). [default: off]"
)
@click.option("--schedule", default="linear", help="Noise schedule: linear or cosine.")
@click.option("--device", default="auto", help="auto, cpu or cuda.")
@click.option("--limit", default=None, type=int, help="Train on the first N images only.")
@click.option(
    "--download/--no-download", default=True, help="Download the dataset if it is missing."
)
@click.option(
    "--resume",
    "resume_dir",
    default=None,
    help="Continue the run in this folder (its last.safetensors).",
)
@friendly_errors
def train(resume_dir, **options) -> None:
    """Train the reference UNet; keeps best.safetensors and last.safetensors."""
    from ddpm_deploy.train.loop import TrainConfig, saved_config
    from ddpm_deploy.train.loop import train as run

    if resume_dir is not None:
        ctx = click.get_current_context()
        cfg = saved_config(resume_dir)
        for name in ("epochs", "device", "data_root"):
            if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
                setattr(cfg, name, options[name])
    else:
        cfg = TrainConfig(**options)
    out = run(cfg, resume=resume_dir is not None)
    click.echo(
        f"checkpoints in {out}: best.safetensors, last.safetensors; loss curve in {out / 'loss.png'}"
    )


@main.command()
@DATASET
@DATA_ROOT
@click.option("-n", "n", default=8, type=click.IntRange(1, 64), help="How many images.")
@click.option("--seed", default=0, type=int)
@click.option("--out", default="forward.png", help="PNG to write.")
@friendly_errors
def forward(dataset, data_root, n, seed, out) -> None:
    """Picture real images noised to 0/25/50/75/100% of T (the forward process)."""
    from ddpm_deploy.forward import forward_picture

    click.echo(f"wrote {forward_picture(dataset, data_root, n, seed, out)}")


@main.command()
@click.argument("checkpoint")
@click.option("-o", "--out", default="model.onnx", help="ONNX file to write.")
@click.option(
    "--verify/--no-verify", default=True, help="Prove parity with PyTorch at batch 1, 16, 100."
)
@click.option("--weights", default="auto", help="auto (the card's choice), ema or model.")
@friendly_errors
def export(checkpoint, out, verify, weights) -> None:
    """Export a checkpoint (file or training folder) to a self-describing ONNX file."""
    from ddpm_deploy.export.onnx_export import export_onnx

    cases = export_onnx(checkpoint, out, verify=verify, weights=weights)
    for case in cases:
        click.echo(case)
    click.echo(f"wrote {out}" + ("" if verify else " (parity not checked: --no-verify)"))


@main.command()
@click.option(
    "--model",
    default="fashion_mnist",
    help="fashion_mnist or mnist (the models shipped in the package), an .onnx file (ort backend), "
    "or a training checkpoint (torch backend).",
)
@click.option("--backend", default="ort", help="ort (ONNX Runtime) or torch (PyTorch reference).")
@click.option("--sampler", default="ddpm", help="ddpm (ancestral, all T steps) or ddim.")
@click.option("--steps", default=None, type=int, help="DDIM steps (1..T). [default: T]")
@click.option(
    "--eta", default=0.0, type=float, help="DDIM noise scale: 0 deterministic, 1 DDPM-like."
)
@click.option("--variance", default="beta", help="DDPM sigma^2: beta (the article's) or posterior.")
@click.option(
    "--clip/--no-clip", default=True, help="Clip the predicted x0 to [-1, 1] in each step."
)
@click.option("-n", "n", default=16, type=int, help="How many images.")
@click.option("--seed", default=0, type=int)
@click.option("--out", default=".", help="Folder for samples.png, sampling.gif and run.json.")
@click.option("--provider", default="cpu", help="ONNX Runtime provider: cpu, cuda or tensorrt.")
@click.option(
    "--allow-cpu-fallback", is_flag=True, help="Run on the CPU if the GPU provider fails."
)
@click.option("--frames", default=100, type=int, help="GIF frames spread over the steps.")
@friendly_errors
def sample(**options) -> None:
    """Generate images from a model; writes samples.png, sampling.gif and run.json."""
    from ddpm_deploy.runtime.pipeline import SampleRequest, run_sampling

    record = run_sampling(SampleRequest(**options))
    click.echo(
        f"{record['n']} samples ({record['sampler']}, {record['steps']} steps, {record['backend']} on "
        f"{record['device']}, {record['seconds']:.1f} s) in {record['out']}: samples.png, sampling.gif"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
