"""`import-diffusers` holds a diffusers folder's two configs to the project's bounds before any model
is built (issue 35, D3): a size edited into unet/config.json or scheduler_config.json is one
`Error:` line, never a traceback from an allocation of terabytes, and a config that asks for more
weights than its file holds is refused before anything is allocated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, assert_one_line_error, edited, run_cli

pytest.importorskip("diffusers")
SCHEDULER = "scheduler/scheduler_config.json"
UNET = "unet/config.json"


HOSTILE = [
    # 4 TB of betas (diffusers' torch.linspace), 16 TB of weights: refused, not attempted
    (
        SCHEDULER,
        {"num_train_timesteps": 10**12},
        "num_train_timesteps: 1000000000000 must be <= 100000",
    ),  # fmt: skip
    (UNET, {"block_out_channels": [10**6, 10**6]}, "1000000 must be <= 2048"),
    (UNET, {"layers_per_block": 10**9}, "layers_per_block: 1000000000 must be <= 16"),
    (UNET, {"num_class_embeds": 10**10}, "num_class_embeds: 10000000000 must be <= 10001"),
    (UNET, {"sample_size": [28, 10**9]}, "sample_size"),
    (UNET, {"downsample_padding": 1e300}, "downsample_padding"),
    (UNET, {"downsample_padding": 3}, "downsample_padding: 3 is not one of [0, 1]"),
    # what diffusers itself refuses while building: one line too
    (UNET, {"block_out_channels": [8]}, "block_out_channels"),
    (UNET, {"down_block_types": ["Bogus", "AttnDownBlock2D"]}, "Bogus"),
    (SCHEDULER, {"beta_schedule": "bogus"}, "beta_schedule 'bogus'"),
    # in bounds, but its levels do not fit together (28 -> 14 -> 28 != 27)
    (UNET, {"sample_size": 27}, "own forward fails on the UNet of"),
]


@pytest.mark.parametrize(("config", "changes", "fragment"), HOSTILE, ids=[h[2] for h in HOSTILE])
def test_hostile_sizes_are_one_line_before_any_model(good_folder, tmp_path, config, changes, fragment):  # fmt: skip
    folder = edited(good_folder, tmp_path, config, **changes)
    result = run_cli("import-diffusers", folder, "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, Path(config).name, fragment)
    assert not (tmp_path / "m.onnx").exists()


def test_the_bounds_are_the_cards(good_folder):
    """The unet config passes the same schema an imported card's arch.unet is held to."""
    from ddpm_deploy.card_checks import UNET_CONFIG_VALIDATOR, schema_errors

    cfg = json.loads((good_folder / UNET).read_text())
    assert list(schema_errors(cfg, UNET_CONFIG_VALIDATOR)) == []
    cfg["block_out_channels"] = [4096, 8]
    assert list(schema_errors(cfg, UNET_CONFIG_VALIDATOR)) == [
        "block_out_channels[0]: 4096 must be <= 2048"
    ]


# Runs import-diffusers under an address-space limit of 2 GiB more than the imports took: a config
# within the bounds that asks for ~6.6 GB of weights its small file does not hold is refused
# before it is built, never allocated (before the fix: a MemoryError traceback).
LIMITED = """
import resource, sys
from click.testing import CliRunner
import diffusers, torch
from ddpm_deploy.cli import main
with open("/proc/self/statm") as f:
    used = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + 2 * 2**30, resource.RLIM_INFINITY))
result = CliRunner().invoke(main, sys.argv[1:])
print(result.output)
print("exception:", repr(result.exception))
"""


def test_a_config_larger_than_its_weights_is_refused_unbuilt(good_folder, tmp_path):
    folder = edited(
        good_folder, tmp_path, UNET, block_out_channels=[2048, 2048], layers_per_block=2
    )
    run = subprocess.run(
        [sys.executable, "-c", LIMITED, "import-diffusers", str(folder), "-o", str(tmp_path / "m.onnx")],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert "Traceback" not in output and "MemoryError" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    assert "does not fit" in errors[0] and "size mismatch" in errors[0], errors[0]
    assert not (tmp_path / "m.onnx").exists()
