"""Shared helpers for the tests (fixtures live in conftest.py): paths, the CLI runner, tiny data
and tiny random models."""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from ddpm_deploy.cli import main

REPO = Path(__file__).resolve().parents[1]
TRAINED = REPO / "models" / "fashion_mnist_reference" / "best.safetensors"


def run_cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *fragments: str) -> None:
    """A non-zero exit, no traceback, and one 'Error:' line holding every fragment."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def write_idx(folder: Path, n: int = 64, gz: bool = False, seed: int = 0) -> Path:
    """A tiny valid set of the four IDX files (random pixels), for tests that need no real data."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("t10k", n // 4)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        for name, arr, magic in (("images-idx3", images, 0x803), ("labels-idx1", labels, 0x801)):
            header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
            data = header + arr.tobytes()
            path = folder / f"{split}-{name}-ubyte"
            if gz:
                path = path.with_name(path.name + ".gz")
                data = gzip.compress(data)
            path.write_bytes(data)
    return folder


def tiny_resunet(channels: int, size: int, num_classes: int, seed: int = 0):
    """A tiny random class-conditional ResUNet of C x S x S images (base 8, 4 groups), its
    zero-initialised layers perturbed so that eps depends on x, t and y."""
    import torch
    from ddpm_deploy.train.resunet import ResUNet, ResUNetConfig

    torch.manual_seed(seed)
    cfg = ResUNetConfig(
        base=8, groups=4, channels=channels, image_size=size, num_classes=num_classes
    )
    model = ResUNet(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0.0, 0.05)
    return model.eval()


def tiny_shaped_model(folder: Path, channels: int, size: int, dataset: str, classes: list[str]):
    """``tiny_resunet`` saved as a checkpoint and exported to ONNX with parity, in ``folder``:
    (checkpoint, onnx, parity cases)."""
    from ddpm_deploy.export.onnx_export import export_onnx
    from ddpm_deploy.train.checkpoint import save_checkpoint

    from ddpm_deploy.card import make_card
    from ddpm_deploy.schedule import Schedule

    model = tiny_resunet(channels, size, len(classes))
    card = make_card(
        arch=model.config.to_dict(), schedule=Schedule(), dataset=dataset, classes=classes
    )
    checkpoint = folder / f"tiny{channels}x{size}.safetensors"
    save_checkpoint(checkpoint, card, model.state_dict())
    onnx = checkpoint.with_suffix(".onnx")
    return checkpoint, onnx, export_onnx(checkpoint, onnx)


def count_trainable(model) -> int:
    """Trainable parameters of a torch module (the reference UNet's count is pinned in a test)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class Fp16Error:
    """|fp16 - fp32| of the noise predictions over every case (the fp16 tests' statistics)."""

    median: float
    p99: float
    max: float
    finite: bool
    cases: int

    def __str__(self) -> str:
        return (
            f"fp16 vs fp32 noise prediction over {self.cases} cases: median {self.median:.2e}, "
            f"p99 {self.p99:.2e}, max {self.max:.2e}, all finite: {self.finite}"
        )


def fp16_error(fp32, fp16, batch: int = 2, timesteps=None, seed: int = 0) -> Fp16Error:
    """Run both models with onnx's reference evaluator (exact op semantics, no fused kernels)."""
    import json

    import onnx
    from onnx.reference import ReferenceEvaluator

    from ddpm_deploy.card import CARD_KEY, image_shape, num_classes

    ref32, ref16 = ReferenceEvaluator(str(fp32)), ReferenceEvaluator(str(fp16))
    props = onnx.load(str(fp32), load_external_data=False).metadata_props
    card = json.loads({p.key: p.value for p in props}[CARD_KEY])
    # class-conditional: random labels 0..K, the null label K included
    k = num_classes(card) if "y" in ref32.input_names else 0
    timesteps = [0, 1, 10, 100, 250, 500, 750, 900, 999] if timesteps is None else timesteps
    rng = np.random.default_rng(seed)
    diffs, finite = [], True
    for t in timesteps:
        x = rng.standard_normal((batch, *image_shape(card)), dtype=np.float32)
        feed = {"x": x, "t": np.full(batch, t, dtype=np.int64)}
        if k:
            feed["y"] = rng.integers(0, k + 1, batch, dtype=np.int64)
        # onnx.reference's Sigmoid evaluates both of its np.where branches; in fp16 the unused one
        # overflows (inf, inf/inf). The selected values are exact; finiteness is checked below.
        with np.errstate(over="ignore", invalid="ignore"):
            a, b = ref32.run(None, feed)[0], ref16.run(None, feed)[0]
        finite &= bool(np.isfinite(b).all())
        diffs.append(np.abs(a.astype(np.float64) - b.astype(np.float64)).ravel())
    d = np.concatenate(diffs)
    return Fp16Error(
        float(np.median(d)), float(np.percentile(d, 99)), float(d.max()), finite, len(timesteps)
    )


def perturbed_resunet(num_classes: int = 10, base: int = 16, seed: int = 2):
    """A small random ResUNet whose zero-initialised layers are perturbed, so that its output
    depends on x, t and y (a fresh one outputs exactly 0)."""
    import torch
    from ddpm_deploy.train.resunet import ResUNet, ResUNetConfig

    torch.manual_seed(seed)
    model = ResUNet(ResUNetConfig(base=base, num_classes=num_classes))
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0.0, 0.05)
    return model.eval()


TINY_UNET_SHAPE = (1, 28, 28)


def tiny_unet(num_class_embeds: int | None = None, seed: int = 0):
    """A tiny random diffusers UNet2DModel of TINY_UNET_SHAPE (1x28x28; needs diffusers)."""
    import torch
    from diffusers import UNet2DModel

    channels, size, _ = TINY_UNET_SHAPE
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=size, in_channels=channels, out_channels=channels,
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, attention_head_dim=4,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), num_class_embeds=num_class_embeds,
    )  # fmt: skip


def edited(good: Path, tmp_path: Path, config: str, **changes) -> Path:
    """A copy of the diffusers folder ``good`` with ``changes`` in its ``config`` (a JSON file)."""
    folder = tmp_path / "folder"
    shutil.copytree(good, folder)
    path = folder / config
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return folder
