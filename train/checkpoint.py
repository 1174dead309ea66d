"""Checkpoints: one safetensors file each, weights plus the JSON card in its metadata header.

One file means one atomic rename: a training run killed at any moment leaves either the previous
checkpoint or the new one, never a weights file without its card. Loading never unpickles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from ddpm_deploy.train.arch import build
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ddpm_deploy.card import parse_card
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import atomic_path, regular_input

BEST, LAST = "best.safetensors", "last.safetensors"
NOT_A_CHECKPOINT = (
    "it was not written by `ddpm-deploy train`; pass a checkpoint that `ddpm-deploy train` wrote"
)


def _contiguous(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def save_checkpoint(
    path: str | os.PathLike,
    card: dict,
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor] | None = None,
    extra: dict[str, torch.Tensor] | None = None,
    meta: dict[str, str] | None = None,
) -> None:
    tensors = _contiguous(model, "model.")
    if ema is not None:
        tensors.update(_contiguous(ema, "ema."))
    if extra:
        tensors.update(_contiguous(extra, ""))
    metadata = {"card": json.dumps(card, sort_keys=True), **(meta or {})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a training folder (its best checkpoint)."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST
    regular_input(path, "the checkpoint")  # a FIFO is no checkpoint, and reading it would hang
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; pass a .safetensors file or a training folder")
    return path


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return (tensors, metadata) of a ddpm-deploy checkpoint, rejecting anything else."""
    path = resolve(path)
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(
            f"{path} is not a safetensors checkpoint ({str(e).splitlines()[0]}); "
            "ddpm-deploy never loads pickles: pass a file written by `ddpm-deploy train`"
        ) from None
    if "card" not in meta:
        raise UserError(f"{path} has no model card in its metadata; {NOT_A_CHECKPOINT}")
    return tensors, meta


def read_checkpoint_card(path: str | os.PathLike) -> dict:
    _, meta = read_checkpoint(path)
    return parse_card(meta["card"], str(path), NOT_A_CHECKPOINT)


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def build_model(card: dict, state: dict[str, torch.Tensor], source: str) -> torch.nn.Module:
    """The card's model with ``state`` loaded, after the architecture was built on the meta device
    (no memory) and its tensors' names and shapes compared with the file's: an edited ``arch``
    is refused in one line instead of allocating what it asks for."""
    with torch.device("meta"):
        shell = build(card["arch"])
    want = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    if want != have:
        missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        other = [k for k in want if k in have and want[k] != have[k]]
        first = (missing or unexpected or other)[0]
        raise UserError(
            f"{source} does not fit the {card['arch'].get('name')} architecture its card "
            f"describes ({len(missing)} missing, {len(unexpected)} unexpected and {len(other)} "
            f"differently shaped tensors, e.g. {first!r}); was it trained by another version?"
        )
    model = build(card["arch"])
    model.load_state_dict(state)
    return model


def load_model(path: str | os.PathLike, weights: str = "auto") -> tuple[torch.nn.Module, dict]:
    """Rebuild the model from a checkpoint alone; ``weights``: 'auto' (the card's choice), 'ema', 'model'."""
    path = resolve(path)
    tensors, meta = read_checkpoint(path)
    card = parse_card(meta["card"], str(path), NOT_A_CHECKPOINT)
    which = card.get("weights", "model") if weights == "auto" else weights
    state = split_prefix(tensors, f"{which}.")
    if not state:
        other = sorted({k.split(".", 1)[0] for k in tensors} & {"ema", "model"})
        raise UserError(f"{path} holds no {which!r} weights; choose --weights from {other}")
    model = build_model(card, state, str(path))
    model.eval()
    return model, {**card, "weights": which}  # the card says which weights were really loaded
