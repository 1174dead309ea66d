"""A small CNN classifier per dataset: its penultimate features are where `evaluate` measures FD.

Inception features fit 28x28 grayscale poorly and its weights cannot be fetched offline, so quality is
measured in the feature space of a classifier trained on the same dataset (issue 5). The classifier
is trained here, exported to ONNX with both outputs, and run by the torch-free runtime.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ddpm_deploy.card import CLASSES, canonical_dataset
from ddpm_deploy.card_schema import CLASSIFIER_FORMAT
from ddpm_deploy.datasets import default_root, load_split, to_model_space
from ddpm_deploy.device import pick_device
from ddpm_deploy.errors import UserError, require_positive

FEATURES = 128  # penultimate width: the FD feature dimension (evaluate needs n > FEATURES)


class SmallCNN(nn.Module):
    """Two conv blocks (32, 64 channels) and a 128-wide hidden layer; returns (features, logits)."""

    def __init__(self, classes: int = 10, features: int = FEATURES):
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]

        self.body = nn.Sequential(
            *block(1, 32),
            *block(32, 64),
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(64 * 7 * 7, features),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(features, classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        return f, self.head(f)


@dataclass
class ClassifierConfig:
    dataset: str = "fashion_mnist"
    data_root: str | None = None
    epochs: int = 8
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    limit: int | None = None  # first N training images only (tests)
    device: str = "auto"

    def validate(self) -> None:
        self.dataset = canonical_dataset(self.dataset)
        if self.dataset not in CLASSES:  # `evaluate` judges 1 x 28 x 28 samples of these only
            raise UserError(
                f"--dataset {self.dataset}: the classifier judges the IDX datasets only; "
                "pass fashion_mnist or mnist"
            )
        require_positive(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, limit=self.limit
        )


def _shift(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random translation by up to `pad` pixels (background -1), one offset per batch: cheap on CPU."""
    dy, dx = torch.randint(-pad, pad + 1, (2,), generator=gen).tolist()
    padded = nn.functional.pad(x, (pad, pad, pad, pad), value=-1.0)
    h, w = x.shape[-2:]
    return padded[:, :, pad + dy : pad + dy + h, pad + dx : pad + dx + w]


@torch.inference_mode()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    hits = sum(
        int((model(x)[1].argmax(1) == y).sum())
        for x, y in zip(images.split(1000), labels.split(1000), strict=True)
    )
    return hits / len(labels)


def train_classifier(cfg: ClassifierConfig) -> tuple[SmallCNN, dict]:
    """Train on the training split, measure on the test split; returns the model and its card."""
    cfg.validate()
    root = Path(cfg.data_root) if cfg.data_root is not None else default_root()
    train_split = load_split(cfg.dataset, root, train=True)
    test_split = load_split(cfg.dataset, root, train=False)
    device = pick_device(cfg.device)
    n = cfg.limit or len(train_split.images)
    x = torch.from_numpy(to_model_space(train_split.images[:n])).to(device)
    y = torch.from_numpy(train_split.labels[:n].astype(np.int64)).to(device)

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = SmallCNN(classes=len(CLASSES[cfg.dataset])).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * -(-n // cfg.batch_size)
    )
    t0 = time.perf_counter()
    for _ in tqdm(range(cfg.epochs), desc="classifier epochs"):
        model.train()
        for idx in torch.randperm(n, generator=gen).to(device).split(cfg.batch_size):
            loss = nn.functional.cross_entropy(model(_shift(x[idx], gen))[1], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - t0
    test_x = torch.from_numpy(to_model_space(test_split.images)).to(device)
    test_y = torch.from_numpy(test_split.labels.astype(np.int64)).to(device)
    card = {
        "format": CLASSIFIER_FORMAT,
        "dataset": cfg.dataset,
        "classes": CLASSES[cfg.dataset],
        "feature_dim": FEATURES,
        "input": {"shape": list(test_x.shape[1:]), "range": [-1.0, 1.0]},
        "test_accuracy": round(accuracy(model, test_x, test_y), 5),
        "training": {
            **{k: v for k, v in asdict(cfg).items() if k != "data_root"},
            "images": n,
            "seconds": round(seconds, 1),
            "torch": torch.__version__,
            "device": str(device),
        },
    }
    return model.eval().cpu(), card
