"""`distill`'s options: what a run is asked for, checked before anything loads (train/distill.py
runs it; train/student.py and train/teacher.py read it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ddpm_deploy.runtime.guidance import check_guidance
from ddpm_deploy.runtime.samplers import SAMPLERS

from ddpm_deploy.errors import UserError

# what a resumed run may change: how long it runs and where, not what it learns
# (the teacher is checked by its sha256 and the data by the statistics' own card entry, so the
# paths that name them may change too; a larger --images moves the learning rate's halfway point)
RESUMABLE_CHANGES = (
    "images",
    "device",
    "threads",
    "progress",
    "force",
    "out",
    "save_every",
    "teacher",
    "data_root",
)


@dataclass
class DistillConfig:
    teacher: str
    out: str
    steps: int = 2  # the student's network calls per image (one per step, whatever its guidance)
    analytic: int = 3  # Gaussian steps before the student's first call (need --data-root's data)
    data_root: str | None = None
    rank: int = 64  # principal directions per class for the analytic steps
    guidance: float = 1.0  # the teacher's guidance, baked into the student
    teacher_sampler: str = "dpm++2m"
    sub_steps: int = 10  # teacher calls per student step
    images: int = 20_000  # fresh teacher trajectories, one batch of new noise per update
    batch_size: int = 32
    lr: float = 5e-5  # Adam; a tenth of it over the second half (SFD)
    ema: float | None = None  # an EMA of the student's weights too (SFD keeps none), e.g. 0.999
    seed: int = 12345  # training noise and classes: kept apart from evaluate's seeds (0, 1)
    held_out: int = 64  # fixed images the student is measured on after every save
    save_every: int = 25  # batches between saves (a stopped run resumes from the last one)
    device: str = "auto"
    threads: int | None = None
    progress: bool = True
    force: bool = False  # replace another teacher's run in --out

    def validate(self) -> None:
        checks = {
            "--steps": self.steps,
            "--sub-steps": self.sub_steps,
            "--images": self.images,
            "--batch-size": self.batch_size,
            "--held-out": self.held_out,
            "--save-every": self.save_every,
            "--rank": self.rank,
        }
        for flag, value in checks.items():
            if value < 1:
                raise UserError(f"{flag} must be positive, got {value}")
        if self.analytic < 0:
            raise UserError(f"--analytic must be 0 or more, got {self.analytic}")
        deterministic = [k for k, v in SAMPLERS.items() if v.stochastic_when != "always"]
        if self.teacher_sampler not in deterministic:
            raise UserError(
                f"--teacher-sampler {self.teacher_sampler!r}: choose a deterministic one from {deterministic}"
            )
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be positive, got {self.threads}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise UserError(f"--ema must be a decay in (0, 1), e.g. 0.999; got {self.ema}")
        check_guidance(self.guidance)

    def learning(self) -> dict:
        """The settings that decide what the student learns: a run resumes only with the same."""
        return {k: v for k, v in asdict(self).items() if k not in RESUMABLE_CHANGES}
