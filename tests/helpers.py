"""Shared helpers for the CLI tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from ddpm_deploy.cli import main


def run_cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *fragments: str) -> None:
    """A non-zero exit, no traceback, and one 'Error:' line holding every fragment."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def write_idx(folder: Path, n: int = 64, gz: bool = False, seed: int = 0) -> Path:
    """A tiny valid set of the four IDX files (random pixels), for tests that need no real data."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("t10k", n // 4)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        for name, arr, magic in (("images-idx3", images, 0x803), ("labels-idx1", labels, 0x801)):
            header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
            data = header + arr.tobytes()
            path = folder / f"{split}-{name}-ubyte"
            if gz:
                path = path.with_name(path.name + ".gz")
                data = gzip.compress(data)
            path.write_bytes(data)
    return folder
