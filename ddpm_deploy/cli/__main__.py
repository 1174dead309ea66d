"""`python -m ddpm_deploy.cli` (what torchrun runs: `torchrun ... -m ddpm_deploy.cli train`)."""

from ddpm_deploy.cli import main

main(prog_name="ddpm-deploy")
