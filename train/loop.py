"""The Trainer: runs the epochs of Ho et al. Algorithm 1, keeps the EMA of the weights and saves
best.safetensors, last.safetensors, card.json, loss.csv and loss.png after each epoch.

Its parts live beside it: settings and resume rules (config.py), the device (ddpm_deploy/device.py)
and several processes (distributed.py), the step (step.py), what is saved and restored (state.py),
the history and its plot (history.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from ddpm_deploy.train import checkpoint as ckpt
from ddpm_deploy.train import state
from ddpm_deploy.train.arch import build
from ddpm_deploy.train.config import TrainConfig, resumed_config, saved_config
from ddpm_deploy.train.data import load_training_data
from ddpm_deploy.train.diffusion import ForwardProcess
from ddpm_deploy.train.distributed import (
    check_batch,
    init_distributed,
    leave,
    mean_over_ranks,
    shard_of,
)
from ddpm_deploy.train.history import History
from ddpm_deploy.train.step import train_step, warm_up_lr
from tqdm.auto import tqdm

from ddpm_deploy.device import pick_device
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import (
    check_writable,
    refuse_output_over_data,
    writable_dir,
    write_text_atomic,
)
from ddpm_deploy.schedule import Schedule

# Importers of these names from here (tests, train/distill.py) keep working.
__all__ = ["Trainer", "TrainConfig", "pick_device", "saved_config", "train", "train_step"]


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False):
        cfg.validate()
        self.cfg = cfg
        check_writable(cfg.out)
        if cfg.data_root is not None:
            refuse_output_over_data(cfg.out, cfg.data_root, images=cfg.dataset == "folder")
        self.device = pick_device(cfg.device)
        self.rank, self.world = init_distributed(self.device) if cfg.distributed else (0, 1)
        check_batch(cfg.batch_size, self.world)
        self.schedule = Schedule(cfg.schedule)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.data = load_training_data(
            cfg.dataset, cfg.data_root, cfg.limit, cfg.download, cfg.folder_spec()
        )
        self.classes = self.data.classes
        self._build_models(cfg.arch_config(len(self.classes), self.data.shape).to_dict())
        # made once the data is read and the model built: a refused run leaves no folder
        self.out = writable_dir(cfg.out)
        # One generator drives shuffling, timesteps and noise: its state is checkpointed for --resume.
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.forward = ForwardProcess(self.schedule, self.device)
        self.history = History()
        self.step = 0  # optimiser steps taken, across resumes
        if resume:
            self.history = state.restore(
                self.out, cfg, self.model, self.ema, self.opt, self.gen, self.device
            )
            self.step = self.history.steps

    def _build_models(self, arch: dict) -> None:
        self.model = build(arch).to(self.device)
        self.ema = build(arch).to(self.device) if self.cfg.ema else None
        if self.ema is not None:
            self.ema.load_state_dict(self.model.state_dict())
            self.ema.requires_grad_(False)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.net = self.model  # what the step runs: the model, or its DDP wrapper
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)

    # -- saving -----------------------------------------------------------------------------------
    def card(self) -> dict:
        return state.training_card(
            self.cfg, self.model, self.schedule, self.history, self.ema is not None, self.data
        )

    def _save(self, best: bool) -> None:
        """After an epoch, on rank 0 only: every rank holds the same weights after DDP's sync."""
        if self.rank != 0:
            return
        card = self.card()
        if best:
            state.save_weights(self.out / ckpt.BEST, card, self.model, self.ema)
        state.save_resumable(
            self.out / ckpt.LAST,
            card,
            self.model,
            self.ema,
            self.opt,
            self.gen,
            self.history,
            self.cfg,
        )
        self.history.write(self.out)

    # -- training ---------------------------------------------------------------------------------
    def fit(self) -> Path:
        cfg = self.cfg
        data, labels = self.data.images, self.data.labels
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
            entry = self._epoch(epoch, data, labels, quiet)
            self._save(best=self.history.add(entry))
            epochs.set_postfix(loss=f"{entry['loss']:.4f}", best=f"{self.history.best_loss:.4f}")
        if self.rank == 0:
            write_text_atomic(
                self.out / "card.json", json.dumps(self.card(), indent=2, sort_keys=True) + "\n"
            )
        leave(self.world)
        return self.out

    def _epoch(self, epoch: int, data: torch.Tensor, labels: torch.Tensor, quiet: bool) -> dict:
        """One pass over the data in a fresh random order; returns the epoch's history entry."""
        t0 = time.perf_counter()
        order = torch.randperm(len(data), generator=self.gen)
        total, count = 0.0, 0
        batches = tqdm(
            order.split(self.cfg.batch_size), desc=f"epoch {epoch + 1}", leave=False, disable=quiet
        )
        self.model.train()
        for idx in batches:
            loss = self._step(data, labels, idx)
            total += loss.item() * len(idx)
            count += len(idx)
            batches.set_postfix(loss=f"{loss.item():.4f}")
        seconds = round(time.perf_counter() - t0, 2)
        return {
            "epoch": epoch + 1,
            "loss": total / count,
            "steps": len(batches),
            "seconds": seconds,
        }

    def _step(self, data: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """One optimiser step on the rows ``idx`` (this rank's share of them), then the EMA."""
        cfg = self.cfg
        x0 = data[idx].to(self.device)
        y = labels[idx].to(self.device) if cfg.cond else None
        if cfg.warmup:
            warm_up_lr(self.opt, cfg.lr, self.step, cfg.warmup)
        shard = shard_of(len(idx), self.rank, self.world)
        null_label = len(self.classes)
        loss = train_step(
            self.net, self.opt, self.forward, x0, self.gen, shard, y, null_label, cfg.cond_drop
        )
        self.step += 1
        loss = mean_over_ranks(loss, self.world)
        if self.ema is not None:
            self._update_ema()
        return loss

    # -- EMA --------------------------------------------------------------------------------------
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


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    return Trainer(cfg, resume=resume).fit()


def train_from_options(
    options: dict, resume_dir: str | Path | None = None, typed: set[str] = frozenset()
) -> Path:
    """`ddpm-deploy train`: a new run from ``options`` (TrainConfig's fields), or the run in
    ``resume_dir`` continued with the ``typed`` options it allows (config.resumed_config)."""
    if resume_dir is None:
        return train(TrainConfig(**options))
    return train(resumed_config(resume_dir, options, typed), resume=True)
