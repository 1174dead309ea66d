"""The real images a model is measured against, and the features its judges compare.

- Fashion-MNIST and MNIST: the training split (up to ``limit`` images) and the test split.
- A folder dataset (`train --dataset folder`): the folder --data-root names, read the way the card records
  (ddpm_deploy/image_folder.py) and checked against the card's hash, then split in two halves by a
  fixed permutation: one half plays "training", the other "test". A folder has no test split of its
  own; the model saw both halves, so its floors are a lower bound (docs/QUALITY.md).

Without a domain classifier (a folder dataset) precision and recall use a pixel PCA instead of
classifier features: fitted on the "training" half, so it owes nothing to the samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ddpm_deploy.runtime.judges import pixel_pca

from ddpm_deploy.datasets import load_split
from ddpm_deploy.errors import UserError
from ddpm_deploy.image_folder import read_folder, spec_from_info

SPLIT_SEED = 0


@dataclass
class RealImages:
    train: np.ndarray  # uint8 [N, C, H, W]
    test: np.ndarray  # uint8 [M, C, H, W]
    test_labels: np.ndarray  # int64 [M]; all 0 for an unlabelled folder


def real_images(card: dict, data_root: str | None, limit: int) -> RealImages:
    """The training and test images of the card's dataset (a folder dataset's: ``data_root``)."""
    if card["dataset"] != "folder":
        test = load_split(card["dataset"], data_root, train=False)
        train = load_split(card["dataset"], data_root, train=True).images[:limit]
        return RealImages(train[:, None], test.images[:, None], test.labels.astype(np.int64))
    read = _checked_folder(card, data_root)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(read.images))
    half = len(order) // 2
    train, test = order[:half][:limit], order[half:]
    return RealImages(read.images[train], read.images[test], read.labels[test])


def training_set(card: dict, data_root: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Every training image of the card's dataset (uint8 [N, C, H, W]) with its labels (int64):
    the IDX training split, or the whole folder the card records (hash-checked)."""
    if card["dataset"] != "folder":
        split = load_split(card["dataset"], data_root, train=True)
        return split.images[:, None], split.labels.astype(np.int64)
    read = _checked_folder(card, data_root)
    return read.images, read.labels


def _checked_folder(card: dict, data_root: str | None):
    """The folder the user names (``--data-root``), read as the card's "data" section says and
    checked against its hash. The folder the card names is never read on its own: a model file
    is input, and its paths are followed only where the user points."""
    info = card.get("data")
    if not info:
        raise UserError("the model card says dataset 'folder' but records no 'data' section")
    if data_root is None:
        raise UserError(
            f"this model was trained on a folder of images (its card says {info['root'][:200]!r}); "
            "pass --data-root DIR naming that folder (a path in a model file is never followed)"
        )
    read = read_folder(spec_from_info(info, data_root))
    if read.info["sha256"] != info["sha256"]:
        raise UserError(
            f"{read.info['root']} holds other images than the model was trained on ({read.info['files']} "
            f"files, sha256 {read.info['sha256'][:12]}; the card: {info['files']}, "
            f"{info['sha256'][:12]}); point --data-root at the training folder"
        )
    return read


class PixelFeatures:
    """Features for precision/recall where no domain classifier applies: a pixel PCA's coordinates."""

    def __init__(self, train_u8: np.ndarray, k: int = 64):
        self.mean, self.axes = pixel_pca(train_u8, k)

    def __call__(self, images_u8: np.ndarray) -> np.ndarray:
        flat = images_u8.reshape(len(images_u8), -1).astype(np.float64) / 255.0
        return ((flat - self.mean) @ self.axes.T).astype(np.float32)
