"""Several processes under torchrun: joining the process group, each rank's share of a batch,
the loss averaged over ranks, and leaving. A single process (world 1) skips all of it."""

from __future__ import annotations

import os

import torch

from ddpm_deploy.errors import UserError


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); returns (rank, world)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise UserError(
            "--distributed runs under torchrun, e.g. `torchrun --nproc_per_node 2 -m ddpm_deploy.cli "
            "train --distributed ...`"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    torch.distributed.init_process_group(backend)
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def check_batch(batch_size: int, world: int) -> None:
    if batch_size % world:
        raise UserError(
            f"--batch-size {batch_size} (the global batch) must divide evenly over "
            f"{world} processes"
        )


def shard_of(batch: int, rank: int, world: int) -> slice | None:
    """This rank's rows of a global batch; the last, smaller batch splits unevenly (see README)."""
    if world == 1:
        return None
    rows = range(batch)[rank::world]
    return slice(rows.start, rows.stop, rows.step)


def mean_over_ranks(loss: torch.Tensor, world: int) -> torch.Tensor:
    if world == 1:
        return loss
    loss = loss.detach().clone()
    torch.distributed.all_reduce(loss)
    loss /= world
    return loss


def leave(world: int) -> None:
    if world > 1:
        torch.distributed.destroy_process_group()
