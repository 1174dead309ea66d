"""Training throughput: this project's loop against the seed article's DataLoader loop.

Both run the same model, optimiser, batch size and `train_step`; only the data path differs: the
seed feeds a torchvision dataset through a DataLoader with per-item ToTensor and Lambda transforms,
ddpm-deploy slices one in-memory tensor. Rounds alternate so a noisy machine slows both alike.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from ddpm_deploy.train.data import load_training_images
from ddpm_deploy.train.diffusion import ForwardProcess
from ddpm_deploy.train.reference_unet import ReferenceUNet
from ddpm_deploy.train.step import train_step

from ddpm_deploy.card import canonical_dataset
from ddpm_deploy.datasets import TORCHVISION_DIR, default_root
from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule


def _setup(seed: int):
    torch.manual_seed(seed)
    model = ReferenceUNet()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), torch.Generator().manual_seed(seed)


def _seed_batches(dataset: str, root: Path, batch: int):
    import torchvision
    from torchvision import transforms

    cls = {"fashion_mnist": torchvision.datasets.FashionMNIST, "mnist": torchvision.datasets.MNIST}
    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Lambda(lambda x: (x - 0.5) * 2)]
    )
    try:
        data = cls[dataset](str(root), train=True, download=False, transform=transform)
    except RuntimeError as e:
        raise UserError(
            f"torchvision cannot read {TORCHVISION_DIR[dataset]} under {root}: {e}"
        ) from None
    return torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True)


def _run(batches, steps: int, seed: int) -> float:
    """Images per second over `steps` training steps drawn from the iterable `batches`."""
    model, opt, gen = _setup(seed)
    forward = ForwardProcess(Schedule())
    it = iter(batches)
    train_step(model, opt, forward, next(it), gen)  # warm-up, untimed
    t0, images = time.perf_counter(), 0
    for _ in range(steps):
        x0 = next(it)
        train_step(model, opt, forward, x0, gen)
        images += len(x0)
    return images / (time.perf_counter() - t0)


def compare(
    dataset: str = "fashion_mnist",
    data_root: str | None = None,
    batch: int = 128,
    steps: int = 30,
    rounds: int = 2,
) -> dict:
    dataset = canonical_dataset(dataset)
    root = Path(data_root) if data_root else default_root()
    ours_data = load_training_images(dataset, root, allow_download=False)
    seed_loader = _seed_batches(dataset, root, batch)
    results: dict[str, list[float]] = {"ddpm-deploy": [], "seed DataLoader": []}
    for r in range(rounds):
        order = torch.randperm(len(ours_data), generator=torch.Generator().manual_seed(r))
        results["ddpm-deploy"].append(_run((ours_data[i] for i in order.split(batch)), steps, r))
        results["seed DataLoader"].append(_run((x for x, _ in seed_loader), steps, r))
    best = {k: max(v) for k, v in results.items()}
    return {
        "images_per_s": best,
        "rounds": results,
        "ratio": best["ddpm-deploy"] / best["seed DataLoader"],
        "batch": batch,
        "steps": steps,
        "torch_threads": torch.get_num_threads(),
    }
