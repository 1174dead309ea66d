"""`ddpm-deploy learn-sampler`: fewer network calls per image with the network frozen.

1. The data's Gaussian statistics (runtime/gaussian.py) from the training images, into the card.
2. The number of analytic steps: each of 0 .. calls + 2 on the EDM grid of calls + k points,
   scored against the teacher (``--teacher``, any deterministic sampler of the runtime; its
   images from the same starting noise); the best is the training-free start.
3. The grid and one correction per step of DPM-Solver++(2M) (``mix``), fitted to the teacher's
   images from the same starting noise (LD3, Tong et al. 2025, learns the grid; GS/GAS learns
   solver coefficients): the grid is a softmax-cumsum over log-SNR between the two fixed ends, as
   in LD3; the loss is the mean absolute pixel error to the teacher (L1: squared error rewards
   the blurred average of the teacher's images, docs/QUALITY.md). The network sees integer
   timesteps, so the objective is piecewise constant in the grid and is minimized without
   gradients (scipy's Nelder-Mead on ONNX Runtime calls: a few dozen parameters at most, and no
   torch). The same noises at every evaluation, so the objective is deterministic.
4. The learned sampler is kept only if it beats the training-free start on held-out noises.
   Steps 3-4 run with ``learn=True`` (`--learn`) only: on the shipped models the fitted sampler
   was closer to the teacher but further from the data by the two-sample judge than the
   training-free grid of step 2 (docs/QUALITY.md, "Fewer calls").

The output is the input ONNX file with a new card (metadata_props): the graph is byte-identical.
The fitting itself is export/sampler_fit.py.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ddpm_deploy.export.sampler_fit import Problem, choose_analytic, fit_sampler

from ddpm_deploy.errors import UserError

DEFAULT_TEACHER = "ddim:100:linspace"


def parse_teacher(text: str) -> dict:
    """``SAMPLER:STEPS[:SPACING]`` (a deterministic sampler of the runtime, x0 clipped) as
    ``sample()``'s keyword arguments; one line naming --teacher when it is not."""
    from ddpm_deploy.runtime.samplers import SAMPLERS
    from ddpm_deploy.runtime.timesteps import SPACINGS

    parts = text.split(":")
    ok = len(parts) in (2, 3) and parts[0] in SAMPLERS and parts[0] != "ddpm" and parts[1].isdigit()
    ok = ok and 2 <= int(parts[1]) <= 1000 and (len(parts) == 2 or parts[2] in SPACINGS)
    if not ok:
        raise UserError(
            f"--teacher {text!r}: give SAMPLER:STEPS[:SPACING], a deterministic sampler of "
            f"{[n for n in SAMPLERS if n != 'ddpm']}, 2..1000 steps, a spacing of {list(SPACINGS)}"
        )
    spacing = parts[2] if len(parts) == 3 else "edm"
    return {"sampler": parts[0], "steps": int(parts[1]), "spacing": spacing, "clip": True}


@dataclass(frozen=True)
class LearnConfig:
    calls: int = 4
    analytic: int | None = None  # None: chosen against the teacher (0 .. calls + 2)
    rank: int = 64
    teacher: str = DEFAULT_TEACHER  # SAMPLER:STEPS[:SPACING]
    images: int = 128
    evals: int = 300
    seed: int = 0
    guidance: float = 1.0
    # fit the grid and corrections too (measured worse than the training-free grid by the two-sample
    # judge on both shipped models, docs/QUALITY.md: opt-in until a better objective replaces L1)
    learn: bool = False

    def check(self) -> None:
        if not 1 <= self.calls <= 50:
            raise UserError(f"--calls must be between 1 and 50, got {self.calls}")
        if self.analytic is not None and not 0 <= self.analytic <= 50:
            raise UserError(f"--analytic must be between 0 and 50, got {self.analytic}")
        parse_teacher(self.teacher)
        if not 8 <= self.images <= 4096:
            raise UserError(f"--images must be between 8 and 4096, got {self.images}")
        if not 0 <= self.evals <= 100_000:
            raise UserError(f"--evals must be between 0 and 100000, got {self.evals}")
        if not np.isfinite(self.guidance) or not 0 <= self.guidance <= 100:
            raise UserError(f"--guidance must be a finite number in [0, 100], got {self.guidance}")


def with_statistics(den, data_root: str | None, rank: int) -> dict:
    """``den``'s card with the data's Gaussian statistics and without a previous sampler (set on
    ``den`` too, so its analytic steps use them)."""
    from ddpm_deploy.runtime.gaussian import fit_card

    card = {k: v for k, v in den.card.items() if k not in ("sampler", "learned_sampler")}
    card["gaussian"] = fit_card(den.card, data_root, rank)
    den.card = card
    den.__dict__.pop("gaussian", None)  # the cached statistics of the old card
    return card


def open_checked(model: str, out: str, config: LearnConfig):
    """The teacher and the output path, every check that needs no fitting done first."""
    from ddpm_deploy.runtime.backends import open_denoiser

    from ddpm_deploy.files import check_writable, onnx_output
    from ddpm_deploy.onnx_model import refuse_sampler_file

    config.check()
    den = open_denoiser("ort", model)
    refuse_sampler_file(den.card, den.path, "learn-sampler")
    out_path = onnx_output(out, den.path)
    check_writable(out_path.parent)  # before minutes of fitting; its folders are made at the end
    if den.card.get("distilled"):
        raise UserError(f"{den.path} is a distilled student bound to its own sampler; learn the teacher's")  # fmt: skip
    if config.guidance != 1.0 and not den.num_classes:
        raise UserError(
            f"--guidance {config.guidance:g}: {den.path} is unconditional (guidance needs classes); "
            "drop --guidance"
        )
    return den, out_path


def check_grid(calls: int, analytic: int, T: int) -> None:
    if calls + analytic > T:
        raise UserError(
            f"--calls {calls} and {analytic} analytic steps make a grid of {calls + analytic} "
            f"steps; this model's schedule has only T={T}"
        )


def learn_sampler(model: str, out: str, data_root: str | None, config: LearnConfig) -> dict:
    """The model's ONNX file with the learned sampler in its card, written to ``out``."""
    from ddpm_deploy.runtime.sampler_spec import SamplerSpec
    from ddpm_deploy.runtime.timesteps import timesteps_for

    den, out_path = open_checked(model, out, config)
    started = time.perf_counter()
    card = with_statistics(den, data_root, config.rank)
    schedule = den.schedule
    teacher = parse_teacher(config.teacher)
    train, held_out = (
        Problem(den, config.images, teacher, config.guidance, seed)
        for seed in (config.seed, config.seed + 1)
    )
    if config.analytic is None:
        analytic, tried = choose_analytic(train, config.calls, schedule)
    else:
        analytic, tried = config.analytic, []
    check_grid(config.calls, analytic, schedule.T)
    grid = timesteps_for(schedule.T, config.calls + analytic, "edm", schedule)
    free = {
        "timesteps": grid.tolist(),
        "analytic": analytic,
        "loss": train.loss(grid, analytic),
        "held_out_loss": held_out.loss(grid, analytic),
    }
    report = {"config": asdict(config), "analytic_tried": tried, "training_free": free}
    spec = SamplerSpec(
        "dpm++2m", tuple(free["timesteps"]), analytic=analytic, guidance=config.guidance
    )
    if config.learn and config.evals > 0:
        grid, mix, loss = fit_sampler(train, grid, analytic, config.evals, schedule)
        held = held_out.loss(grid, analytic, mix)
        report["learned"] = {
            "timesteps": grid.tolist(),
            "mix": mix.tolist(),
            "loss": loss,
            "held_out_loss": held,
        }
        if held < free["held_out_loss"]:
            spec = SamplerSpec(
                "dpm++2m",
                tuple(int(t) for t in grid),
                analytic=analytic,
                mix=tuple(float(m) for m in mix),
                guidance=config.guidance,
            )
    report["chosen"] = spec.to_json()
    report["seconds"] = round(time.perf_counter() - started, 1)
    card["sampler"] = spec.to_json()
    card["learned_sampler"] = {k: v for k, v in report.items() if k != "analytic_tried"}
    write_card(den.path, out_path, card)
    return report


def summary(report: dict, out: str) -> str:
    """What `learn-sampler` prints without --json."""
    free, learned, chosen = report["training_free"], report.get("learned"), report["chosen"]
    calls = report["config"]["calls"]
    lines = [
        f"training-free: {free['analytic']} analytic steps + {calls} calls, t = {free['timesteps']}, held-out L1 {free['held_out_loss']:.4f}"
    ]
    if learned:
        lines.append(
            f"learned: t = {learned['timesteps']}, held-out L1 {learned['held_out_loss']:.4f}"
        )
    kind = "learned" if "mix" in chosen else "training-free"
    lines.append(
        f"wrote {out}: its {kind} sampler is the model's default now ({report['seconds']} s)"
    )
    return "\n".join(lines)


def write_card(src: Path, out: Path, card: dict) -> None:
    """``src`` with ``card`` in its metadata_props, atomically at ``out``; the graph untouched."""
    import json

    import onnx

    from ddpm_deploy.card import CARD_KEY, dumps
    from ddpm_deploy.files import atomic_path

    proto = onnx.load(str(src))
    props = {p.key: p.value for p in proto.metadata_props}
    props[CARD_KEY] = dumps(card)
    props["ddpm_deploy.sampler"] = json.dumps(card["sampler"])
    onnx.helper.set_model_props(proto, props)
    with atomic_path(out) as tmp:  # makes out's missing folders
        onnx.save(proto, str(tmp))
