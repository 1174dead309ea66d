"""A run's per-epoch history (loss, steps, seconds), its best epoch, and loss.csv and loss.png."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ddpm_deploy.files import atomic_path, write_text_atomic

FIELDS = ["epoch", "loss", "steps", "seconds"]


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)  # one dict of FIELDS per epoch done
    best_loss: float = float("inf")
    best_epoch: int = 0  # 0: no epoch yet

    @classmethod
    def of(cls, epochs: list[dict]) -> History:
        history = cls()
        for entry in epochs:
            history.add(entry)
        return history

    def add(self, entry: dict) -> bool:
        """Record one epoch; True when its loss is the lowest so far."""
        self.epochs.append(entry)
        if entry["loss"] < self.best_loss:
            self.best_loss, self.best_epoch = entry["loss"], entry["epoch"]
            return True
        return False

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def steps(self) -> int:
        """Optimiser steps taken over every epoch recorded."""
        return sum(h["steps"] for h in self.epochs)

    def write(self, out: Path) -> None:
        """loss.csv and loss.png in ``out``, each written atomically."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(self.epochs)
        write_text_atomic(out / "loss.csv", buf.getvalue())
        plot_loss(self.epochs, out / "loss.png")


def plot_loss(history: list[dict], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot([h["epoch"] for h in history], [h["loss"] for h in history], marker="o")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("training MSE (noise)")
    ax.set_title("DDPM training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
