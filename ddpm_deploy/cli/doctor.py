"""`doctor`: what this machine can run."""

from __future__ import annotations

import json

import click

from ddpm_deploy.cli.options import JSON


@click.command()
@JSON
def doctor(as_json) -> None:
    """Show what this machine can run."""
    from ddpm_deploy.hardware.doctor import collect, report

    info = collect()
    click.echo(json.dumps(info, indent=2) if as_json else report(info))
