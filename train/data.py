"""Training data as one in-memory tensor (per-item PIL transforms are slow on small CPUs)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ddpm_deploy.card import canonical_dataset
from ddpm_deploy.datasets import (
    default_root,
    find_files,
    load_split,
    not_found_message,
    to_model_space,
)
from ddpm_deploy.errors import UserError


def download(dataset: str, root: Path) -> None:
    """Fetch the IDX files with torchvision into ROOT/<Name>/raw; one clear error if that fails."""
    import torchvision

    cls = {"fashion_mnist": torchvision.datasets.FashionMNIST, "mnist": torchvision.datasets.MNIST}[
        dataset
    ]
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as e:  # noqa: BLE001 - any network or disk failure gets the same one-line answer
        raise UserError(f"{not_found_message(dataset, root)}; the download failed: {e}") from None


def load_training_images(
    dataset: str,
    root: str | os.PathLike | None,
    limit: int | None = None,
    allow_download: bool = True,
) -> torch.Tensor:
    """float32 [N, 1, 28, 28] in [-1, 1]: the training split, or its first ``limit`` images."""
    return load_training_set(dataset, root, limit, allow_download)[0]


def load_training_set(
    dataset: str,
    root: str | os.PathLike | None,
    limit: int | None = None,
    allow_download: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images float32 [N, 1, 28, 28] in [-1, 1], labels int64 [N]) of the training split."""
    dataset = canonical_dataset(dataset)
    root = Path(root) if root is not None else default_root()
    if find_files(dataset, root, train=True) is None:
        if not allow_download:
            raise UserError(not_found_message(dataset, root))
        download(dataset, root)
    split = load_split(dataset, root, train=True)
    images, labels = split.images, split.labels
    if limit is not None:
        if limit <= 0:
            raise UserError(f"--limit must be positive, got {limit}")
        images, labels = images[:limit], labels[:limit]
    return torch.from_numpy(to_model_space(images)), torch.from_numpy(labels.astype("int64"))
