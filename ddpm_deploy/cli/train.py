"""`train`, `train-classifier` and `bench-train`: the commands that need the train extra (torch)."""

from __future__ import annotations

import json

import click

from ddpm_deploy.cli.options import (
    DATA_ROOT,
    DATASET,
    MAX_SEED,
    finite_float,
    folder_options,
    friendly_errors,
    typed_options,
)


@click.command()
@DATASET
@DATA_ROOT
@folder_options
@click.option(
    "--out", default="runs/fashion_mnist", help="Folder for checkpoints, loss.csv, loss.png."
)
@click.option(
    "--arch",
    default="resunet",
    help="resunet (residual UNet, the shipped models) or reference (the seed article's UNet).",
)
@click.option(
    "--cond",
    is_flag=True,
    help="Class-conditional with a null label, for classifier-free guidance (resunet only).",
)
@click.option(
    "--cond-drop",
    default=0.1,
    type=finite_float(),
    help="With --cond: share of labels trained as null.",
)
@click.option("--base", default=None, type=int, help="resunet base width. [default: 32]")
@click.option("--dropout", default=None, type=finite_float(), help="resunet dropout. [default: 0]")
@click.option(
    "--epochs", default=20, type=int, help="Epochs to train (with --resume: the new total)."
)
@click.option(
    "--batch-size",
    default=128,
    type=int,
    help="Images per step (the global batch with --distributed).",
)
@click.option("--lr", default=1e-3, type=finite_float(), help="Adam learning rate.")
@click.option("--warmup", default=0, type=int, help="Steps of linear learning-rate warm-up.")
@click.option(
    "--seed",
    default=0,
    type=click.IntRange(0, MAX_SEED),
    help="Fixes every random number of the run.",
)
@click.option(
    "--ema",
    default=None,
    type=finite_float(),
    help="EMA decay of the weights (e.g. 0.999). [default: off]",
)
@click.option(
    "--ema-warmup/--no-ema-warmup",
    default=True,
    help="EMA decay min(--ema, (1+n)/(10+n)) at step n, so early averages forget the init.",
)
@click.option("--threads", default=None, type=int, help="torch CPU threads. [default: torch's]")
@click.option("--schedule", default="linear", help="Noise schedule: linear or cosine.")
@click.option("--device", default="auto", help="auto, cpu or cuda.")
@click.option("--limit", default=None, type=int, help="Train on the first N images only.")
@click.option(
    "--download/--no-download", default=True, help="Download the dataset if it is missing."
)
@click.option(
    "--distributed",
    is_flag=True,
    help="DistributedDataParallel under torchrun (gloo on CPU, nccl on GPU); --batch-size is global.",
)
@click.option(
    "--resume",
    "resume_dir",
    default=None,
    help="Continue the run in this folder from its last.safetensors; its settings are kept, "
    "only --epochs, --device and --data-root apply.",
)
@friendly_errors
def train(resume_dir, **options) -> None:
    """Train a DDPM noise predictor on Fashion-MNIST, MNIST or a folder of images.

    Writes best.safetensors (lowest epoch loss), last.safetensors (resumable), card.json,
    loss.csv and loss.png to --out.
    """
    from ddpm_deploy.train.loop import train_from_options

    out = train_from_options(options, resume_dir, typed=typed_options(options))
    click.echo(
        f"checkpoints in {out}: best.safetensors, last.safetensors; loss curve in {out / 'loss.png'}"
    )


@click.command("train-classifier")
@click.option(
    "--dataset",
    default="fashion_mnist",
    type=click.Choice(["fashion_mnist", "fashion", "mnist"]),
    help="The IDX dataset whose samples `evaluate` judges (fashion: fashion_mnist).",
)
@DATA_ROOT
@click.option("-o", "--out", required=True, help="ONNX file to write, e.g. mnist_classifier.onnx.")
@click.option("--epochs", default=8, type=int, help="Epochs to train.")
@click.option("--batch-size", default=128, type=int, help="Images per step.")
@click.option(
    "--lr", default=1e-3, type=finite_float(), help="Peak learning rate (one-cycle schedule)."
)
@click.option(
    "--seed",
    default=0,
    type=click.IntRange(0, MAX_SEED),
    help="Fixes every random number of the run.",
)
@click.option("--limit", default=None, type=int, help="Train on the first N images only.")
@click.option("--device", default="auto", help="auto, cpu or cuda.")
@friendly_errors
def train_classifier(out, **options) -> None:
    """Train the small CNN that `evaluate` measures samples with, and export it to ONNX.

    Reports its accuracy on the test split, which is stored in the ONNX file's metadata.
    """
    from ddpm_deploy.export.classifier_export import train_and_export
    from ddpm_deploy.train.classifier import ClassifierConfig

    cfg = ClassifierConfig(**options)
    card, parity = train_and_export(cfg, out)
    click.echo(
        f"test accuracy {card['test_accuracy']:.2%} on {cfg.dataset}; ONNX Runtime vs PyTorch on "
        f"1000 test images: max |diff| {max(parity['features_max_abs'], parity['logits_max_abs']):.1e}"
    )
    click.echo(f"wrote {out}")


@click.command("bench-train")
@DATASET
@DATA_ROOT
@click.option("--batch-size", default=128, type=click.IntRange(1), help="Images per training step.")
@click.option("--steps", default=30, type=click.IntRange(1), help="Timed training steps per round.")
@click.option(
    "--rounds", default=2, type=click.IntRange(1), help="Rounds; the two loops alternate."
)
@friendly_errors
def bench_train(dataset, data_root, batch_size, steps, rounds) -> None:
    """Training images/s: this project's loop vs the seed's DataLoader loop."""
    from ddpm_deploy.train.throughput import compare

    result = compare(dataset, data_root, batch_size, steps, rounds)
    click.echo(json.dumps(result, indent=2))
