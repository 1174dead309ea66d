"""What a run saves and restores: the model card of a checkpoint, the weights (model and EMA), and
for --resume the optimizer, the random generator, the history and the settings."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict
from pathlib import Path

import torch
from ddpm_deploy.train import checkpoint as ckpt
from ddpm_deploy.train.config import TrainConfig, check_same_run, read_last
from ddpm_deploy.train.data import TrainingData
from ddpm_deploy.train.history import History

from ddpm_deploy.card import make_card, parse_card
from ddpm_deploy.errors import UserError
from ddpm_deploy.schedule import Schedule

NOT_IN_CARD = ("out", "data_root", "download")  # settings of this machine, not of the model


def git_revision() -> str:
    try:
        here = Path(__file__).resolve().parent
        rev = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return rev.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def training_card(
    cfg: TrainConfig, model, schedule: Schedule, history: History, ema: bool, data: TrainingData
) -> dict:
    """The model card of a checkpoint: architecture, schedule, dataset, classes and the run."""
    last = history.epochs[-1] if history.epochs else {}
    training = {
        **{k: v for k, v in asdict(cfg).items() if k not in NOT_IN_CARD},
        "epochs_done": len(history),
        "final_loss": last.get("loss"),
        "best_loss": None if history.best_epoch == 0 else history.best_loss,
        "best_epoch": history.best_epoch,
        "steps": history.steps,
        "git_revision": git_revision(),
        "torch": torch.__version__,
    }
    return make_card(
        arch=model.config.to_dict(),
        schedule=schedule,
        dataset=cfg.dataset,
        training=training,
        weights="ema" if ema else "model",
        classes=data.classes,
        data=data.info,
    )


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    sd = opt.state_dict()
    tensors = {f"optim.{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items()}
    return tensors, json.dumps(sd["param_groups"])


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict, groups_json: str) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(groups_json)})


def save_weights(path: Path, card: dict, model, ema) -> None:
    """The model's weights (and the EMA's) with their card: what export and the runtimes read."""
    ema_sd = ema.state_dict() if ema is not None else None
    ckpt.save_checkpoint(path, card, model.state_dict(), ema_sd)


def save_resumable(
    path: Path, card: dict, model, ema, opt, gen: torch.Generator, history: History, cfg
) -> None:
    """save_weights plus the optimizer, generator, history and settings that --resume needs."""
    extra, groups = optimizer_tensors(opt)
    extra["rng.generator"] = gen.get_state()
    meta = {
        "optim_param_groups": groups,
        "history": json.dumps(history.epochs),
        "config": json.dumps(asdict(cfg)),
    }
    ema_sd = ema.state_dict() if ema is not None else None
    ckpt.save_checkpoint(path, card, model.state_dict(), ema_sd, extra, meta)


def restore(out: Path, cfg: TrainConfig, model, ema, opt, gen, device) -> History:
    """Load the run in ``out`` into model, EMA, optimizer and generator; returns its history.
    Refuses a checkpoint of other settings or another architecture."""
    path, tensors, meta = read_last(out)
    check_same_run(path, meta, cfg)
    card = parse_card(meta["card"], str(path), ckpt.NOT_A_CHECKPOINT)
    if card.get("arch") != model.config.to_dict():
        raise UserError(
            f"--resume: {path} holds architecture {card.get('arch')}, not "
            f"{model.config.to_dict()}; resume with the same settings"
        )
    weights = ckpt.build_model(card, ckpt.split_prefix(tensors, "model."), str(path))
    model.load_state_dict(weights.state_dict())
    if ema is not None:
        ema.load_state_dict(ckpt.split_prefix(tensors, "ema."))
    restore_optimizer(
        opt, {k: v.to(device) for k, v in tensors.items()}, meta["optim_param_groups"]
    )
    gen.set_state(tensors["rng.generator"])
    return History.of(json.loads(meta["history"]))
