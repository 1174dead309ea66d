"""`distill`'s options: what a run is asked for, checked before anything loads (train/distill.py
runs it; train/student.py and train/trajectories.py read it)."""

from __future__ import annotations

from dataclasses import dataclass

from ddpm_deploy.runtime.guidance import check_guidance

from ddpm_deploy.errors import UserError


@dataclass
class DistillConfig:
    teacher: str
    out: str
    steps: int = 4  # the student's network calls per image (at guidance 0 or 1)
    guidance: float = 1.0  # the teacher's guidance, baked into the student
    sub_steps: int = 25  # teacher DDIM calls per student step
    trajectories: int = 5000
    epochs: int = 12
    batch_size: int = 128
    lr: float = 5e-5
    ema: float | None = 0.999
    seed: int = 12345  # trajectories' noise and classes: kept apart from evaluate's seeds (0, 1)
    device: str = "auto"
    threads: int | None = None
    gen_batch: int = 250
    progress: bool = True
    force: bool = False  # replace another teacher's run in --out

    def validate(self) -> None:
        checks = {
            "--steps": self.steps,
            "--sub-steps": self.sub_steps,
            "--trajectories": self.trajectories,
            "--epochs": self.epochs,
            "--batch-size": self.batch_size,
            "--gen-batch": self.gen_batch,
        }
        for flag, value in checks.items():
            if value < 1:
                raise UserError(f"{flag} must be positive, got {value}")
        if self.trajectories < 20:
            raise UserError(f"--trajectories must be at least 20, got {self.trajectories}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise UserError(f"--ema must be a decay in (0, 1), e.g. 0.999; got {self.ema}")
        check_guidance(self.guidance)
