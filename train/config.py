"""A training run's settings (TrainConfig) and the rules for resuming one: which settings a
resumed run keeps, which the command line may change, and which must match."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ddpm_deploy.train import checkpoint as ckpt
from ddpm_deploy.train.arch import card_name, make_config

from ddpm_deploy.card import MNIST_SHAPE, canonical_dataset
from ddpm_deploy.errors import UserError, require_positive
from ddpm_deploy.image_folder import FolderSpec, parse_background

# a resumed run must keep these
SAME_ON_RESUME = ("dataset", "ema", "arch", "cond", "image_size", "channels", "background")
TYPED_ON_RESUME = ("epochs", "device", "data_root", "threads")  # the command line may change these


@dataclass
class TrainConfig:
    dataset: str = "fashion_mnist"
    out: str = "runs/fashion_mnist"
    arch: str = "resunet"  # or "reference", the seed article's UNet
    cond: bool = False  # class-conditional with a null label (classifier-free guidance); resunet
    cond_drop: float = 0.1  # share of training labels replaced by the null label when cond
    base: int | None = None  # resunet base width (None: the architecture's default)
    dropout: float | None = None  # resunet dropout (None: the architecture's default)
    warmup: int = 0  # optimiser steps of linear learning-rate warm-up
    ema_warmup: bool = True  # EMA decay min(ema, (1+n)/(10+n)) at step n
    threads: int | None = None  # torch CPU threads (None: torch's default)
    data_root: str | None = None
    image_size: int | None = None  # --dataset folder: resize to S x S (None: the images' size)
    channels: int | None = None  # --dataset folder: 1 grey or 3 colour (None: 3)
    background: str = "white"  # --dataset folder: what transparent pixels are composited on
    resample: str = "lanczos"  # --dataset folder: Pillow's filter for resizing
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    ema: float | None = None  # EMA decay of the weights, e.g. 0.999; None: off
    schedule: str = "linear"
    device: str = "auto"
    limit: int | None = None  # train on the first N images only (quick runs, tests)
    download: bool = True
    distributed: bool = (
        False  # DistributedDataParallel under torchrun; batch_size is the global batch
    )

    def validate(self) -> None:
        self.dataset = canonical_dataset(self.dataset)
        require_positive(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise UserError(f"--ema must be a decay in (0, 1), e.g. 0.999; got {self.ema}")
        card_name(self.arch)  # one line naming the choices if --arch is unknown
        if self.cond and self.arch != "resunet":
            raise UserError("--cond needs --arch resunet; the reference UNet has no label input")
        if not 0.0 <= self.cond_drop < 1.0:
            raise UserError(f"--cond-drop must be in [0, 1), got {self.cond_drop}")
        if self.warmup < 0:
            raise UserError(f"--warmup must be >= 0 steps, got {self.warmup}")
        require_positive(threads=self.threads)
        if self.dataset != "folder" and (self.image_size is not None or self.channels is not None):
            raise UserError(
                f"--image-size and --channels apply to --dataset folder; {self.dataset} images "
                "are 1 x 28 x 28"
            )
        if self.dataset == "folder":
            self.folder_spec().check()

    def folder_spec(self) -> FolderSpec | None:
        """How to read --data-root for --dataset folder; None for the IDX datasets."""
        if self.dataset != "folder":
            return None
        if self.data_root is None:
            raise UserError("--dataset folder needs --data-root DIR, a folder of images")
        return FolderSpec(
            root=self.data_root,
            size=self.image_size,
            channels=self.channels or 3,
            background=parse_background(self.background),
            resample=self.resample,
        )

    def arch_config(self, num_classes: int, shape: tuple[int, int, int] = MNIST_SHAPE):
        """The architecture for images of ``shape`` (C, H, W) and ``num_classes`` labels."""
        if self.cond and num_classes < 2:
            raise UserError(
                f"--cond needs at least 2 classes; {self.data_root} has {num_classes} (put each "
                "class's images in its own sub-folder, or train without --cond)"
            )
        settings = {"base": self.base, "dropout": self.dropout}
        if self.cond:
            settings["num_classes"] = num_classes
        if tuple(shape) != MNIST_SHAPE:
            if self.arch != "resunet":
                raise UserError(
                    f"--arch {self.arch} takes 1 x 28 x 28 images only, these are "
                    f"{' x '.join(map(str, shape))}; use --arch resunet"
                )
            settings.update(channels=shape[0], image_size=shape[1])
        return make_config(self.arch, **settings)


def read_last(out: str | Path) -> tuple[Path, dict, dict]:
    """The resumable checkpoint of the run in ``out``: (path, tensors, metadata), or one line
    saying why there is none."""
    path = Path(out) / ckpt.LAST
    if not path.is_file():
        raise UserError(f"--resume: no {ckpt.LAST} in {out}; start a new run without --resume")
    tensors, meta = ckpt.read_checkpoint(path)
    if "optim_param_groups" not in meta or "config" not in meta:
        raise UserError(f"--resume: {path} holds no training state; start a new run")
    return path, tensors, meta


def saved_settings(meta: dict) -> dict:
    """The settings saved in a checkpoint's metadata. Runs saved before --arch existed trained the
    reference UNet with a plain EMA."""
    return {"arch": "reference", "cond": False, "ema_warmup": False, **json.loads(meta["config"])}


def saved_config(out: str | Path) -> TrainConfig:
    """The configuration a run in ``out`` was started with, read from its last checkpoint."""
    _, _, meta = read_last(out)
    return TrainConfig(**{**saved_settings(meta), "out": str(out)})


def check_same_run(path: Path, meta: dict, cfg: TrainConfig) -> None:
    """Refuse to resume ``path`` with other settings than it was trained with."""
    saved = {**asdict(TrainConfig()), **saved_settings(meta)}
    if any(saved[k] != getattr(cfg, k) for k in SAME_ON_RESUME):
        was = ", ".join(f"{k}={saved[k]!r}" for k in SAME_ON_RESUME)
        raise UserError(f"--resume: {path} was trained with {was}; resume with the same settings")


def resumed_config(resume_dir: str | Path, options: dict, typed: set[str]) -> TrainConfig:
    """The settings of the run in ``resume_dir``, with what may change taken from ``options``.

    Only the names in ``typed`` (typed on this command line) count: $DDPM_DEPLOY_DATA must not move
    a run's data. A typed --arch or --cond other than the run's is refused.
    """
    cfg = saved_config(resume_dir)
    for name in ("arch", "cond"):
        if name in typed and options[name] != getattr(cfg, name):
            raise UserError(
                f"--resume: {resume_dir} was trained with --{name} {getattr(cfg, name)}, not "
                f"{options[name]}; drop --{name} or start a new run in another --out"
            )
    for name in TYPED_ON_RESUME:
        if name in typed:
            setattr(cfg, name, options[name])
    return cfg
