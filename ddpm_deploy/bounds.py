"""The upper bounds, one table: what the largest real model of each kind needs, and no more.

The card's schema (ddpm_deploy/card_schema.py), the schedule and the options of the commands read
their limits from here, so a model file and a command line are held to the same numbers.
"""

from __future__ import annotations

MAX_T = 100_000  # diffusion steps of a schedule (1000 in every published DDPM)
MAX_SIDE = 4096  # image height and width (train --image-size's bound)
MAX_CLASSES = 10_000  # class labels of a class-conditional model
MAX_WIDTH = 2048  # channels of one UNet level (resunet base x mult, a diffusers block)
MAX_RANK = 4096  # principal directions per class (learn-sampler --rank's bound)
MAX_GUIDANCE = 100.0  # the classifier-free guidance scale every command and the page accept
MAX_TEXT = 4096  # a name, a path, a hash
MAX_B64 = 2**31  # base64 characters of one statistics array
MAX_ITEMS = 1_000_000  # entries of a free list (a distillation's history)
# images of one sampling run (-n, and -n x K with --class all): each is kept (uint8, and float32
# with --save-float) while the network's memory stays bounded per chunk; 10^6 Fashion-MNIST
# images are 784 MB
MAX_IMAGES = 1_000_000
# quantize's calibration rows (batches x batch), all kept for the calibrator: 128x the default
# 16 x 32; 205 MB of 1 x 28 x 28 rows, 3.2 GB of 3 x 64 x 64 ones
MAX_CALIBRATION_ROWS = 65_536

# The upper bound of every numeric option of every command, applied at parse time from this one
# table (ddpm_deploy/cli/options.py apply_bounds; tests/cli/test_option_fuzz.py drives each past
# it). By option name; (command, name) where one name means different things. Each is what a real
# run on the largest model above needs, so no command line asks for terabytes.
OPTION_BOUNDS: dict[str | tuple[str, str], float] = {
    "analytic": 1000,  # analytic steps (a grid is at most T points; sampling grids are far shorter)
    "base": 512,  # the first UNet level's channels (x mult <= MAX_WIDTH)
    "batch": 10_000,  # images per chunk of `sample` and `evaluate` (x2 rows with guidance)
    ("serve", "batch"): 4096,  # serve checks 1..4096 itself (serve/server.py)
    "batch_size": 4096,
    "calibration_batch": 4096,
    "calibration_batches": 10_000,
    "calls": 50,
    "channels": 3,
    "cond_drop": 1.0,
    "dropout": 1.0,
    "ema": 1.0,
    "epochs": 100_000,
    "eta": 1.0,  # DDIM's eta: 0 deterministic, 1 DDPM-like; beyond 1 its sigma has no meaning
    "evals": 100_000,
    "exit_timeout_s": 3600,
    "frames": 1000,
    "gate_n": 100_000,
    "grpc_port": 65_535,
    "http_port": 65_535,
    "metrics_port": 65_535,
    "guidance": MAX_GUIDANCE,
    "held_out": 10_000,
    "image_size": 1024,  # train's images (28, 32, 64 in every shipped model)
    "images": 10_000_000,  # distill's trajectories, learn-sampler's teacher images
    ("learn-sampler", "images"): 4096,
    "instances": 64,
    "limit": 100_000_000,
    "lr": 1.0,
    "max_batch": 4096,
    "max_images": 4096,
    "min_batch": 4096,
    "opt_batch": 4096,
    "n": MAX_IMAGES,
    ("forward", "n"): 64,
    "queue_delay_us": 10_000_000,
    "rank": MAX_RANK,
    "rounds": 1000,
    "save_every": 1_000_000,
    "scale": 16,
    "seed": 2**63 - 1,
    "steps": MAX_T,  # sampler steps (a run checks them against the model's own T)
    ("bench", "steps"): 10_000,
    ("distill", "steps"): 1000,
    "sub_steps": 1000,
    "threads": 1024,
    "warmup": 10_000_000,
    "workspace_mb": 65_536,
}


def option_bound(command: str, name: str) -> float:
    """The upper bound of ``--name`` in ``command``; KeyError when the table lacks it."""
    return OPTION_BOUNDS.get((command, name), OPTION_BOUNDS[name])
