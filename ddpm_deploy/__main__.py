"""`python -m ddpm_deploy`: the same program as the `ddpm-deploy` console script."""

from ddpm_deploy.cli import main

main(prog_name="ddpm-deploy")
