"""Fashion-MNIST and MNIST from local IDX files, numpy only.

Accepted layouts under a data root (first match wins):
  ROOT/FashionMNIST/raw/train-images-idx3-ubyte   (torchvision's layout)
  ROOT/train-images-idx3-ubyte[.gz]               (a plain folder, e.g. Debian's
                                                   /usr/share/datasets/fashion-mnist)
Files may be gzipped or not. Every file's magic number and length are checked.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddpm_deploy.card import CLASSES, canonical_dataset
from ddpm_deploy.errors import UserError

DATA_ENV = "DDPM_DEPLOY_DATA"
TORCHVISION_DIR = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST"}
SYSTEM_DIRS = {"fashion_mnist": ["/usr/share/datasets/fashion-mnist"], "mnist": []}
FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def default_root() -> Path:
    return Path(os.environ.get(DATA_ENV, "data"))


@dataclass
class Split:
    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray  # uint8 [N]
    dataset: str
    source: Path


def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Parse one IDX file (big-endian header, unsigned bytes), checking magic and length."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read {path} ({e}); the file is corrupt: fetch it again") from None
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else -1
    if magic != 0x0800 + expected_ndim:
        raise UserError(
            f"{path} is not an IDX file of {expected_ndim} dimension(s) (magic number {magic:#x}, "
            f"expected {0x0800 + expected_ndim:#x}); the file is corrupt or misnamed: fetch it again"
        )
    header = 4 + 4 * expected_ndim
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise UserError(
            f"{path} is truncated or padded: {len(data)} bytes, its header promises {expected}; "
            "fetch the file again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _candidate_dirs(dataset: str, root: Path) -> list[Path]:
    tv = TORCHVISION_DIR[dataset]
    dirs = [root / tv / "raw", root / tv, root]
    return dirs + [Path(p) for p in SYSTEM_DIRS[dataset]]


def _find(dataset: str, root: Path, name: str) -> Path | None:
    for d in _candidate_dirs(dataset, root):
        for candidate in (d / name, d / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def find_files(dataset: str, root: Path, train: bool) -> tuple[Path, Path] | None:
    found = [_find(dataset, root, name) for name in FILES[train]]
    return (found[0], found[1]) if all(found) else None


def not_found_message(dataset: str, root: Path) -> str:
    looked = ", ".join(str(d) for d in _candidate_dirs(dataset, root))
    return (
        f"no {dataset} IDX files found; looked in {looked}. Point --data-root (or ${DATA_ENV}) at a "
        f"folder holding them, or let `ddpm-deploy train` download them (needs internet)"
    )


def load_split(dataset: str, root: str | os.PathLike | None = None, train: bool = True) -> Split:
    dataset = canonical_dataset(dataset)
    if dataset not in TORCHVISION_DIR:
        raise UserError(
            f"--dataset {dataset}: this reads the IDX datasets only (fashion_mnist, mnist); a "
            "folder of images trains with `ddpm-deploy train --dataset folder`"
        )
    root = Path(root) if root is not None else default_root()
    files = find_files(dataset, root, train)
    if files is None:
        raise UserError(not_found_message(dataset, root))
    images, labels = read_idx(files[0], 3), read_idx(files[1], 1)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise UserError(
            f"{files[0]} holds {images.shape} images for {len(labels)} labels; expected N x 28 x 28 "
            "with one label each: fetch the files again"
        )
    check_labels(labels, len(CLASSES[dataset]), files[1], dataset)
    return Split(images=images, labels=labels, dataset=dataset, source=files[0].parent)


def check_labels(labels: np.ndarray, k: int, path: Path, dataset: str) -> None:
    """Every label a class of the dataset (0..k-1): one out of range would index past the
    classifier's logits or the model's class embedding, or train on a class no card names."""
    bad = np.flatnonzero(labels >= k)
    if bad.size:
        raise UserError(
            f"{path} holds label {int(labels[bad[0]])} (at index {int(bad[0])}; {bad.size} of "
            f"{labels.size} outside 0..{k - 1}), not a {dataset} class: the file is corrupt or "
            "another dataset's; fetch it again"
        )


def to_model_space(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] (IDX) or [N, C, H, W] (a folder) -> float32 [N, C, H, W] in [-1, 1]."""
    if images.ndim == 3:
        images = images[:, None]
    return (images.astype(np.float32) / 127.5) - 1.0
