"""Serving on Triton Inference Server (docs/SERVING.md): `ddpm-deploy serve` and `triton-repo`."""
