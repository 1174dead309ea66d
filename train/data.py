"""Training data as one in-memory tensor (per-item PIL transforms are slow on small CPUs)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ddpm_deploy.card import CLASSES, canonical_dataset
from ddpm_deploy.datasets import (
    default_root,
    find_files,
    load_split,
    not_found_message,
    to_model_space,
)
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import missing_folders
from ddpm_deploy.image_folder import FolderSpec, read_folder


def download(dataset: str, root: Path) -> None:
    """Fetch the IDX files with torchvision into ROOT/<Name>/raw; one clear error if that fails."""
    import torchvision

    cls = {"fashion_mnist": torchvision.datasets.FashionMNIST, "mnist": torchvision.datasets.MNIST}[
        dataset
    ]
    made = missing_folders(Path(root) / cls.__name__ / "raw")  # []: the folders were there
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except BaseException as e:  # a network or disk failure, or Ctrl-C: the same clean-up
        if made:  # the folders this download made, with any partial file in them
            shutil.rmtree(made[0], ignore_errors=True)
        if not isinstance(e, Exception):
            raise
        why = " ".join(str(e).split())[:300]  # torchvision's message spans lines
        raise UserError(f"{not_found_message(dataset, root)}; the download failed: {why}") from None


@dataclass
class TrainingData:
    images: torch.Tensor  # float32 [N, C, S, S] in [-1, 1]
    labels: torch.Tensor  # int64 [N]
    classes: list[str]  # label names; [] for an unlabelled folder
    info: dict | None  # how a folder was read (the card's "data"); None for the IDX datasets

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))


def load_training_images(
    dataset: str,
    root: str | os.PathLike | None,
    limit: int | None = None,
    allow_download: bool = True,
) -> torch.Tensor:
    """float32 [N, 1, 28, 28] in [-1, 1]: an IDX dataset's training split, or its first ``limit``."""
    return load_training_data(dataset, root, limit, allow_download).images


def load_training_data(
    dataset: str,
    root: str | os.PathLike | None,
    limit: int | None = None,
    allow_download: bool = True,
    folder: FolderSpec | None = None,
) -> TrainingData:
    """The training images and labels: an IDX dataset's training split, or a folder of images
    (``folder`` says how to read it)."""
    dataset = canonical_dataset(dataset)
    if limit is not None and limit <= 0:
        raise UserError(f"--limit must be positive, got {limit}")
    if dataset == "folder":
        if folder is None:
            raise UserError("--dataset folder needs --data-root DIR, a folder of images")
        read = read_folder(folder)
        images, labels, classes, info = read.images, read.labels, read.classes, read.info
    else:
        root = Path(root) if root is not None else default_root()
        if find_files(dataset, root, train=True) is None:
            if not allow_download:
                raise UserError(not_found_message(dataset, root))
            download(dataset, root)
        split = load_split(dataset, root, train=True)
        images, labels, classes, info = split.images, split.labels, CLASSES[dataset], None
    images, labels = images[:limit], labels[:limit]
    return TrainingData(
        images=torch.from_numpy(to_model_space(images)),
        labels=torch.from_numpy(labels.astype("int64")),
        classes=list(classes),
        info=info,
    )
