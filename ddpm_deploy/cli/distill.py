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
@click.option("--steps", default=2, type=int, help="The student's network calls per image.")
@click.option(
    "--analytic",
    default=3,
    type=int,
    help="Steps before the student's first call taken by the data's Gaussian statistics "
    "(read from --data-root; 0: none).",
)
@click.option("--data-root", default=None, help="Where the teacher's training data is.")
@click.option(
    "--rank", default=64, type=int, help="Principal directions per class (analytic steps)."
)
@click.option(
    "--guidance",
    default=1.0,
    type=finite_float(),
    help="The teacher's guidance, baked into the student.",
)
@click.option("--teacher-sampler", default="dpm++2m", help="The teacher's (deterministic) solver.")
@click.option("--sub-steps", default=10, type=int, help="Teacher calls per student step.")
@click.option(
    "--images", default=20_000, type=int, help="Fresh teacher trajectories to learn from, in all."
)
@click.option("--batch-size", default=32, type=int, help="Trajectories per update.")
@click.option(
    "--lr",
    default=5e-5,
    type=finite_float(),
    help="Adam learning rate (the student starts from the teacher); a tenth over the second half "
    "of --images.",
)
@click.option(
    "--ema",
    default=None,
    type=finite_float(),
    help="Also keep an EMA of the student's weights with this decay (`export --weights ema`). "
    "[default: none, as SFD]",
)
@click.option("--held-out", default=64, type=int, help="Fixed images measured at every save.")
@click.option(
    "--save-every", default=25, type=int, help="Batches between saves (and measurements)."
)
@click.option(
    "--seed",
    default=12345,
    type=click.IntRange(0, MAX_SEED),
    help="Noise and classes of the training trajectories (held-out ones use SEED + 1).",
)
@click.option("--device", default="auto", help="auto, cpu or cuda.")
@click.option("--threads", default=None, type=int, help="torch CPU threads. [default: torch's]")
@click.option(
    "--force", is_flag=True, help="Start over, replacing the run (of any teacher) in --out."
)
@JSON
@friendly_errors
def distill(checkpoint, out, as_json, **options) -> None:
    """Distil CHECKPOINT (a teacher) into a student that needs --steps network calls per image.

    SFD (Zhou et al. 2024): every update draws fresh noise; the Gaussian statistics take the first
    --analytic steps, the teacher's --teacher-sampler runs --sub-steps calls per student step from
    there, and the student learns each step from its own previous state. The run saves every
    --save-every batches and a rerun with the same settings resumes (a larger --images goes on
    training). The student's card names its own sampler, which export, sample, evaluate and serve
    follow. On a CPU the teacher runs on ONNX Runtime (the `export` extra).
    """
    from ddpm_deploy.train.distill import DistillConfig
    from ddpm_deploy.train.distill import distill as run

    result = run(DistillConfig(teacher=checkpoint, out=out, **options))
    click.echo(json.dumps(result, indent=2) if as_json else f"student: {result['out']}")
