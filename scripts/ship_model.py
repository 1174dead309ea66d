"""Slim a training checkpoint to what a shipped model needs: the weights its card names, and the card.

    python scripts/ship_model.py runs/emoji/last.safetensors models/emoji/model.safetensors

A checkpoint from `train --ema` holds the raw weights ("model.*"), the EMA ("ema.*") and, in
last.safetensors, the optimizer state; the card's "weights" says which set export uses. Only that set
is kept (half the size or less), under its own prefix, so `export` and the torch backend read the
slim file exactly as they read the checkpoint. Also writes card.json beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.numpy import save_file


def ship(checkpoint: Path, out: Path) -> dict:
    with safe_open(str(checkpoint), "np") as f:
        card = json.loads(f.metadata()["card"])
        prefix = card["weights"] + "."
        tensors = {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    if not tensors:
        raise SystemExit(f"{checkpoint} holds no {prefix}* tensors for its card's weights")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={"card": json.dumps(card, sort_keys=True)})
    (out.parent / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    card = ship(args.checkpoint, args.out)
    size = args.out.stat().st_size / 2**20
    print(f"wrote {args.out} ({card['weights']} weights, {size:.1f} MiB) and card.json")


if __name__ == "__main__":
    main()
