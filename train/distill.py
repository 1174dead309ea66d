"""`ddpm-deploy distill`: a student that samples in a handful of network calls (trajectory distillation).

The teacher (a checkpoint) runs its own deterministic DDIM sampler with ``sub_steps`` calls between
each pair of the student's timesteps, from x_T to a clean image, and the states at the student's
timesteps are kept. The student starts from the teacher's weights and learns to land on the
teacher's next state in ONE plain DDIM step: for the pair (x_t, x_s) the DDIM step lands on x_s
exactly when its (clipped) predicted x0 equals

    x0~ = (x_s - r x_t) / (sqrt(ab_s) - r sqrt(ab_t)),   r = sqrt(1 - ab_s) / sqrt(1 - ab_t)

(Salimans & Ho 2022, eq. 8's target; s = -1 is the clean end, ab = 1, x0~ = x_s). The loss is the
squared error of the student's x0, clipped as the sampler clips it, against x0~: an error in x0 reaches the final image about
one-for-one from every one of the few steps, while an eps loss would weight the first step
1 / SNR (about 25,000 at t = 999) times too little. The student keeps the teacher's architecture
and its eps output, so export, every backend and TensorRT run it unchanged; its card names the
exact sampler it was made for (``card["sampler"]``), which `sample`, `evaluate` and `serve` follow.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from ddpm_deploy.runtime.backends import load_denoiser
from ddpm_deploy.train.checkpoint import load_model, resolve, save_checkpoint
from ddpm_deploy.train.distill_config import DistillConfig  # noqa: F401 - importable from here
from ddpm_deploy.train.student import rollout, student_card, update
from ddpm_deploy.train.trajectories import (
    cache_key,
    make_trajectories,
    student_timesteps,
    x0_targets,
)
from tqdm.auto import tqdm

from ddpm_deploy.card import card_schedule, num_classes
from ddpm_deploy.device import pick_device
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import refuse_overwriting_input, sha256_file, writable_dir, write_text_atomic

HELD_OUT = 0.05  # share of the trajectories kept aside to measure the student end to end


class Distiller:
    """Holds the teacher's trajectories and trains the student on them, epoch by epoch."""

    def __init__(self, cfg: DistillConfig):
        cfg.validate()
        self.cfg = cfg
        self.teacher_path = resolve(cfg.teacher)
        refuse_overwriting_input(cfg.out, self.teacher_path)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        self.model, self.card = load_model(self.teacher_path)
        if self.card.get("distilled"):
            raise UserError(
                f"{self.teacher_path} is itself a distilled student; distil from its teacher"
            )
        k = num_classes(self.card)
        if not k and cfg.guidance not in (0.0, 1.0):
            raise UserError(
                f"--guidance {cfg.guidance}: {self.teacher_path} is unconditional; guidance "
                "needs a class-conditional teacher (trained with `train --cond`)"
            )
        self.model = self.model.to(self.device)
        self.ts = student_timesteps(self.card["schedule"]["T"], cfg.steps)
        self.alpha_bars = card_schedule(self.card).alpha_bars
        self.sqrt_ab = torch.tensor(
            np.sqrt(self.alpha_bars), dtype=torch.float32, device=self.device
        )
        self.history: list[dict] = []
        self.teacher_sha = sha256_file(self.teacher_path)
        # every check passed: only now is the folder made (a refused run leaves nothing behind)
        self.out = claim_folder(Path(cfg.out), self.teacher_sha, cfg.force)

    def trajectories(self) -> dict:
        """The teacher runs on ONNX Runtime: 2-4x torch's speed on the project's CPU for the same
        eps (max |diff| 7e-7), which decides how many trajectories fit in a CPU budget."""
        from ddpm_deploy.export.onnx_export import export_onnx

        t0 = time.perf_counter()
        if self.device.type == "cuda":  # a GPU runs torch far faster than ORT's CPU provider
            teacher = load_denoiser("torch", self.teacher_path, device="cuda")
        else:
            onnx_path = self.out / "teacher.onnx"
            export_onnx(self.teacher_path, onnx_path, verify=True)
            teacher = load_denoiser("ort", onnx_path)
        key = cache_key(self.cfg, self.teacher_sha, self.ts)
        cache = self.out / "trajectories" / key
        cache.mkdir(parents=True, exist_ok=True)
        data = make_trajectories(self.cfg, teacher, self.ts, cache)
        data["seconds"] = time.perf_counter() - t0
        data["targets"] = x0_targets(data["states"], self.ts, self.alpha_bars)
        return data

    def train(self, data: dict) -> dict:
        """Epochs over every (trajectory, step) pair; returns the held-out measurements."""
        cfg = self.cfg
        n = len(data["states"])
        held = max(1, int(round(n * HELD_OUT)))
        gen = torch.Generator().manual_seed(cfg.seed)
        order = torch.randperm(n, generator=gen).numpy()
        self.val_rows, train_rows = order[:held], order[held:]
        states = torch.from_numpy(data["states"])
        targets = torch.from_numpy(data["targets"])
        labels = None if data["labels"] is None else torch.from_numpy(data["labels"])
        pairs = torch.tensor(
            [(r, j) for r in train_rows for j in range(len(self.ts))], dtype=torch.int64
        )
        ts = torch.from_numpy(self.ts)
        student = self.model.train()
        student.requires_grad_(True)
        ema = copy.deepcopy(student).eval().requires_grad_(False) if cfg.ema else None
        opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
        self.history = [self.measure(student, ema, data, epoch=0, loss=None, seconds=0.0)]
        t_start = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            perm = pairs[torch.randperm(len(pairs), generator=gen)]
            total, count = 0.0, 0
            bar = tqdm(
                range(0, len(perm), cfg.batch_size),
                desc=f"distill epoch {epoch}",
                disable=not cfg.progress,
            )
            for b in bar:
                rows, js = perm[b : b + cfg.batch_size].T
                y = None if labels is None else labels[rows].to(self.device)
                batch = (
                    states[rows, js].to(self.device),
                    ts[js].to(self.device),
                    y,
                    targets[rows, js].to(self.device),
                )
                loss = update(student, opt, ema, cfg.ema, batch, self.sqrt_ab)
                total, count = total + loss * len(rows), count + len(rows)
                bar.set_postfix(loss=f"{total / count:.5f}")
            seconds = time.perf_counter() - t_start
            self.history.append(self.measure(student, ema, data, epoch, total / count, seconds))
            self.save(student, ema, data)
        return self.history[-1]

    def rollout(self, model, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        """The student's own sampler from x_T (train/student.py rollout)."""
        return rollout(model, x, y, self.ts, self.sqrt_ab, self.device)

    def measure(self, student, ema, data, epoch: int, loss, seconds: float) -> dict:
        """Held-out trajectories: per-step x0 error, and the whole student sampler's distance (RMS,
        in [-1, 1] units) to the teacher's final images from the same x_T."""
        rows = self.val_rows
        x_T, final = data["states"][rows, 0], data["states"][rows, -1]
        y = None if data["labels"] is None else data["labels"][rows]
        record = {"epoch": epoch, "train_loss": loss, "seconds": round(seconds, 1)}
        for name, model in (("model", student), ("ema", ema)):
            if model is None:
                continue
            out = self.rollout(model, x_T, y)
            record[f"{name}_rollout_rms"] = float(np.sqrt(np.mean((out - final) ** 2)))
        return record

    def save(self, student, ema, data) -> Path:
        card = student_card(
            self.cfg,
            self.card,
            sha256_file(self.teacher_path),
            self.ts,
            data,
            self.history,
            len(self.val_rows),
        )
        ema_state = None if ema is None else ema.state_dict()
        path = self.out / "student.safetensors"
        save_checkpoint(path, card, student.state_dict(), ema_state)
        write_text_atomic(self.out / "card.json", json.dumps(card, indent=2, sort_keys=True) + "\n")
        rows = io.StringIO(newline="")
        writer = csv.DictWriter(rows, fieldnames=list(self.history[-1]))
        writer.writeheader()
        writer.writerows(self.history)
        write_text_atomic(self.out / "history.csv", rows.getvalue())
        return path


OWNER = "distill.json"  # which teacher a distill folder belongs to
RUN_FILES = ("student.safetensors", "card.json", "history.csv", "teacher.onnx", "trajectories")


def claim_folder(out: Path, teacher_sha: str, force: bool) -> Path:
    """``out`` for a distillation of this teacher: refused in one line when it holds another
    teacher's run (or files of an unknown one) unless ``force``, which clears that run's files."""
    import shutil

    mine = {"teacher_sha256": teacher_sha}
    owner = out / OWNER
    present = [name for name in RUN_FILES if (out / name).exists()]
    recorded = json.loads(owner.read_text()) if owner.is_file() else None
    if present and recorded != mine:
        whose = (
            f"teacher sha256 {recorded.get('teacher_sha256', '?')[:12]}"
            if isinstance(recorded, dict)
            else "an unknown teacher"
        )
        if not force:
            raise UserError(
                f"{out} holds a distillation of {whose} ({', '.join(present)}), not of this "
                f"teacher ({teacher_sha[:12]}); choose a new --out, or pass --force to replace it"
            )
        for name in present:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    out = writable_dir(out)
    write_text_atomic(owner, json.dumps(mine) + "\n")
    return out


def distill(cfg: DistillConfig) -> dict:
    """Make the teacher's trajectories, train the student on them, write student.safetensors."""
    distiller = Distiller(cfg)
    data = distiller.trajectories()
    final = distiller.train(data)
    return {"out": str(distiller.out / "student.safetensors"), **final}
