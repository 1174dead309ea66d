"""The training loop: MSE between injected and predicted noise (Ho et al. Algorithm 1)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from ddpm_deploy.train import checkpoint as ckpt
from ddpm_deploy.train.arch import build, card_name, make_config
from ddpm_deploy.train.data import load_training_set
from ddpm_deploy.train.diffusion import ForwardProcess
from tqdm.auto import tqdm

from ddpm_deploy.card import canonical_dataset, make_card
from ddpm_deploy.datasets import CLASSES
from ddpm_deploy.errors import UserError, require_positive
from ddpm_deploy.files import writable_dir, write_text_atomic
from ddpm_deploy.schedule import Schedule


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

    def arch_config(self, num_classes: int):
        settings = {"base": self.base, "dropout": self.dropout}
        if self.cond:
            settings["num_classes"] = num_classes
        return make_config(self.arch, **settings)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r}; choose from ['auto', 'cpu', 'cuda']")
    return torch.device(name)


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); returns (rank, world)."""
    import os

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise UserError(
            "--distributed runs under torchrun, e.g. `torchrun --nproc_per_node 2 -m ddpm_deploy.cli "
            "train --distributed ...`"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    torch.distributed.init_process_group(backend)
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def git_revision() -> str:
    try:
        here = Path(__file__).resolve().parent
        rev = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return rev.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    sd = opt.state_dict()
    tensors = {f"optim.{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items()}
    return tensors, json.dumps(sd["param_groups"])


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict, groups_json: str) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(groups_json)})


def train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    forward: ForwardProcess,
    x0: torch.Tensor,
    gen: torch.Generator,
    shard: slice | None = None,
    y: torch.Tensor | None = None,
    null_label: int = 0,
    cond_drop: float = 0.0,
) -> torch.Tensor:
    """One step of Ho et al. Algorithm 1: t ~ U[0, T), eps ~ N(0, I), MSE(eps_theta(x_t, t), eps).

    t and eps are drawn for the whole (global) batch, so every rank of a distributed run draws the
    same numbers as a single process would, then trains on its `shard` of the batch. With labels
    ``y``, a ``cond_drop`` share of them becomes ``null_label`` (classifier-free guidance).
    """
    t = torch.randint(0, forward.schedule.T, (len(x0),), generator=gen).to(x0.device)
    eps = torch.randn(x0.shape, generator=gen).to(x0.device)
    args = ()
    if y is not None:
        drop = (torch.rand(len(x0), generator=gen) < cond_drop).to(x0.device)
        args = (torch.where(drop, torch.full_like(y, null_label), y),)
    if shard is not None:
        x0, t, eps = x0[shard], t[shard], eps[shard]
        args = tuple(a[shard] for a in args)
    loss = torch.nn.functional.mse_loss(model(forward.q_sample(x0, t, eps), t, *args), eps)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False):
        cfg.validate()
        self.cfg = cfg
        self.out = writable_dir(cfg.out)
        self.device = pick_device(cfg.device)
        self.rank, self.world = init_distributed(self.device) if cfg.distributed else (0, 1)
        if cfg.batch_size % self.world:
            raise UserError(
                f"--batch-size {cfg.batch_size} (the global batch) must divide evenly over "
                f"{self.world} processes"
            )
        self.schedule = Schedule(cfg.schedule)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.classes = CLASSES[cfg.dataset]
        arch = cfg.arch_config(len(self.classes)).to_dict()
        self.model = build(arch).to(self.device)
        self.ema = build(arch).to(self.device) if cfg.ema else None
        if self.ema is not None:
            self.ema.load_state_dict(self.model.state_dict())
            self.ema.requires_grad_(False)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.net = self.model  # what the step runs: the model, or its DDP wrapper
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)
        # One generator drives shuffling, timesteps and noise: its state is checkpointed for --resume.
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.forward = ForwardProcess(self.schedule, self.device)
        self.history: list[dict] = []
        self.best_loss, self.best_epoch = float("inf"), 0
        self.step = 0  # optimiser steps taken, across resumes
        if resume:
            self._resume()

    # -- checkpoints ---------------------------------------------------------------------------
    def card(self) -> dict:
        last = self.history[-1] if self.history else {}
        training = {
            **{
                k: v
                for k, v in asdict(self.cfg).items()
                if k not in ("out", "data_root", "download")
            },
            "epochs_done": len(self.history),
            "final_loss": last.get("loss"),
            "best_loss": None if self.best_epoch == 0 else self.best_loss,
            "best_epoch": self.best_epoch,
            "steps": sum(h["steps"] for h in self.history),
            "git_revision": git_revision(),
            "torch": torch.__version__,
        }
        return make_card(
            arch=self.model.config.to_dict(),
            schedule=self.schedule,
            dataset=self.cfg.dataset,
            training=training,
            weights="ema" if self.ema is not None else "model",
            classes=self.classes,
        )

    def _save(self, name: str, with_state: bool) -> None:
        extra, meta = None, {}
        if with_state:
            extra, groups = _optimizer_tensors(self.opt)
            extra["rng.generator"] = self.gen.get_state()
            meta = {
                "optim_param_groups": groups,
                "history": json.dumps(self.history),
                "config": json.dumps(asdict(self.cfg)),
            }
        ema = self.ema.state_dict() if self.ema is not None else None
        ckpt.save_checkpoint(
            self.out / name, self.card(), self.model.state_dict(), ema, extra, meta
        )

    def _resume(self) -> None:
        path = self.out / ckpt.LAST
        if not path.is_file():
            raise UserError(
                f"--resume: no {ckpt.LAST} in {self.out}; start a new run without --resume"
            )
        tensors, meta = ckpt.read_checkpoint(path)
        card = json.loads(meta["card"])
        if "optim_param_groups" not in meta or "config" not in meta:
            raise UserError(f"--resume: {path} holds no training state; start a new run")
        saved = _with_old_defaults(json.loads(meta["config"]))
        same = ("dataset", "ema", "arch", "cond")
        if any(saved[k] != getattr(self.cfg, k) for k in same):
            was = ", ".join(f"{k}={saved[k]!r}" for k in same)
            raise UserError(
                f"--resume: {path} was trained with {was}; resume with the same settings"
            )
        if card.get("arch") != self.model.config.to_dict():
            raise UserError(
                f"--resume: {path} holds architecture {card.get('arch')}, not "
                f"{self.model.config.to_dict()}; resume with the same settings"
            )
        self.model.load_state_dict(
            ckpt.build_model(card, ckpt.split_prefix(tensors, "model."), str(path)).state_dict()
        )
        self.step = sum(h["steps"] for h in json.loads(meta["history"]))
        if self.ema is not None:
            self.ema.load_state_dict(ckpt.split_prefix(tensors, "ema."))
        _restore_optimizer(
            self.opt, {k: v.to(self.device) for k, v in tensors.items()}, meta["optim_param_groups"]
        )
        self.gen.set_state(tensors["rng.generator"])
        self.history = json.loads(meta["history"])
        for h in self.history:
            if h["loss"] < self.best_loss:
                self.best_loss, self.best_epoch = h["loss"], h["epoch"]

    # -- training -------------------------------------------------------------------------------
    def fit(self) -> Path:
        cfg = self.cfg
        data, labels = load_training_set(cfg.dataset, cfg.data_root, cfg.limit, cfg.download)
        null_label = len(self.classes)
        start = len(self.history)
        if start >= cfg.epochs:
            raise UserError(
                f"{self.out} has already trained {start} epochs; pass a larger --epochs to continue"
            )
        quiet = self.rank != 0
        epochs = tqdm(
            range(start, cfg.epochs), desc="epochs", initial=start, total=cfg.epochs, disable=quiet
        )
        for epoch in epochs:
            t0 = time.perf_counter()
            order = torch.randperm(len(data), generator=self.gen)
            total, count = 0.0, 0
            batches = tqdm(
                order.split(cfg.batch_size), desc=f"epoch {epoch + 1}", leave=False, disable=quiet
            )
            self.model.train()
            for idx in batches:
                x0 = data[idx].to(self.device)
                y = labels[idx].to(self.device) if cfg.cond else None
                shard = None
                if self.world > 1:  # the last, smaller batch splits unevenly (see README)
                    shard = range(len(idx))[self.rank :: self.world]
                    shard = slice(shard.start, shard.stop, shard.step)
                if cfg.warmup:
                    for group in self.opt.param_groups:
                        group["lr"] = cfg.lr * min(1.0, (self.step + 1) / cfg.warmup)
                loss = train_step(
                    self.net,
                    self.opt,
                    self.forward,
                    x0,
                    self.gen,
                    shard,
                    y,
                    null_label,
                    cfg.cond_drop,
                )
                self.step += 1
                if self.world > 1:
                    loss = loss.detach().clone()
                    torch.distributed.all_reduce(loss)
                    loss /= self.world
                if self.ema is not None:
                    self._update_ema()
                total += loss.item() * len(idx)
                count += len(idx)
                batches.set_postfix(loss=f"{loss.item():.4f}")
            epoch_loss = total / count
            self.history.append(
                {
                    "epoch": epoch + 1,
                    "loss": epoch_loss,
                    "steps": len(batches),
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            )
            if epoch_loss < self.best_loss:
                self.best_loss, self.best_epoch = epoch_loss, epoch + 1
                if self.rank == 0:
                    self._save(ckpt.BEST, with_state=False)
            if self.rank == 0:  # one writer; every rank holds the same weights after DDP's sync
                self._save(ckpt.LAST, with_state=True)
                self._write_history()
            epochs.set_postfix(loss=f"{epoch_loss:.4f}", best=f"{self.best_loss:.4f}")
        if self.rank == 0:
            write_text_atomic(
                self.out / "card.json", json.dumps(self.card(), indent=2, sort_keys=True) + "\n"
            )
        if self.world > 1:
            torch.distributed.destroy_process_group()
        return self.out

    def ema_decay(self) -> float:
        """With warm-up, early averages forget the random initialisation (improved-diffusion)."""
        if not self.cfg.ema_warmup:
            return self.cfg.ema
        return min(self.cfg.ema, (1 + self.step) / (10 + self.step))

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.ema_decay()
        for pe, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            pe.lerp_(p, 1.0 - decay)

    def _write_history(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["epoch", "loss", "steps", "seconds"])
        writer.writeheader()
        writer.writerows(self.history)
        write_text_atomic(self.out / "loss.csv", buf.getvalue())
        plot_loss(self.history, self.out / "loss.png")


def plot_loss(history: list[dict], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ddpm_deploy.files import atomic_path

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


def saved_config(out: str | Path) -> TrainConfig:
    """The configuration a run in ``out`` was started with, read from its last checkpoint."""
    path = Path(out) / ckpt.LAST
    if not path.is_file():
        raise UserError(f"--resume: no {ckpt.LAST} in {out}; start a new run without --resume")
    _, meta = ckpt.read_checkpoint(path)
    if "config" not in meta:
        raise UserError(f"--resume: {path} holds no training state; start a new run")
    return TrainConfig(**{**_with_old_defaults(json.loads(meta["config"])), "out": str(out)})


def _with_old_defaults(saved: dict) -> dict:
    """Runs saved before --arch existed trained the reference UNet with a plain EMA."""
    return {"arch": "reference", "cond": False, "ema_warmup": False, **saved}


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
    for name in ("epochs", "device", "data_root", "threads"):
        if name in typed:
            setattr(cfg, name, options[name])
    return cfg


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    return Trainer(cfg, resume=resume).fit()


def train_from_options(
    options: dict, resume_dir: str | Path | None = None, typed: set[str] = frozenset()
) -> Path:
    """`ddpm-deploy train`: a new run from ``options`` (TrainConfig's fields), or the run in
    ``resume_dir`` continued with the ``typed`` options it allows (resumed_config)."""
    if resume_dir is None:
        return train(TrainConfig(**options))
    return train(resumed_config(resume_dir, options, typed), resume=True)
