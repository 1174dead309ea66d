"""`ddpm-deploy distill`: a student that samples in a few network calls (SFD, Zhou et al. 2024).

The student starts from the teacher's weights and keeps its architecture and eps output, so export,
every backend and TensorRT run it unchanged. Every update draws fresh noise: the data's Gaussian
statistics take the first ``analytic`` steps (runtime/gaussian.py), then the teacher runs a better
solver (``sub_steps`` calls per student step, train/teacher.py) from that state, and the student,
one step at a time from its OWN previous (detached) state, learns to land on the teacher's state at
its next timestep (train/student.py). Its card names the exact sampler it was made for
(``card["sampler"]``, with the statistics), which `sample`, `evaluate`, `serve` and the page follow.
A run saves every ``save_every`` batches and resumes from the last save (train/distill_files.py).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch
from ddpm_deploy.runtime.backends import load_denoiser
from ddpm_deploy.train.checkpoint import load_model, resolve, split_prefix
from ddpm_deploy.train.distill_config import DistillConfig
from ddpm_deploy.train.distill_files import claim_folder, read_resume, save_run
from ddpm_deploy.train.state import restore_optimizer
from ddpm_deploy.train.student import METHOD, rollout, sfd_update, student_card
from ddpm_deploy.train.teacher import Teacher, student_grid
from tqdm.auto import tqdm

from ddpm_deploy.card import card_schedule, num_classes
from ddpm_deploy.device import pick_device
from ddpm_deploy.errors import UserError
from ddpm_deploy.files import refuse_overwriting_input, sha256_file

__all__ = ["METHOD", "DistillConfig", "Distiller", "distill"]


class Distiller:
    """The teacher, the student and its optimizer, trained update by update on fresh noise."""

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
        check_teacher_guidance(self.card, cfg.guidance, self.teacher_path)
        schedule = card_schedule(self.card)
        if cfg.analytic + cfg.steps + 1 > schedule.T:
            raise UserError(f"--steps + --analytic must be below T={schedule.T}")
        self.grid = student_grid(schedule, cfg.steps, cfg.analytic)
        self.sqrt_ab = torch.tensor(
            np.sqrt(schedule.alpha_bars), dtype=torch.float32, device=self.device
        )
        self.gaussian = None
        if cfg.analytic:
            from ddpm_deploy.runtime.gaussian import fit_card

            self.gaussian = fit_card(self.card, cfg.data_root, cfg.rank)
        self.teacher_sha = sha256_file(self.teacher_path)
        # every check passed: only now is the folder made (a refused run leaves nothing behind)
        self.out = claim_folder(Path(cfg.out), self.teacher_sha, cfg.force)
        # eval mode: no dropout, as the runtime runs it (the nets have no batch statistics)
        self.model = self.model.to(self.device).eval().requires_grad_(True)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False) if cfg.ema else None
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.history: list[dict] = []
        self.done = 0  # fresh images trained on so far
        self.seconds = 0.0

    def open_teacher(self) -> Teacher:
        """On CUDA the teacher runs in PyTorch; on a CPU on ONNX Runtime, 2-4x torch's speed for
        the same eps (max |diff| 7e-7)."""
        if self.device.type == "cuda":
            den = load_denoiser("torch", self.teacher_path, device="cuda")
        else:
            from ddpm_deploy.export.onnx_export import export_onnx  # the one upward edge

            onnx_path = self.out / "teacher.onnx"
            if not onnx_path.is_file():
                export_onnx(self.teacher_path, onnx_path, verify=True)
            den = load_denoiser("ort", onnx_path)
        if self.gaussian is not None:
            den.card = {**den.card, "gaussian": self.gaussian}
            den.__dict__.pop("gaussian", None)  # statistics cached from the card before
        return Teacher(den, self.grid, self.cfg.analytic, self.cfg)

    def run(self) -> dict:
        cfg = self.cfg
        teacher = self.open_teacher()
        held = teacher.batch(cfg.seed + 1, 0, cfg.held_out)  # the same images at every save
        self.resume()
        if not self.history:
            self.history.append(self.measure(held, loss=None))
        steps = self.grid[cfg.analytic :].tolist()
        bar = tqdm(
            total=cfg.images,
            initial=self.done,
            desc="distill",
            unit="img",
            disable=not cfg.progress,
        )
        losses: list[float] = []
        while self.done < cfg.images:
            t0 = time.perf_counter()
            size = min(cfg.batch_size, cfg.images - self.done)
            x, labels, states = teacher.batch(cfg.seed, self.done, size)
            self.set_lr()
            xt = torch.from_numpy(x).to(self.device)
            y = None if labels is None else torch.from_numpy(labels).to(self.device)
            target = torch.from_numpy(states).to(self.device)
            for j, (t, s) in enumerate(zip(steps, [*steps[1:], -1], strict=True)):
                loss, xt = sfd_update(
                    self.model,
                    self.opt,
                    self.ema,
                    cfg.ema,
                    (xt, t, s, y, target[:, j]),
                    self.sqrt_ab,
                )
                losses.append(loss)
            self.done += size
            self.seconds += time.perf_counter() - t0
            bar.update(size)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if (self.done // cfg.batch_size) % cfg.save_every == 0 or self.done >= cfg.images:
                self.history.append(self.measure(held, float(np.mean(losses))))
                losses = []
                self.save()
        bar.close()  # the last batch saved (resumed with nothing left to do: the files stand)
        return {"out": str(self.out / "student.safetensors"), **self.history[-1]}

    def set_lr(self) -> None:
        """SFD's schedule: the learning rate, then a tenth of it over the second half."""
        lr = self.cfg.lr if self.done < self.cfg.images / 2 else self.cfg.lr / 10
        for group in self.opt.param_groups:
            group["lr"] = lr

    def measure(self, held: tuple, loss: float | None) -> dict:
        """The whole student sampler's distance (RMS, in [-1, 1] units) to the teacher's final
        images from the same held-out starting states."""
        x, labels, states = held
        record = {"images": self.done, "train_loss": loss, "seconds": round(self.seconds, 1)}
        for name, model in (("model", self.model), ("ema", self.ema)):
            if model is not None:
                out = rollout(
                    model, x, labels, self.grid[self.cfg.analytic :], self.sqrt_ab, self.device
                )
                record[f"{name}_rollout_rms"] = float(np.sqrt(np.mean((out - states[:, -1]) ** 2)))
        return record

    def make_card(self) -> dict:
        progress = {
            "images_seen": self.done,
            "seconds": round(self.seconds, 1),
            "history": self.history,
        }
        return student_card(
            self.cfg, self.card, self.teacher_sha, self.grid, self.gaussian, progress
        )

    def save(self) -> None:
        save_run(self.out, self.make_card(), self.model, self.ema, self.opt, self.cfg.learning())

    def resume(self) -> None:
        """Continue from the folder's last save when it learned with the same settings."""
        saved = read_resume(self.out, self.cfg.learning())
        if saved is None:
            return
        tensors, groups, made = saved
        self.model.load_state_dict(split_prefix(tensors, "model."))
        if self.ema is not None:
            self.ema.load_state_dict(split_prefix(tensors, "ema."))
        restore_optimizer(self.opt, {k: v.to(self.device) for k, v in tensors.items()}, groups)
        self.done, self.seconds = made["images_seen"], made["seconds"]
        self.history = made["history"]


def check_teacher_guidance(card: dict, w: float, path) -> None:
    """The guidance a student can bake in, or one line: a conditional student is always asked for
    a class (guidance 0 would train it on states the runtime never makes), and w other than 1
    needs a class-conditional teacher with a null label."""
    from ddpm_deploy.runtime.guidance import NO_NULL, has_null_label

    if not num_classes(card):
        if w not in (0.0, 1.0):
            raise UserError(f"--guidance {w}: {path} is unconditional; guidance needs a class-conditional teacher (trained with `train --cond`)")  # fmt: skip
        return
    if w == 0.0:
        raise UserError(f"--guidance {w}: {path} is class-conditional and its student is always asked for a class; distil at --guidance 1 or more")  # fmt: skip
    if w != 1.0 and not has_null_label(card):
        raise UserError(f"--guidance {w}: {NO_NULL}, so only --guidance 1 works")


def distill(cfg: DistillConfig) -> dict:
    """Train the student on fresh teacher states until ``cfg.images``; write student.safetensors."""
    return Distiller(cfg).run()
