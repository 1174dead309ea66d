"""`distill`'s folder: claimed for one teacher, the student and its resumable state saved together
after every ``save_every`` batches, and read back by a rerun (train/distill.py)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from ddpm_deploy.train.checkpoint import read_checkpoint, save_checkpoint
from ddpm_deploy.train.state import optimizer_tensors

from ddpm_deploy.card import parse_card
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import check_output, writable_dir, write_text_atomic
from ddpm_deploy.publish import remove_own_file

RESUME = "resume.safetensors"  # student, EMA, optimizer and progress of the last save
OWNER = "distill.json"  # which teacher a distill folder belongs to
RUN_FILES = ("student.safetensors", "card.json", "history.csv", "teacher.onnx", RESUME)


def claim_folder(out: Path, teacher_sha: str, force: bool) -> Path:
    """``out`` for a distillation of this teacher: refused in one line when it holds another
    teacher's run (or files of an unknown one) unless ``force``, which clears that run's files
    (and, for this teacher, its last save: the run starts over). Only files of the run's own
    names go, and only regular files or links (unlinked, not followed): a folder or a FIFO of
    such a name is refused before anything is removed."""
    mine = {"teacher_sha256": teacher_sha}
    owner = out / OWNER
    for name in (*RUN_FILES, OWNER):
        check_output(out / name)  # a folder or a FIFO of that name is the user's: refused, kept
    present = [name for name in RUN_FILES if os.path.lexists(out / name)]
    try:
        recorded = json.loads(owner.read_text()) if owner.is_file() else None
    except (ValueError, OSError):
        recorded = None  # unreadable: an unknown teacher's folder
    if present and recorded != mine and not force:
        whose = (
            f"teacher sha256 {recorded.get('teacher_sha256', '?')[:12]}"
            if isinstance(recorded, dict)
            else "an unknown teacher"
        )
        raise UserError(
            f"{out} holds a distillation of {whose} ({', '.join(present)}), not of this "
            f"teacher ({teacher_sha[:12]}); choose a new --out, or pass --force to replace it"
        )
    if force:
        for name in present:
            remove_own_file(out / name)  # regular files and links only, never followed
    out = writable_dir(out)
    write_text_atomic(owner, json.dumps(mine) + "\n")
    return out


def save_run(out: Path, card: dict, model, ema, opt, learning: dict) -> None:
    """student.safetensors (what export reads), resume.safetensors (the same weights with the
    optimizer and the settings that decide what is learned), card.json and history.csv."""
    ema_state = None if ema is None else ema.state_dict()
    save_checkpoint(out / "student.safetensors", card, model.state_dict(), ema_state)
    extra, groups = optimizer_tensors(opt)
    meta = {"optim_param_groups": groups, "learning": json.dumps(learning, sort_keys=True)}
    save_checkpoint(out / RESUME, card, model.state_dict(), ema_state, extra, meta)
    write_text_atomic(out / "card.json", json.dumps(card, indent=2, sort_keys=True) + "\n")
    history = card["distilled"]["history"]
    rows = io.StringIO(newline="")
    writer = csv.DictWriter(rows, fieldnames=list(history[-1]))
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(out / "history.csv", rows.getvalue())


def read_resume(out: Path, learning: dict) -> tuple[dict, str, dict] | None:
    """The last save's tensors, optimizer groups and ``card["distilled"]``; None without one; one
    line naming the settings that differ when it learned with others."""
    path = out / RESUME
    if not path.is_file():
        return None
    tensors, meta = read_checkpoint(path)
    try:
        saved = json.loads(meta.get("learning", "{}"))
    except ValueError:
        saved = None
    if not isinstance(saved, dict):
        raise UserError(f"{path}'s settings are unreadable; choose a new --out, or pass --force")
    changed = [k for k in learning if saved.get(k) != learning[k]]
    if changed:
        was = ", ".join(f"--{k.replace('_', '-')} {saved.get(k)}" for k in changed)
        raise UserError(
            f"{path} is a run with other settings ({was}); rerun with them, choose a new "
            "--out, or pass --force to start over"
        )
    card = parse_card(meta["card"], str(path), "choose a new --out, or pass --force to start over")
    if not card.get("distilled") or "optim_param_groups" not in meta:
        raise UserError(f"{path} is no distill save; choose a new --out, or pass --force")
    return tensors, meta["optim_param_groups"], card["distilled"]
