from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import REPO, TRAINED, perturbed_resunet, tiny_shaped_model

# CI sets DDPM_DEPLOY_DATA; a developer checkout beside ../shared finds the data there.
DATA_ROOT = Path(os.environ.get("DDPM_DEPLOY_DATA", REPO.parent / "shared" / "datasets"))


def _has(dataset_dir: str) -> bool:
    return (DATA_ROOT / dataset_dir / "raw" / "train-images-idx3-ubyte").is_file()


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not _has("FashionMNIST"):
        pytest.skip(
            f"Fashion-MNIST not found under {DATA_ROOT}; set DDPM_DEPLOY_DATA to a torchvision root"
        )
    return DATA_ROOT


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    if not _has("MNIST"):
        pytest.skip(
            f"MNIST not found under {DATA_ROOT}; set DDPM_DEPLOY_DATA to a torchvision root"
        )
    return DATA_ROOT


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised reference UNet saved as a ddpm-deploy checkpoint."""
    import torch
    from ddpm_deploy.train.checkpoint import save_checkpoint
    from ddpm_deploy.train.reference_unet import ReferenceUNet

    from ddpm_deploy.card import make_card
    from ddpm_deploy.schedule import Schedule

    torch.manual_seed(1)
    model = ReferenceUNet()
    card = make_card(arch=model.config.to_dict(), schedule=Schedule(), dataset="fashion_mnist")
    path = tmp_path_factory.mktemp("random") / "random.safetensors"
    save_checkpoint(path, card, model.state_dict())
    return path


@pytest.fixture(scope="session")
def random_cond_checkpoint(tmp_path_factory) -> Path:
    """A random class-conditional ResUNet saved as a ddpm-deploy checkpoint."""
    from ddpm_deploy.train.checkpoint import save_checkpoint

    from ddpm_deploy.card import make_card
    from ddpm_deploy.schedule import Schedule

    model = perturbed_resunet()
    card = make_card(arch=model.config.to_dict(), schedule=Schedule(), dataset="fashion_mnist")
    path = tmp_path_factory.mktemp("random_cond") / "cond.safetensors"
    save_checkpoint(path, card, model.state_dict())
    return path


@pytest.fixture(scope="session")
def random_cond_onnx(random_cond_checkpoint, tmp_path_factory) -> Path:
    from ddpm_deploy.export.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("onnx_cond") / "cond.onnx"
    export_onnx(random_cond_checkpoint, out, verify=False)
    return out


@pytest.fixture(scope="session")
def trained_checkpoint() -> Path:
    if not TRAINED.is_file():
        pytest.skip(f"no trained checkpoint at {TRAINED}")
    return TRAINED


@pytest.fixture(scope="session")
def random_onnx(random_checkpoint, tmp_path_factory) -> Path:
    from ddpm_deploy.export.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "random.onnx"
    export_onnx(random_checkpoint, out, verify=False)
    return out


@pytest.fixture(scope="session")
def trained_onnx(trained_checkpoint, tmp_path_factory) -> Path:
    from ddpm_deploy.export.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "trained.onnx"
    export_onnx(trained_checkpoint, out, verify=False)
    return out


# (C, S, dataset, classes) of the tiny random models that every image shape is tested with
SHAPED = {
    "rgb32": (3, 32, "folder", ["red", "green", "blue"]),
    "grey28": (1, 28, "mnist", [str(i) for i in range(10)]),
}


@pytest.fixture(scope="session", params=sorted(SHAPED))
def shaped_model(request, tmp_path_factory):
    """A tiny random class-conditional resunet per image shape (3x32x32 and 1x28x28), saved and
    exported with parity: a namespace of checkpoint, onnx, shape (C, H, W), cases, classes."""
    from types import SimpleNamespace

    c, s, dataset, classes = SHAPED[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    checkpoint, onnx, cases = tiny_shaped_model(folder, c, s, dataset, classes)
    return SimpleNamespace(
        checkpoint=checkpoint, onnx=onnx, shape=(c, s, s), cases=cases, classes=classes
    )
