"""`distill`: a student that samples in a few network calls, trained from a teacher checkpoint."""

from __future__ import annotations

import json

import click

from ddpm_deploy.cli.options import JSON, MAX_SEED, finite_float, friendly_errors


@click.command()
@click.argument("checkpoint")
@click.option(
    "-o", "--out", required=True, help="Folder for student.safetensors, card.json, history.csv."
)
@click.option("--steps", default=4, type=int, help="The student's network calls per image.")
@click.option(
    "--guidance",
    default=1.0,
    type=finite_float(),
    help="The teacher's guidance, baked into the student.",
)
@click.option("--sub-steps", default=25, type=int, help="Teacher DDIM calls per student step.")
@click.option("--trajectories", default=3000, type=int, help="Teacher trajectories to learn from.")
@click.option("--epochs", default=15, type=int, help="Passes over every (trajectory, step) pair.")
@click.option("--batch-size", default=128, type=int)
@click.option(
    "--lr",
    default=5e-5,
    type=finite_float(),
    help="Adam learning rate (the student starts from the teacher).",
)
@click.option(
    "--ema", default=0.999, type=finite_float(), help="EMA decay of the student's weights."
)
@click.option(
    "--seed",
    default=12345,
    type=click.IntRange(0, MAX_SEED),
    help="Noise and classes of the trajectories.",
)
@click.option("--device", default="auto", help="auto, cpu or cuda.")
@click.option("--threads", default=None, type=int, help="torch CPU threads. [default: torch's]")
@click.option("--force", is_flag=True, help="Replace a distillation of another teacher in --out.")
@JSON
@friendly_errors
def distill(checkpoint, out, as_json, **options) -> None:
    """Distil CHECKPOINT (a teacher) into a student that needs --steps network calls per image.

    The teacher's deterministic DDIM trajectories (--sub-steps calls per student step) are cached
    under OUT/trajectories, so a stopped run resumes; the student is saved after every epoch. Its
    card names its own sampler, which export, sample, evaluate and serve then follow. Needs the
    `export` extra (the teacher runs on ONNX Runtime on a CPU).
    """
    from ddpm_deploy.train.distill import DistillConfig
    from ddpm_deploy.train.distill import distill as run

    result = run(DistillConfig(teacher=checkpoint, out=out, **options))
    click.echo(json.dumps(result, indent=2) if as_json else f"student: {result['out']}")
